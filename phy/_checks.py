"""Input validation shared by the ``phy`` blocks.

Every check raises :class:`ValueError` (or :class:`TypeError` for a wrong Python type) with a
message that names the parameter, the value received and what is allowed, so that bad input
never turns into a silent NaN or a hang further down the chain.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

#: SNR range (dB) accepted by every link. Outside of it the simulation is meaningless for
#: float32 (noise below the mantissa of unit-power symbols, or signal drowned by 1e6x noise).
SNR_DB_MIN: float = -60.0
SNR_DB_MAX: float = 100.0


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
    if x.numel() == 0:
        raise ValueError(f"{name} must not be empty, got {_describe(x)}")


def check_finite(name: str, x: torch.Tensor) -> None:
    if not bool(torch.isfinite(x).all()):
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
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} must be finite, got {t.tolist()}")
    lo, hi = float(t.min()), float(t.max())
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
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        allowed = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise ValueError(f"{name} must be {allowed}, got {value}")
    return value


def check_positive_float(name: str, value: float, *, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    v = float(value)
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        allowed = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be finite and {allowed}, got {value!r}")
    return v


def check_choice(name: str, value: str, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {list(allowed)}, got {value!r}")
    return value
