"""SNR-matched deterministic sampling (Algorithm 2 of CDDM) on what :class:`phy.AnalogLink` returns.

The sampler works in the link's power-normalized domain: the real latent divided by the link's
per-example ``scale``, consecutive reals paired into unit-energy complex symbols (as
:func:`phy.pack_complex` does). Its input is the MMSE-equalized signal ``z_eq`` (what
``AnalogLink`` delivers, divided by ``scale``), the CSI ``h`` and the channel SNR; its output
estimates ``W_s x`` (``x`` itself on AWGN), with ``W_s`` taken at the design SNR.

Published behaviour, each behind a flag:

* ``convention="official"``: start step from ``snr_db`` and the start state scaled by
  ``1 / sqrt(1 + sigma²)``; ``"consistent"`` matches the diffusion SNR to the channel's
  (``+3.01 dB``) and scales by ``sqrt(alpha_bar_m)`` (see :mod:`cddm.schedule`).
* ``floor_db=10``: SNRs below the floor start from the floor's step (at most 93 steps).
* ``design_snr_offset_db=3``: on fading channels the sampler re-equalizes with ``W_s``, ``W_n``
  computed at ``snr_db + 3 dB`` (the SNR the JSCC encoder was trained at).
* ``awgn_identity=True``: on AWGN (``h`` is None or all ones) no equalization is applied
  (``W_s = W_n = 1``): the raw received signal starts the chain.

The equalized signal is converted, not recomputed: MMSE output = ``W_s(no) · y / h``, so the
unbiased ``y / h`` is ``z_eq / W_s(no)`` and re-equalizing at another noise level multiplies by
that level's ``W_s``. Written by hand: no library samples a channel-matched diffusion chain.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

import phy
from phy.channels import snr_db_to_no

from .schedule import CDDMSchedule, Convention
from .weights import equalizer_weights

__all__ = ["CDDMSampler", "expand_symbols"]


def expand_symbols(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Per complex symbol values ``[B, n]`` (real) laid out like the real tensor ``like``.

    Each symbol covers the two consecutive reals it carries (see :func:`phy.pack_complex`).
    """
    return phy.unpack_complex(torch.complex(v, v), like)


class CDDMSampler:
    """Runs the reverse chain of a trained noise predictor from the received signal.

    Args:
        net: ε-predictor called as ``net(x_t, t, h_abs)`` (``t``: ``[B]`` 0-based step indices).
        schedule: the schedule the net was trained with (default ``CDDMSchedule()``).
        convention: ``"official"`` or ``"consistent"`` start step and scaling.
        floor_db: clamp the SNR from below when choosing the start step (None: no floor).
        design_snr_offset_db: the fading-channel equalizer and ``W_n`` use
            ``snr_db + design_snr_offset_db`` unless ``design_snr_db`` is given.
        awgn_identity: on AWGN use the raw received signal (``W_s = W_n = 1``) as published;
            False keeps the MMSE weights on AWGN too.
    """

    def __init__(self, net: nn.Module, schedule: CDDMSchedule | None = None, *,
                 convention: Convention = "official", floor_db: float | None = 10.0,
                 design_snr_offset_db: float = 3.0, awgn_identity: bool = True) -> None:
        if convention not in ("official", "consistent"):
            raise ValueError(f"convention must be 'official' or 'consistent', got {convention!r}")
        self.net = net
        self.schedule = schedule or CDDMSchedule()
        net_T = getattr(net, "config", {}).get("T") if hasattr(net, "config") else None
        if net_T is not None and int(net_T) != self.schedule.T:
            raise ValueError(f"the net was built for T={net_T} steps but the schedule has "
                             f"T={self.schedule.T}")
        self.convention: Convention = convention
        self.floor_db = floor_db
        self.design_snr_offset_db = float(design_snr_offset_db)
        self.awgn_identity = bool(awgn_identity)

    def __repr__(self) -> str:
        return (f"CDDMSampler(convention={self.convention!r}, floor_db={self.floor_db}, "
                f"design_snr_offset_db={self.design_snr_offset_db}, {self.schedule!r})")

    # ------------------------------------------------------------------ steps
    def num_steps(self, snr_db: float) -> int:
        """Network calls ``m`` the chain makes at ``snr_db`` (dB)."""
        return self.schedule.start_step(snr_db, self.convention, self.floor_db)

    @staticmethod
    def _is_awgn(h: torch.Tensor | None) -> bool:
        return h is None or bool((h == 1).all())

    def _per_example_snr(self, snr_db: float | torch.Tensor | Sequence[float], batch: int
                         ) -> list[float]:
        return phy.snr_per_example(snr_db, batch)

    # ------------------------------------------------------------------ main API
    @torch.no_grad()
    def denoise(self, z_eq: torch.Tensor, h: torch.Tensor | None,
                snr_db: float | torch.Tensor, design_snr_db: float | None = None
                ) -> torch.Tensor:
        """Denoise the MMSE-equalized, power-normalized signal ``z_eq`` ``[B, ...]``.

        Args:
            z_eq: real, ``[B, ...]``: MMSE output divided by the link's ``scale``.
            h: complex CSI per symbol ``[B, n_sym]`` (``AnalogResult.h``); None for AWGN.
            snr_db: channel Es/N0 (dB), scalar or ``[B]``; examples are grouped by start step.
            design_snr_db: SNR (dB) of the fading equalizer and ``W_n``; default
                ``snr_db + design_snr_offset_db``.

        Returns:
            The estimate of ``W_s x`` (``x`` on AWGN), shape and dtype of ``z_eq``.
        """
        if not z_eq.is_floating_point() or z_eq.dim() < 2:
            raise ValueError(f"z_eq must be a real tensor [B, ...], got dtype {z_eq.dtype} and "
                             f"shape {tuple(z_eq.shape)}")
        b = z_eq.shape[0]
        n_sym = (z_eq[0].numel() + 1) // 2
        if h is None:
            h = torch.ones(b, n_sym, dtype=torch.complex64, device=z_eq.device)
        if not h.is_complex() or tuple(h.shape) != (b, n_sym):
            raise ValueError(f"h must be complex with shape [B, n_sym] = {(b, n_sym)} for z_eq of "
                             f"shape {tuple(z_eq.shape)}, got {h.dtype} {tuple(h.shape)}")
        snrs = self._per_example_snr(snr_db, b)
        latent_shape = getattr(self.net, "latent_shape", None)
        if latent_shape is not None and not _compatible(tuple(latent_shape),
                                                        tuple(z_eq.shape[1:])):
            raise ValueError(f"the CDDM net was built for latents of shape {tuple(latent_shape)},"
                             f" got z_eq of shape {tuple(z_eq.shape[1:])}")
        awgn = self._is_awgn(h) and self.awgn_identity
        h = h.to(z_eq.device)
        out = torch.empty_like(z_eq)
        starts = [self.schedule.start_index(s, self.convention, self.floor_db) for s in snrs]
        groups: dict[tuple[int, float], list[int]] = {}
        for k, (i0, s) in enumerate(zip(starts, snrs, strict=True)):
            groups.setdefault((i0, s), []).append(k)
        for (i0, s), idx in groups.items():
            sel = torch.tensor(idx, device=z_eq.device)
            out[sel] = self._chain(z_eq[sel], h[sel], s, i0, awgn, design_snr_db)
        return out

    def _chain(self, z_eq: torch.Tensor, h: torch.Tensor, snr_db: float, start: int,
               awgn: bool, design_snr_db: float | None) -> torch.Tensor:
        no = float(snr_db_to_no(snr_db))
        w_s_true, _ = equalizer_weights(h, no)
        y_unbiased = z_eq / expand_symbols(w_s_true.clamp_min(1e-12), z_eq)
        h_abs = expand_symbols(h.abs(), z_eq)
        if awgn:
            y, w_n = y_unbiased, torch.ones_like(z_eq)
        else:
            s_d = snr_db + self.design_snr_offset_db if design_snr_db is None else design_snr_db
            w_s_d, w_n_d = equalizer_weights(h, float(snr_db_to_no(float(s_d))))
            y = expand_symbols(w_s_d, z_eq) * y_unbiased
            w_n = expand_symbols(w_n_d, z_eq)
        ab_m = float(self.schedule.alpha_bar[start])
        x_m = y * self.schedule.received_scale(snr_db, self.convention, ab_m)
        was_training = self.net.training
        self.net.eval()
        try:
            def eps_fn(x: torch.Tensor, i: int) -> torch.Tensor:
                t = torch.full((x.shape[0],), i, dtype=torch.long, device=x.device)
                return self.net(x, t, h_abs)

            return self.schedule.run_reverse(x_m, start, eps_fn, w_n=w_n)
        finally:
            self.net.train(was_training)

    @torch.no_grad()
    def denoise_result(self, r: phy.AnalogResult, snr_db: float | torch.Tensor,
                       design_snr_db: float | None = None) -> torch.Tensor:
        """Denoise an :class:`phy.AnalogResult`; returns the latent in its own scale."""
        scale = r.scale.to(r.z_hat.device).reshape((-1,) + (1,) * (r.z_hat.dim() - 1))
        x_hat = self.denoise(r.z_hat / scale, r.h.to(r.z_hat.device), snr_db, design_snr_db)
        return x_hat * scale


def _compatible(trained: tuple[int, ...], got: tuple[int, ...]) -> bool:
    """Vector nets need the trained shape; image latents ``(C, H, W)`` the same ``C`` (the
    U-Net is fully convolutional)."""
    if len(trained) == 3 and len(got) == 3:
        return trained[0] == got[0]
    return trained == got
