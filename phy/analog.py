"""Analog (uncoded) transmission of real tensors: the link a JSCC codec or CDDM uses.

``AnalogLink.send(z, snr_db)`` does, for a real tensor ``z`` of shape ``[B, ...]``:

1. **Packing.** Each example is flattened in C order to ``D`` reals; consecutive pairs become one
   complex channel symbol, ``s[i] = z[2i] + 1j * z[2i + 1]``. If ``D`` is odd, one zero is appended
   (and dropped at the receiver). So one example uses ``ceil(D / 2)`` complex channel uses.
2. **Power normalization.** ``x = s / scale`` with ``scale = sqrt(mean |s|^2)`` taken per example
   (``power_norm="sample"``) or over the whole batch (``"batch"``), so the transmitted symbols
   have unit average energy (:math:`E_s = 1`) and ``snr_db`` is the true :math:`E_s/N_0`.
3. **Channel** ``channel(x, snr_db)``.
4. **Equalization** with :func:`phy.mmse_equalize` (biased MMSE, per symbol).
5. **De-normalization and unpacking** back to the shape and dtype of ``z``.

What the receiver is assumed to know (stated here because results depend on it):

* ``scale`` (one real number per example, or per batch), as error-free side information;
* the channel gain ``h`` of every symbol (perfect CSI), and ``no``.

``AnalogResult.noise_var`` is the expected squared error per real element,
``scale**2 * no_eff / 2``: half the complex-symbol MSE of the MMSE estimate, which is exact on
average when the real and imaginary parts of the symbols carry equal power.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from .channels import Channel
from .checks import check_choice, check_real
from .equalization import mmse_equalize

__all__ = ["AnalogLink", "AnalogResult", "analog_channel_uses", "pack_complex",
           "unpack_complex"]


@dataclass(frozen=True)
class AnalogResult:
    """Result of :meth:`AnalogLink.send`.

    Attributes:
        z_hat: real estimate of ``z``, same shape and dtype.
        noise_var: expected squared error per real element of ``z_hat`` (same shape).
        h: complex channel gain per channel use, ``[B, channel_uses]`` (perfect CSI).
        channel_uses: complex channel uses per example, ``ceil(D / 2)``.
        scale: power-normalization factor per example, ``[B]`` (equal entries for
            ``power_norm="batch"``); the transmitted symbols are ``s / scale``.
        no: complex noise variance of the channel, broadcastable to ``[B, channel_uses]``.
    """

    z_hat: torch.Tensor
    noise_var: torch.Tensor
    h: torch.Tensor
    channel_uses: int
    scale: torch.Tensor
    no: torch.Tensor


def analog_channel_uses(num_reals: int | torch.Tensor) -> int | torch.Tensor:
    """Complex channel uses of ``num_reals`` real values sent two per use (:func:`pack_complex`):
    ``ceil(num_reals / 2)``; an int for an int, else a tensor."""
    if isinstance(num_reals, torch.Tensor):
        return torch.ceil(num_reals / 2)
    return (int(num_reals) + 1) // 2


def pack_complex(z: torch.Tensor) -> torch.Tensor:
    """``[B, ...]`` real → ``[B, ceil(D/2)]`` complex, pairing consecutive reals (C order)."""
    flat = z.reshape(z.shape[0], -1)
    if flat.shape[1] % 2:
        flat = torch.nn.functional.pad(flat, (0, 1))
    flat = flat.to(torch.float64 if flat.dtype == torch.float64 else torch.float32)
    return torch.view_as_complex(flat.reshape(flat.shape[0], -1, 2).contiguous())


def unpack_complex(s: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`pack_complex`: back to the shape and dtype of ``like``."""
    flat = torch.view_as_real(s).reshape(s.shape[0], -1)
    d = like[0].numel()
    return flat[:, :d].reshape(like.shape).to(like.dtype)


class AnalogLink:
    """Real tensor → unit-power complex symbols → channel → MMSE → real tensor.

    Args:
        channel: any :class:`phy.Channel` (``AWGN()``, ``RayleighFading(...)``, ``OFDMTDL(...)``).
        power_norm: ``"sample"`` normalizes each example to unit average symbol energy;
            ``"batch"`` normalizes the whole batch at once (one scale), as in some JSCC papers.

    Example:
        >>> link = AnalogLink(AWGN())
        >>> r = link.send(torch.randn(8, 16, 8, 8), snr_db=10.0)
        >>> r.z_hat.shape, r.channel_uses
        (torch.Size([8, 16, 8, 8]), 512)

    Gradients flow from ``z_hat`` back to ``z`` (the noise is additive), so the link can sit
    inside a model trained end to end.
    """

    def __init__(self, channel: Channel,
                 power_norm: Literal["sample", "batch"] = "sample") -> None:
        if not callable(channel):
            raise TypeError(f"channel must be a phy channel, got {type(channel).__name__}")
        self.channel = channel
        self.power_norm = check_choice("power_norm", power_norm, ("sample", "batch"))

    def __repr__(self) -> str:
        return f"AnalogLink({self.channel!r}, power_norm={self.power_norm!r})"

    @staticmethod
    def channel_uses_for(shape: tuple[int, ...] | torch.Size) -> int:
        """Complex channel uses per example for a payload of ``shape = [B, ...]``."""
        d = 1
        for s in tuple(shape)[1:]:
            d *= int(s)
        return analog_channel_uses(d)

    def send(self, z: torch.Tensor, snr_db: float | torch.Tensor) -> AnalogResult:
        """Transmit the real tensor ``z`` ``[B, ...]`` at ``snr_db`` (Es/N0, dB; scalar or [B])."""
        check_real("z", z)
        if z.dim() < 2:
            raise ValueError(
                f"z must have a batch axis and at least one payload axis [B, ...], got shape "
                f"{tuple(z.shape)}"
            )
        s = pack_complex(z)
        power = s.real.square() + s.imag.square()
        if self.power_norm == "sample":
            p = power.mean(dim=1)
        else:
            p = power.mean().expand(s.shape[0])
        if not bool((p > 0).all()):
            # An all-zero example carries no energy: send silence, avoid dividing by zero.
            p = torch.where(p > 0, p, torch.ones_like(p))
        scale = p.sqrt()
        x = s / scale[:, None]
        out = self.channel(x.to(torch.complex64) if x.dtype != torch.complex64 else x, snr_db)
        x_hat, no_eff = mmse_equalize(out.y, out.h, out.no)
        s_hat = x_hat.to(s.dtype) * scale[:, None].to(x_hat.device)
        z_hat = unpack_complex(s_hat, z)
        var_sym = (no_eff * scale[:, None].to(no_eff.device).square() / 2.0)
        noise_var = unpack_complex(torch.complex(var_sym, var_sym), z).to(z.dtype)
        return AnalogResult(
            z_hat=z_hat,
            noise_var=noise_var,
            h=out.h,
            channel_uses=s.shape[1],
            scale=scale.detach(),
            no=out.no,
        )
