"""Equalized-channel weights ``W_s``, ``W_n`` of CDDM's real-valued channel model.

After per-symbol MMSE equalization, ``y_r = W_s x + W_n n`` with ``n ~ N(0, sigma² I)``,
``sigma² = N0 / 2`` per real dimension, ``W_s = |h|² / (|h|² + N0)`` and
``W_n = |h| / (|h|² + N0)`` (diagonal, one value per complex symbol, repeated for its real and
imaginary parts). They are computed from what :func:`phy.mmse_equalize` reports, not re-derived:
its ``no_eff = N0 / (|h|² + N0)`` gives ``W_s = 1 − no_eff`` and
``W_n = sqrt(W_s · no_eff / N0)``.

For AWGN the published CDDM applies no equalization, ``W_s = W_n = 1`` (``awgn_identity``).
"""

from __future__ import annotations

import torch

import phy

__all__ = ["equalizer_weights", "latent_weights"]


def equalizer_weights(h: torch.Tensor, no: torch.Tensor | float
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per complex symbol ``(W_s, W_n)`` (real, shape of ``h``) for CSI ``h`` and noise ``no``."""
    if not (isinstance(h, torch.Tensor) and h.is_complex()):
        raise ValueError(f"h must be a complex tensor, got {getattr(h, 'dtype', type(h))}")
    no_t = torch.as_tensor(no, dtype=h.real.dtype, device=h.device)
    _, no_eff = phy.mmse_equalize(torch.zeros_like(h), h, no_t)
    w_s = 1.0 - no_eff
    w_n = (w_s * no_eff / no_t).sqrt()
    return w_s, w_n


def latent_weights(result: phy.AnalogResult, like: torch.Tensor, *,
                   awgn_identity: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """``(W_s, W_n)`` laid out like the real latent ``like`` ``[B, ...]`` sent by AnalogLink.

    AnalogLink packs consecutive reals into one complex symbol, so each symbol's weights cover
    its two real elements. ``W_n`` multiplies noise of variance ``no / 2`` per real element in
    the power-normalized domain (multiply by ``result.scale`` for the latent's own scale).
    """
    if awgn_identity:
        one = torch.ones_like(like)
        return one, one
    w_s, w_n = equalizer_weights(result.h, result.no)
    w_s = phy.unpack_complex(torch.complex(w_s, w_s), like)
    w_n = phy.unpack_complex(torch.complex(w_n, w_n), like)
    return w_s, w_n
