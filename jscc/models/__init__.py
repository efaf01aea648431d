"""JSCC codecs and their registry: ``build_codec(name, cbr=..., **kw)``."""

from __future__ import annotations

from .adjscc import ADJSCC
from .base import JSCCCodec
from .deepjscc import DeepJSCC
from .registry import CODECS, available_codecs, build_codec, register_codec
from .swinjscc import SwinJSCC

__all__ = [
    "ADJSCC",
    "CODECS",
    "DeepJSCC",
    "JSCCCodec",
    "SwinJSCC",
    "available_codecs",
    "build_codec",
    "register_codec",
]
