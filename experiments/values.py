"""Value types of recipe settings that the command line and YAML configs write compactly.

Each is a tuple (or dict) subclass with a ``parse`` classmethod that takes the compact text
form or the plain YAML/Python form, so that ``--snr_db 0:20:5``, ``snr_db: [0, 5, 10]`` and
``run_link_curves(snr_db=[0, 5, 10])`` mean the same. :func:`register` makes them known to
jsonargparse (the ``semcom`` command line).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["Decoders", "FloatGrid", "IntGrid", "Names", "PositiveInt", "register"]


class PositiveInt(int):
    """An int >= 1 (a crop size in pixels, a number of images); :meth:`parse` returns a
    plain ``int``."""

    @classmethod
    def parse(cls, value: Any) -> int:
        try:
            v = int(value) if not isinstance(value, (bool, float)) else None
        except (TypeError, ValueError):
            v = None
        if v is None or v < 1:
            raise ValueError(f"must be a positive integer (>= 1), got {value!r}")
        return v


class FloatGrid(tuple):
    """Numbers (e.g. SNRs in dB): ``"start:stop:step"`` (stop included), ``"a,b,c"``, one
    number or a sequence."""

    @classmethod
    def parse(cls, value: Any) -> FloatGrid:
        from phy.sweep import parse_snr_range

        if isinstance(value, str):
            return cls(parse_snr_range(value))
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return cls([float(value)])
        if isinstance(value, Iterable):
            try:
                return cls(float(v) for v in value)
            except (TypeError, ValueError):
                pass
        raise ValueError(f"expected numbers as 'start:stop:step', 'a,b,c' or a list, got "
                         f"{value!r}")


class IntGrid(tuple):
    """Integers: ``"start:stop:step"`` (stop included, step >= 1), ``"a,b,c"``, one integer or
    a sequence."""

    @classmethod
    def parse(cls, value: Any) -> IntGrid:
        try:
            if isinstance(value, str):
                if ":" in value:
                    a, b, c = (int(x) for x in value.split(":"))
                    if c < 1 or b < a:
                        raise ValueError
                    return cls(range(a, b + 1, c))
                return cls(int(x) for x in value.split(",") if x.strip())
            if isinstance(value, int) and not isinstance(value, bool):
                return cls([value])
            if isinstance(value, Iterable) and all(
                    isinstance(v, int) and not isinstance(v, bool) for v in value):
                return cls(value)
        except ValueError:
            pass
        raise ValueError(f"expected integers as 'start:stop:step' (step >= 1), 'a,b,c' or a "
                         f"list, got {value!r}")


class Names(tuple):
    """Names or specs: ``"topk,wlr:0.2"`` (comma separated), ``"none"`` (no name) or a
    sequence of strings."""

    @classmethod
    def parse(cls, value: Any) -> Names:
        if isinstance(value, str):
            if value.strip().lower() == "none":
                return cls()
            return cls(x.strip() for x in value.split(",") if x.strip())
        if isinstance(value, Iterable) and all(isinstance(v, str) for v in value):
            return cls(v.strip() for v in value)
        raise ValueError(f"expected a comma list or a list of names, got {value!r}")


class Decoders(tuple):
    """``(snr_db, checkpoint)`` pairs: ``"10=a.ckpt,15=b.ckpt"``, a list of ``"SNR=CKPT"``
    strings or a mapping ``{10: a.ckpt}``; ``dict(decoders)`` is the mapping."""

    @classmethod
    def parse(cls, value: Any) -> Decoders:
        if isinstance(value, Mapping):
            items = [(k, v) for k, v in value.items()]
        elif isinstance(value, str):
            items = [p.partition("=")[::2] for p in value.split(",") if p.strip()]
        else:
            items = [tuple(p) if isinstance(p, (list, tuple)) else str(p).partition("=")[::2]
                     for p in value or ()]
        out = []
        for snr, path in items:
            try:
                pair = (float(snr), str(path))
            except (TypeError, ValueError):
                pair = None
            if pair is None or not pair[1]:
                raise ValueError(f"decoders must be SNR=CHECKPOINT (e.g. 10=run/last.ckpt), "
                                 f"got {value!r}")
            out.append(pair)
        return cls(out)


def register() -> None:
    """Make these types known to jsonargparse (idempotent)."""
    from jsonargparse.typing import register_type

    for cls, dump in ((PositiveInt, int), (FloatGrid, lambda v: [float(x) for x in v]),
                      (IntGrid, lambda v: [int(x) for x in v]),
                      (Names, lambda v: list(v)),
                      (Decoders, lambda v: [f"{snr:g}={path}" for snr, path in v])):
        try:
            register_type(cls, serializer=dump, deserializer=cls.parse)
        except ValueError:  # already registered
            pass
