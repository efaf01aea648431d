"""What every recipe's config shares: building it from keywords, and its ``config.yaml`` form.

A recipe is ``run_<name>(cfg: <Name>Config | None = None, *, out, ..., **settings)``: the
frozen config dataclass holds the settings that decide the results (checked when it is built,
so a bad value fails before any folder or work exists); the keyword parameters say where and
how to run (results root, resume, progress). ``semcom <name>`` builds its options from the
dataclass's fields and those parameters.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

__all__ = ["config_dict", "optional_positive_int", "resolve_config"]

C = TypeVar("C")


def optional_positive_int(name: str, value: Any) -> int | None:
    """``value`` as an int >= 1 (a size in pixels, a count), or None; the error names
    ``name``."""
    from experiments.values import PositiveInt

    if value is None:
        return None
    try:
        return PositiveInt.parse(value)
    except ValueError as err:
        raise ValueError(f"{name} {err}") from None


def resolve_config(cls: type[C], cfg: C | None, settings: Mapping[str, Any]) -> C:
    """``cfg``, or ``cls(**settings)`` when only its fields are given as keywords.

    Raises:
        TypeError: both ``cfg`` and keyword fields are given, or ``cfg`` is not a ``cls``.
    """
    if cfg is None:
        return cls(**settings)
    if settings:
        raise TypeError(f"give cfg or its fields, not both (got {sorted(settings)})")
    if not isinstance(cfg, cls):
        raise TypeError(f"cfg must be a {cls.__name__}, got {type(cfg).__name__}")
    return cfg


def config_dict(cfg: Any, *, drop: tuple[str, ...] = ("seed",)) -> dict[str, Any]:
    """The fields of a config dataclass as plain values for ``config.yaml`` (tuples of
    numbers as lists), without ``drop`` (the results folder records the seed on its own)."""

    def plain(v: Any) -> Any:
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        return v

    return {f.name: plain(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)
            if f.name not in drop}
