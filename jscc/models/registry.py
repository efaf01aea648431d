"""The codec registry: ``build_codec("adjscc", cbr=1/12, ...)`` or a spec string
(``"adjscc:num_filters=128"``, :mod:`phy.registry` grammar)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from phy import Registry

from .base import JSCCCodec

__all__ = ["CODECS", "available_codecs", "build_codec", "register_codec"]

_BUILTIN = ("deepjscc", "adjscc", "swinjscc")


def _load_builtin() -> None:
    """Import the built-in codec modules so that they register themselves."""
    for mod in _BUILTIN:
        importlib.import_module(f"{__package__}.{mod}")


#: JSCC codec classes by name; each takes ``cbr`` (float) as a keyword.
CODECS: Registry[JSCCCodec] = Registry("codec", loader=_load_builtin)


def register_codec(name: str) -> Callable[[type[JSCCCodec]], type[JSCCCodec]]:
    """Class decorator: make a codec constructible with ``build_codec(name, ...)``.

    The class must accept ``cbr`` (float) as a keyword and may accept more keywords.
    """
    return CODECS.register(name)


def available_codecs() -> list[str]:
    """Codec names :func:`build_codec` accepts, sorted."""
    return CODECS.available()


def build_codec(name: str, cbr: float = 1 / 12, pretrained: bool = False,
                channel: str = "awgn", **kwargs: Any) -> JSCCCodec:
    """Build a registered codec (``"deepjscc"``, ``"adjscc"``, ``"swinjscc"``) at ``cbr``.

    ``name`` may be a spec with options (``"adjscc:num_filters=128"``). With
    ``pretrained=True`` the weights shipped in :mod:`jscc.pretrained` for ``(name, cbr,
    channel)`` are loaded (offline) and the codec is returned in eval mode; its architecture
    comes from the model card, so ``kwargs`` must be empty. ``channel`` is used only then.

    Raises:
        ValueError: an unknown codec (the message lists :func:`available_codecs`) or bad
            arguments.
    """
    if pretrained:
        CODECS.factory(name)  # an unknown name fails here, with the list
        if kwargs:
            raise ValueError(f"pretrained codecs take their architecture from the model card; "
                             f"drop {sorted(kwargs)}")
        from ..pretrained import find, load_codec

        return load_codec(find(name, cbr, channel))
    return CODECS.build(name, cbr=cbr, **kwargs)
