"""Named factories and spec strings: the one way every package names the things it builds.

Each package keeps a :class:`Registry` per kind it owns (channels here; codecs and image
systems in ``jscc``; denoising nets in ``cddm``; transports, denoisers, policies and schedulers
in ``wdmoe_link``). A registry maps names to factories and builds objects from **spec strings**
of one grammar::

    name[:arg[:arg...]][:key=value[:key=value...]]

e.g. ``"rayleigh-block:14"``, ``"wlr:0.2:ratio"``, ``"digital:int8:target_bler=0.01"``.
Positional fields come first; values are read by :func:`parse_literal` (``true``/``false``,
``none``, ints, floats, else strings). A mapping ``{"name": ..., **options}`` (a YAML object)
is the keyword form of the same spec.

A *family* is registered with a trailing ``+`` (``"analog+"``): any name that starts with it
(``"analog+cddm"``) is built by the family's factory with the rest of the name as its first
argument.

The canonical spec of a built object comes from its frozen config dataclass through
:func:`format_spec`: only fields that differ from the dataclass defaults are written, so the
defaults exist once (in the dataclass) and a name always parses back to an equal object.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Generic, TypeVar

__all__ = ["Registry", "format_spec", "parse_literal", "parse_spec"]

T = TypeVar("T")

#: What every registered name must look like (spec names are lower-cased when parsed).
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_.+-]*$")
_NAME_RULE = "lower-case letters, digits, '_', '.', '+' or '-', starting with a letter"


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


def parse_spec(text: str, what: str = "spec") -> tuple[str, list[Any], dict[str, Any]]:
    """``"name:arg:...:key=value:..."`` → ``(name lower-cased, positional args, options)``.

    Values go through :func:`parse_literal`; positional fields come before options. ``what``
    names the kind of string in errors (e.g. ``"transport spec"``).

    Raises:
        ValueError: empty name or field, a repeated or malformed key, or a positional field
            after an option.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{what} must be a non-empty string 'name[:arg...][:key=value...]', "
                         f"got {text!r}")
    parts = [p.strip() for p in text.strip().split(":")]
    if not parts[0]:
        raise ValueError(f"{what} {text!r} has no name before its first ':'")
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


def _format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, float):
        return f"{value:g}" if math.isfinite(value) else str(value)
    return str(value)


def format_spec(name: str, config: Any, *, positional: Iterable[str] = (),
                always: Iterable[str] = (), flags: Iterable[str] = ()) -> str:
    """The canonical spec string of ``config`` (a dataclass instance) under ``name``.

    A field is written when its value differs from the dataclass default (or it is in
    ``always``). ``positional`` fields are written as values in that order, the trailing ones
    that need not be written dropped; ``flags`` are bool fields written as their bare name when
    true (``"digital:bf16:decoded"``); every other field that differs is ``key=value``, in the
    dataclass's field order. :func:`parse_spec` reads the result back into the same values.
    """
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise TypeError(f"config must be a dataclass instance, got {type(config).__name__}")
    fields = {f.name: f for f in dataclasses.fields(config)}
    positional, always, flags = list(positional), set(always), list(flags)
    for key in (*positional, *always, *flags):
        if key not in fields:
            raise ValueError(f"{key!r} is not a field of {type(config).__name__}")

    def differs(key: str) -> bool:
        f = fields[key]
        if key in always or f.default is dataclasses.MISSING:
            return True
        return getattr(config, key) != f.default

    while positional and not differs(positional[-1]):
        positional.pop()
    parts = [name, *(_format_value(getattr(config, k)) for k in positional)]
    parts += [k for k in flags if getattr(config, k)]
    done = {*positional, *flags}
    parts += [f"{k}={_format_value(getattr(config, k))}" for k in fields
              if k not in done and differs(k)]
    return ":".join(parts)


class Registry(Generic[T]):
    """Factories of one ``kind`` of object, by name.

    Args:
        kind: what is registered, for messages (``"channel"``, ``"transport"``).
        loader: called once before the first lookup, to import modules that register built-in
            entries themselves (e.g. codec modules with a ``@register`` decorator).
        hints: extra text for an unknown name (e.g. ``{"jscc+cddm": "import cddm"}``).
    """

    def __init__(self, kind: str, *, loader: Callable[[], None] | None = None,
                 hints: Mapping[str, str] | None = None) -> None:
        self.kind = kind
        self._loader = loader
        self._hints = dict(hints or {})
        self._factories: dict[str, Callable[..., T]] = {}

    def register(self, name: str, factory: Callable[..., T] | None = None, *,
                 overwrite: bool = False) -> Any:
        """Register ``factory`` under ``name`` (a name ending in ``+`` registers a family).

        Without ``factory`` this returns a decorator (``@REGISTRY.register("name")`` on a class
        or function), which returns what it decorates.

        Raises:
            ValueError: a malformed name, or one already registered without ``overwrite``.
            TypeError: ``factory`` is not callable.
        """
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            raise ValueError(f"{self.kind} name must be {_NAME_RULE}, got {name!r}")

        def add(f: Callable[..., T]) -> Callable[..., T]:
            if not callable(f):
                raise TypeError(f"a {self.kind} factory must be callable, got "
                                f"{type(f).__name__}")
            if name in self._factories and not overwrite:
                raise ValueError(f"{self.kind} {name!r} is already registered (pass "
                                 "overwrite=True)")
            self._factories[name] = f
            return f

        return add if factory is None else add(factory)

    def unregister(self, name: str) -> None:
        """Forget ``name`` (no error if it is unknown)."""
        self._factories.pop(name, None)

    def _load(self) -> None:
        if self._loader is not None:
            loader, self._loader = self._loader, None
            loader()

    def available(self) -> list[str]:
        """Registered names, sorted (a family shows as ``"prefix+<name>"``)."""
        self._load()
        return sorted(n + "<name>" if n.endswith("+") else n for n in self._factories)

    def __contains__(self, name: object) -> bool:
        self._load()
        return isinstance(name, str) and self._lookup(name) is not None

    def _lookup(self, name: str) -> tuple[Callable[..., T], list[Any]] | None:
        if name in self._factories and not name.endswith("+"):
            return self._factories[name], []
        head, plus, rest = name.partition("+")
        if plus and rest and head + "+" in self._factories:
            return self._factories[head + "+"], [rest]
        return None

    def factory(self, name: str) -> Callable[..., T]:
        """The factory registered under ``name`` (exact name or family prefix).

        Raises:
            ValueError: unknown name (the message lists the available ones).
        """
        self._load()
        found = self._lookup(name) if isinstance(name, str) else None
        if found is None:
            hint = f" ({self._hints[name]})" if name in self._hints else ""
            raise ValueError(f"unknown {self.kind} {name!r}{hint}; available: "
                             f"{self.available()}")
        return found[0]

    def parse(self, spec: str | Mapping[str, Any]) -> tuple[str, list[Any], dict[str, Any]]:
        """``(name, positional args, options)`` of a spec string or mapping (the name is not
        looked up).

        Raises:
            ValueError: a malformed spec, or a mapping without a ``"name"`` string.
        """
        what = f"{self.kind} spec"
        if isinstance(spec, Mapping):
            options = dict(spec)
            name = options.pop("name", None)
            if not isinstance(name, str) or not name.strip():
                raise ValueError(f"a {what} mapping needs a 'name' string, got {spec!r}")
            return name.strip().lower(), [], options
        return parse_spec(spec, what)

    def split(self, spec: str | Mapping[str, Any], extra: Mapping[str, Any] | None = None
              ) -> tuple[str, dict[str, Any]]:
        """``(name, options)`` of a spec whose options are all ``key=value``, merged with
        ``extra`` (e.g. the separate options dict of an older config).

        Raises:
            ValueError: a malformed spec, positional fields, or an option given twice.
        """
        name, args, options = self.parse(spec)
        if args:
            raise ValueError(f"{self.kind} spec {spec!r}: give options as key=value, got "
                             f"positional {args}")
        clash = sorted(set(options) & set(extra or {}))
        if clash:
            raise ValueError(f"{self.kind} spec {spec!r} and its separate options both set "
                             f"{clash}")
        return name, {**options, **(extra or {})}

    def build(self, spec: str | Mapping[str, Any], *args: Any, **kwargs: Any) -> T:
        """The object a spec describes: ``factory(*spec_args, *args, **spec_options,
        **kwargs)``.

        ``spec`` is a spec string or a mapping with ``"name"`` and keyword options; ``args``
        and ``kwargs`` are the caller's own (e.g. ``channel=``), which a spec may not repeat.

        Raises:
            ValueError: a malformed spec, an unknown name, an option the spec and the caller
                both give, or arguments the factory rejects (the spec is named).
        """
        what = f"{self.kind} spec"
        name, spec_args, options = self.parse(spec)
        self._load()
        found = self._lookup(name)
        if found is None:
            self.factory(name)  # raises with the list of names
        factory, family = found  # type: ignore[misc]
        clash = sorted(set(options) & set(kwargs))
        if clash:
            raise ValueError(f"{what} {spec!r} sets {clash}, which are also passed directly")
        try:
            return factory(*family, *spec_args, *args, **options, **kwargs)
        except TypeError as exc:
            raise ValueError(f"bad arguments in {what} {spec!r}: {exc}") from exc
        except ValueError as exc:
            raise ValueError(f"{what} {spec!r}: {exc}") from exc

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.available()})"
