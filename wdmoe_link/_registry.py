"""Named factories behind spec strings (``"wlr:0.2"``, ``"analog+cddm:path=..."``)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Generic, TypeVar

__all__ = ["Registry", "parse_literal", "parse_spec"]

F = TypeVar("F", bound=Callable)


class Registry(Generic[F]):
    """Factories by name; names must match ``pattern`` (described by ``allowed``)."""

    def __init__(self, kind: str, pattern: str, allowed: str) -> None:
        self.kind, self.allowed = kind, allowed
        self._re = re.compile(pattern)
        self._factories: dict[str, F] = {}

    def register(self, name: str, factory: F, *, overwrite: bool = False) -> None:
        if not isinstance(name, str) or not self._re.match(name):
            raise ValueError(f"{self.kind} name must be {self.allowed}, got {name!r}")
        if not callable(factory):
            raise TypeError(f"factory must be callable, got {type(factory).__name__}")
        if name in self._factories and not overwrite:
            raise ValueError(f"{self.kind} {name!r} is already registered (pass overwrite=True)")
        self._factories[name] = factory

    def unregister(self, name: str) -> None:
        """Forget ``name`` (no error if it is unknown)."""
        self._factories.pop(name, None)

    def names(self) -> list[str]:
        return sorted(self._factories)

    def __contains__(self, name: object) -> bool:
        return name in self._factories

    def __getitem__(self, name: str) -> F:
        return self._factories[name]


def parse_literal(text: str) -> bool | int | float | str | None:
    """``"true"``/``"false"`` → bool, ``"none"``/``"null"`` → None, then int, float, else the
    stripped string."""
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    for conv in (int, float):
        try:
            return conv(low)
        except ValueError:
            pass
    return text.strip()


def parse_spec(text: str, what: str) -> tuple[str, list[Any], dict[str, Any]]:
    """``"name:arg:...:key=value:..."`` -> ``(name lower-cased, positional args, options)``.

    Values go through :func:`parse_literal`; positional fields come before options. ``what``
    names the kind of string in errors (e.g. ``"transport spec"``, ``"policy string"``).
    """
    parts = [p.strip() for p in text.strip().split(":")]
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for p in parts[1:]:
        if not p:
            raise ValueError(f"empty field in {what} {text!r}")
        if "=" in p:
            key, _, value = p.partition("=")
            key = key.strip()
            if not key.isidentifier() or key in kwargs:
                raise ValueError(f"bad or repeated option {key!r} in {what} {text!r}")
            kwargs[key] = parse_literal(value)
        elif kwargs:
            raise ValueError(f"positional value {p!r} after key=value options in {what} "
                             f"{text!r}")
        else:
            args.append(parse_literal(p))
    return parts[0].lower(), args, kwargs
