"""Single-antenna (per-symbol) equalizers with their effective noise variance.

Both functions take the receiver's view ``(y, h, no)`` of :class:`phy.ChannelOutput` and return
``(x_hat, no_eff)`` of the shape of ``y``.

Why these are written here rather than taken from :func:`sionna.phy.mimo.lmmse_equalizer`:
Sionna's MIMO equalizers work on ``[..., M, K]`` matrices and return the *unbiased* estimate
(for one antenna that is zero-forcing). A JSCC decoder or a diffusion denoiser wants the
*biased*, MSE-minimising estimate, and doing one 1x1 matrix inversion per symbol is wasteful.
The closed forms below are exact for SISO; ``tests/test_equalization.py`` checks them against
Sionna's ``lmmse_equalizer``.
"""

from __future__ import annotations

import torch

__all__ = ["mmse_equalize", "zf_equalize"]

#: |h|^2 floor for zero forcing, so that a deep fade gives a huge (not infinite) noise variance.
_ZF_GAIN_FLOOR = 1e-12


def _check_inputs(y: torch.Tensor, h: torch.Tensor, no: torch.Tensor | float) -> torch.Tensor:
    if not (isinstance(y, torch.Tensor) and y.is_complex()):
        raise ValueError(f"y must be a complex tensor, got {getattr(y, 'dtype', type(y))}")
    if not (isinstance(h, torch.Tensor) and h.is_complex()):
        raise ValueError(f"h must be a complex tensor, got {getattr(h, 'dtype', type(h))}")
    try:
        torch.broadcast_shapes(y.shape, h.shape)
    except RuntimeError as err:
        raise ValueError(
            f"h of shape {tuple(h.shape)} does not broadcast to y of shape {tuple(y.shape)}"
        ) from err
    no_t = torch.as_tensor(no, dtype=y.real.dtype, device=y.device)
    if no_t.is_complex() or not bool((no_t > 0).all()) or not bool(torch.isfinite(no_t).all()):
        raise ValueError("no must be real, finite and > 0 (complex noise variance N0)")
    return no_t


def mmse_equalize(y: torch.Tensor, h: torch.Tensor,
                  no: torch.Tensor | float) -> tuple[torch.Tensor, torch.Tensor]:
    """Biased (MSE-minimising) linear MMSE estimate of unit-energy symbols.

    .. math::
        \\hat x = \\frac{h^* y}{|h|^2 + N_0}, \\qquad
        N_{\\mathrm{eff}} = E|\\hat x - x|^2 = \\frac{N_0}{|h|^2 + N_0}

    ``no_eff`` is the mean squared error per complex symbol given ``h`` (it assumes
    :math:`E|x|^2 = 1`). Under Rayleigh fading its average is
    :math:`\\sigma^2 e^{\\sigma^2} E_1(\\sigma^2)` with :math:`\\sigma^2 = N_0`.
    A symbol in a perfect null (``h = 0``) is estimated as 0 with ``no_eff = 1``.

    Args:
        y: received complex symbols ``[..., n]``.
        h: complex channel gains, broadcastable to ``y``.
        no: complex noise variance :math:`N_0` (linear), broadcastable to ``y``.

    Returns:
        ``(x_hat, no_eff)``: complex estimate and real effective noise variance, shape of ``y``.
    """
    no_t = _check_inputs(y, h, no)
    g = h.real.square() + h.imag.square()
    den = g + no_t
    x_hat = h.conj() * y / den
    no_eff = (no_t / den).expand(x_hat.shape)
    return x_hat, no_eff


def zf_equalize(y: torch.Tensor, h: torch.Tensor,
                no: torch.Tensor | float) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-forcing (unbiased) estimate, the input a demapper expects.

    .. math::
        \\hat x = y / h, \\qquad N_{\\mathrm{eff}} = N_0 / |h|^2

    For one antenna this equals Sionna's unbiased LMMSE equalizer. ``|h|^2`` is floored at
    1e-12 so that a perfect null yields a very large, finite ``no_eff``.

    Returns:
        ``(x_hat, no_eff)`` of the shape of ``y``.
    """
    no_t = _check_inputs(y, h, no)
    g = (h.real.square() + h.imag.square()).clamp_min(_ZF_GAIN_FLOOR)
    x_hat = h.conj() * y / g
    no_eff = (no_t / g).expand(x_hat.shape)
    return x_hat, no_eff
