"""Input validation: the checks every package of semcom uses (``phy.checks``).

Every check raises :class:`ValueError` (or :class:`TypeError` for a wrong Python type) with a
message that names the parameter, the value received and what is allowed, so that bad input
never turns into a silent NaN or a hang further down the chain. Higher packages import these
instead of writing their own; a check specific to one object (a routing, a pilot pattern) stays
beside that object.
"""

from __future__ import annotations

import cmath
import math
import numbers
from collections.abc import Sequence

import torch

#: A scalar or a tensor of values (the airtime and capacity formulas take either).
NumberOrTensor = int | float | torch.Tensor

#: SNR range (dB) accepted by every link. Outside of it the simulation is meaningless for
#: float32 (noise below the mantissa of unit-power symbols, or signal drowned by 1e6x noise).
SNR_DB_MIN: float = -60.0
SNR_DB_MAX: float = 100.0


def all_finite(x: torch.Tensor) -> bool:
    """True when no entry of ``x`` is NaN or +-Inf (exact).

    One reduction in the common case: a sum is finite only if every entry is (NaN and Inf
    propagate; ``inf - inf`` is NaN). Only a sum that overflows, or a non-finite one, pays for
    the element-wise test. ``torch.isfinite(x).all()`` allocates a mask and costs several
    times more on the small tensors of a per-layer hot path.
    """
    if x.numel() == 0:
        return True
    x = x.detach()  # a check, not part of any graph (and no warning for a leaf with grad)
    if x.is_complex():
        if cmath.isfinite(complex(x.sum())):
            return True
        return bool(torch.isfinite(x).all())
    if x.is_floating_point():
        if math.isfinite(float(x.sum())):
            return True
        return bool(torch.isfinite(x).all())
    return True  # integer and bool tensors hold no NaN/Inf


def finite_rows(x: torch.Tensor) -> torch.Tensor:
    """bool ``[..., n]``: the rows (last dimension reduced) of ``x`` whose entries are all
    finite; the common all-finite case costs one reduction (:func:`all_finite`)."""
    if all_finite(x):
        return torch.ones(x.shape[:-1], dtype=torch.bool, device=x.device)
    return torch.isfinite(x).all(dim=-1)


def value_range(x: torch.Tensor) -> tuple[float, float]:
    """``(min, max)`` of a non-empty real tensor in one reduction, as floats; NaN in both when
    ``x`` holds a NaN (so a bounds test on them fails, as it should)."""
    if x.dtype == torch.bool:
        x = x.to(torch.uint8)
    lo, hi = torch.aminmax(x.detach())
    return float(lo), float(hi)


def _describe(t: torch.Tensor) -> str:
    return f"tensor(shape={tuple(t.shape)}, dtype={t.dtype})"


def check_complex(name: str, x: torch.Tensor) -> None:
    """Require a non-empty complex tensor with finite entries."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_complex():
        raise ValueError(
            f"{name} must be a complex tensor (complex64/complex128), got {_describe(x)}; "
            "pack real values into complex symbols first (e.g. phy.AnalogLink)"
        )
    check_nonempty(name, x)
    check_finite(name, x)


def check_real(name: str, x: torch.Tensor) -> None:
    """Require a non-empty real floating tensor with finite entries."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.is_complex() or not x.is_floating_point():
        raise ValueError(
            f"{name} must be a real floating-point tensor (float16/bfloat16/float32/float64), "
            f"got {_describe(x)}"
        )
    check_nonempty(name, x)
    check_finite(name, x)


def check_nonempty(name: str, x: torch.Tensor) -> None:
    """Require at least one element."""
    if x.numel() == 0:
        raise ValueError(f"{name} must not be empty, got {_describe(x)}")


def check_finite(name: str, x: torch.Tensor) -> None:
    """Require no NaN or Inf (the message counts them)."""
    if not all_finite(x):
        n_bad = int((~torch.isfinite(x)).sum())
        raise ValueError(
            f"{name} contains {n_bad} NaN/Inf value(s) out of {x.numel()}; only finite values "
            "can be transmitted"
        )


def check_bits(name: str, b: torch.Tensor) -> None:
    """Require a non-empty tensor whose entries are all 0 or 1."""
    if not isinstance(b, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(b).__name__}")
    check_nonempty(name, b)
    if b.is_complex():
        raise ValueError(f"{name} must hold 0/1 bits, got complex {_describe(b)}")
    if not bool(((b == 0) | (b == 1)).all()):
        raise ValueError(f"{name} must hold only 0 and 1, got other values in {_describe(b)}")


def as_snr_db(snr_db: float | torch.Tensor, batch_shape: Sequence[int] | None = None,
              *, device: torch.device | str | None = None,
              name: str = "snr_db") -> torch.Tensor:
    """Validate an SNR in dB and return it as a float32 tensor.

    ``snr_db`` may be a Python number, a 0-d tensor, or a tensor of shape ``[B]`` (one SNR per
    example, where ``B = batch_shape[0]``).
    """
    if isinstance(snr_db, bool) or not isinstance(snr_db, (int, float, torch.Tensor)):
        raise TypeError(f"{name} must be a number or a torch.Tensor, got {type(snr_db).__name__}")
    t = torch.as_tensor(snr_db, dtype=torch.float32, device=device)
    if t.is_complex():
        raise ValueError(f"{name} must be real, got a complex value")
    if t.dim() > 1:
        raise ValueError(f"{name} must be a scalar or a 1-D tensor [B], got shape {tuple(t.shape)}")
    if t.numel() == 0:
        raise ValueError(f"{name} must not be empty")
    lo, hi = value_range(t)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"{name} must be finite, got {t.tolist()}")
    if lo < SNR_DB_MIN or hi > SNR_DB_MAX:
        raise ValueError(
            f"{name} must lie in [{SNR_DB_MIN:g}, {SNR_DB_MAX:g}] dB, got values in "
            f"[{lo:g}, {hi:g}] dB"
        )
    if t.dim() == 1 and batch_shape is not None:
        if len(batch_shape) == 0 or t.shape[0] not in (1, batch_shape[0]):
            raise ValueError(
                f"{name} of shape {tuple(t.shape)} must be a scalar or have one value per "
                f"example of the batch (first dimension {batch_shape[0] if batch_shape else None})"
            )
    return t


def snr_per_example(snr_db: float | torch.Tensor | Sequence[float], batch: int,
                    name: str = "snr_db") -> list[float]:
    """One SNR in dB per example of a batch of ``batch``, as Python floats.

    ``snr_db`` is a number, a 0-d or one-element tensor (the same SNR for every example), or
    ``batch`` values (a tensor ``[B]`` or a sequence); each is checked as :func:`as_snr_db`
    checks (finite, within [SNR_DB_MIN, SNR_DB_MAX]).
    """
    if isinstance(snr_db, (list, tuple)):
        snr_db = torch.tensor([float(v) for v in snr_db], dtype=torch.float64)
    if isinstance(snr_db, torch.Tensor):
        snr_db = snr_db.detach().reshape(-1).cpu()
        if snr_db.numel() == 1:
            snr_db = snr_db.reshape(())
    elif hasattr(snr_db, "item") and not isinstance(snr_db, bool):  # numpy scalars
        snr_db = float(snr_db)
    as_snr_db(snr_db, (batch,), name=name)  # type, finiteness and range
    t = torch.as_tensor(snr_db, dtype=torch.float64)  # the values themselves, unrounded
    if t.dim() == 1 and t.numel() != batch:
        raise ValueError(f"{name} must be a scalar or have one value per example ({batch}), "
                         f"got {t.numel()} values")
    return [float(v) for v in (t.expand(batch) if t.dim() == 0 else t)]


def check_positive_int(name: str, value: int, *, minimum: int = 1,
                       maximum: int | None = None) -> int:
    """An int (not a bool; numpy integers too) in ``[minimum, maximum]`` (TypeError for
    another type)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    value = int(value)
    if value < minimum or (maximum is not None and value > maximum):
        allowed = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise ValueError(f"{name} must be an int {allowed}, got {value}")
    return value


def check_positive_float(name: str, value: float, *, allow_zero: bool = False) -> float:
    """A finite number > 0 (``allow_zero``: >= 0) as a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    v = float(value)
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        allowed = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be finite and {allowed}, got {value!r}")
    return v


def check_choice(name: str, value: str, allowed: Sequence[str]) -> str:
    """One of ``allowed``."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {list(allowed)}, got {value!r}")
    return value


def check_bool(name: str, value: bool) -> bool:
    """Require a Python bool (not 0/1, not a string)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__} {value!r}")
    return value


def check_number(name: str, value: float, *, low: float | None = None,
                 high: float | None = None, low_open: bool = False, high_open: bool = False,
                 finite: bool = True, unit: str = "") -> float:
    """A real scalar (a Python or numpy number, or a one-element tensor) as a float, within
    ``[low, high]`` (``low_open``/``high_open``: that end excluded). ``finite=False`` admits
    +-inf (never NaN). ``unit`` (``"dB"``, ``"Hz"``) goes into the message."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1 or value.is_complex() or value.dtype == torch.bool:
            raise ValueError(f"{name} must be a real scalar, got a tensor of shape "
                             f"{tuple(value.shape)} and dtype {value.dtype}")
        value = value.item()
    if (isinstance(value, (bool, str, bytes)) or (not isinstance(value, (int, float))
            and not hasattr(value, "__float__"))):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    v = float(value)
    u = f" {unit}" if unit else ""
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {low:g}{u}")
    if high is not None:
        parts.append(f"{'<' if high_open else '<='} {high:g}{u}")
    if low is not None and high is not None:
        allowed = (f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
                   f"{u}")
    else:
        allowed = parts[0] if parts else (f"a {'finite' if finite else 'real'} number"
                                          f"{' of ' + unit if unit else ''}")
    ok = (not math.isnan(v)) and (math.isfinite(v) or not finite)
    if ok and low is not None:
        ok = v > low if low_open else v >= low
    if ok and high is not None:
        ok = v < high if high_open else v <= high
    if not ok:
        if low is not None and high is not None:  # a bounded interval implies finite
            raise ValueError(f"{name} must be a number {allowed}, got {value!r}")
        prefix = "finite and " if finite and parts else ""
        raise ValueError(f"{name} must be {prefix}{allowed}, got {value!r}")
    return v


def check_count(name: str, value: int, *, what: str = "") -> int:
    """An int >= 0 (an integral float such as ``3.0`` is accepted), e.g. payload rows."""
    try:
        ok = not isinstance(value, bool) and int(value) == value and value >= 0
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        extra = f" ({what})" if what else ""
        raise ValueError(f"{name} must be an int >= 0{extra}, got {value!r}")
    return int(value)


def as_real(name: str, value: NumberOrTensor) -> NumberOrTensor:
    """Check the type of ``value``: a real Python number, or a real, non-empty tensor.

    Integer tensors become float64 tensors; Python ints become floats.
    """
    if isinstance(value, bool) or (isinstance(value, torch.Tensor) and value.dtype == torch.bool):
        raise TypeError(f"{name} must be a number or a real tensor, got a bool {value!r}")
    if isinstance(value, torch.Tensor):
        if value.is_complex():
            raise ValueError(f"{name} must be real, got a complex tensor of shape "
                             f"{tuple(value.shape)}")
        if value.numel() == 0:
            raise ValueError(f"{name} must not be empty, got shape {tuple(value.shape)}")
        return value if value.is_floating_point() else value.to(torch.float64)
    if not isinstance(value, (int, float)):
        # numpy scalars and the like: accept anything float() takes, but not strings.
        if isinstance(value, (str, bytes)) or not hasattr(value, "__float__"):
            raise TypeError(f"{name} must be a number or a torch.Tensor, "
                            f"got {type(value).__name__} {value!r}")
    return float(value)


def check_bounds(name: str, value: NumberOrTensor, *, low: float, low_inclusive: bool,
            high: float | None = None, allowed: str) -> None:
    """Raise if any entry of ``value`` is NaN/Inf or outside the given bounds."""
    if isinstance(value, torch.Tensor):
        lo, hi = value_range(value)
        finite = math.isfinite(lo) and math.isfinite(hi)
        ok = finite and (lo >= low if low_inclusive else lo > low)
        if ok and high is not None:
            ok = hi < high
        if not ok:
            raise ValueError(
                f"{name} must be finite and {allowed}, got a tensor with values in "
                f"[{lo:g}, {hi:g}]" + ("" if finite else " (contains NaN/Inf)")
            )
        return
    ok = math.isfinite(value) and (value >= low if low_inclusive else value > low)
    if ok and high is not None:
        ok = value < high
    if not ok:
        raise ValueError(f"{name} must be finite and {allowed}, got {value!r}")
