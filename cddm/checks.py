"""Input validation of :mod:`cddm` (generic checks are :mod:`phy.checks`)."""

from __future__ import annotations

import torch

__all__ = ["check_h_abs", "check_steps"]


def check_h_abs(x_t: torch.Tensor, h_abs: torch.Tensor) -> torch.Tensor:
    """``h_abs`` (the channel amplitude per element) checked against ``x_t``, in its dtype."""
    if not isinstance(h_abs, torch.Tensor):
        raise ValueError(f"h_abs must be a tensor shaped like x_t {tuple(x_t.shape)}, got "
                         f"{type(h_abs).__name__}")
    if h_abs.shape != x_t.shape:
        raise ValueError(f"h_abs must have the shape of x_t {tuple(x_t.shape)}, got "
                         f"{tuple(h_abs.shape)}")
    if h_abs.is_complex():
        raise ValueError("h_abs must be the real amplitude |h|, got a complex tensor")
    return h_abs.to(x_t.dtype)


def check_steps(t: torch.Tensor | int, batch: int, T: int, device: torch.device) -> torch.Tensor:
    """``t`` as a LongTensor ``[batch]`` on ``device``; a scalar is broadcast to the batch."""
    t = torch.as_tensor(t, device=device)
    if t.dtype.is_floating_point or t.is_complex() or t.dtype == torch.bool:
        raise ValueError(f"t must hold integer step indices, got dtype {t.dtype}")
    if t.dim() == 0:
        t = t.expand(batch)
    if t.shape != (batch,):
        raise ValueError(f"t must have shape [{batch}] (one step index per example), got "
                         f"{tuple(t.shape)}")
    if t.device.type != "meta" and batch > 0:
        lo, hi = int(t.min()), int(t.max())
        if lo < 0 or hi >= T:
            bad = lo if lo < 0 else hi
            raise ValueError(f"t must lie in [0, {T}) (0-based step indices, T={T}), got {bad}")
    return t.long()
