"""Name → codec class registry."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .base import JSCCCodec

__all__ = ["available_codecs", "build_codec", "register_codec"]

_REGISTRY: dict[str, Callable[..., JSCCCodec]] = {}


def register_codec(name: str) -> Callable[[type[JSCCCodec]], type[JSCCCodec]]:
    """Class decorator: make a codec constructible with ``build_codec(name, ...)``.

    The class must accept ``cbr`` (float) as a keyword and may accept more keywords.
    """

    def deco(cls: type[JSCCCodec]) -> type[JSCCCodec]:
        if name in _REGISTRY:
            raise ValueError(f"codec name {name!r} is already registered")
        _REGISTRY[name] = cls
        return cls

    return deco


def available_codecs() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def build_codec(name: str, cbr: float = 1 / 12, pretrained: bool = False,
                channel: str = "awgn", **kwargs: Any) -> JSCCCodec:
    """Build a registered codec (``"deepjscc"``, ``"adjscc"``, ``"swinjscc"``) at ``cbr``.

    With ``pretrained=True`` the weights shipped in :mod:`jscc.pretrained` for ``(name, cbr,
    channel)`` are loaded (offline) and the codec is returned in eval mode; its architecture
    comes from the model card, so ``kwargs`` must be empty. ``channel`` is used only then.
    """
    _load_builtin()
    if name not in _REGISTRY:
        raise ValueError(f"codec name must be one of {sorted(_REGISTRY)}, got {name!r}")
    if pretrained:
        if kwargs:
            raise ValueError(f"pretrained codecs take their architecture from the model card; "
                             f"drop {sorted(kwargs)}")
        from ..pretrained import find, load_codec

        return load_codec(find(name, cbr, channel))
    return _REGISTRY[name](cbr=cbr, **kwargs)


def _load_builtin() -> None:
    """Import the built-in codec modules so that they register themselves."""
    import importlib

    for mod in ("deepjscc", "adjscc", "swinjscc"):
        try:
            importlib.import_module(f"{__package__}.{mod}")
        except ModuleNotFoundError as err:  # a codec module not written yet
            if err.name != f"{__package__}.{mod}":
                raise
