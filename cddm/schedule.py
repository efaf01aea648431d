"""The CDDM noise schedule, SNR-matched start step, channel-shaped forward process and the
deterministic reverse step (Wu et al., "CDDM: Channel Denoising Diffusion Models for Wireless
Semantic Communications", IEEE TWC 2024).

Indexing is 0-based as in the official code: index ``i = 0 … T-1`` is paper step ``t = i + 1``.
``alpha_bar[i] = prod_{s <= i} (1 - beta[s])`` and the schedule's SNR table is
``snr_db[i] = 10 log10(alpha_bar[i] / (1 - alpha_bar[i]))``.

Matching a channel to a step. After equalization each real dimension carries noise of variance
``sigma2 = 1 / (2 SNR_lin)`` (``SNR`` = Es/N0 of unit-energy complex symbols). Scaling the signal by
``sqrt(alpha_bar[m])`` gives exactly the forward marginal at step ``m`` iff
``(1 - alpha_bar[m]) / alpha_bar[m] = sigma2``, i.e. ``snr_db[m] = SNR_dB + 3.01``
(``convention="consistent"``). The published code picks ``snr_db[m] ≈ SNR_dB`` instead
(``convention="official"``) and scales the received signal by ``1 / sqrt(1 + sigma2)``: its start
step is ~3 dB noisier than the channel. Both are offered; "official" reproduces the published
numbers. Written by hand because no library provides a channel-matched diffusion schedule.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch

from phy.channels import snr_db_to_no

__all__ = ["CDDMSchedule"]

Convention = Literal["official", "consistent"]


class CDDMSchedule:
    """Betas, ``alpha_bar``, the SNR table, start steps and the forward/reverse maps.

    Args:
        T: number of diffusion steps.
        beta_start, beta_end: linear schedule end points (DDPM's 1e-4 → 0.02).
        kind: ``"linear"`` (the published default) or ``"cosine"`` (Nichol & Dhariwal, s = 0.008,
            betas clipped at 0.999).
    """

    def __init__(self, T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02,
                 kind: Literal["linear", "cosine"] = "linear") -> None:
        if isinstance(T, bool) or not isinstance(T, int) or T < 2:
            raise ValueError(f"T must be an int >= 2, got {T!r}")
        if kind == "linear":
            if not 0 < beta_start < beta_end < 1:
                raise ValueError(f"need 0 < beta_start < beta_end < 1, got beta_start="
                                 f"{beta_start}, beta_end={beta_end}")
            betas = torch.linspace(beta_start, beta_end, T, dtype=torch.float64)
        elif kind == "cosine":
            s = 0.008
            steps = torch.arange(T + 1, dtype=torch.float64) / T
            f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
            betas = (1 - f[1:] / f[:-1]).clamp(max=0.999)
        else:
            raise ValueError(f"kind must be 'linear' or 'cosine', got {kind!r}")
        self.T = T
        self.kind = kind
        self.betas = betas
        self.alphas = 1 - betas
        self.alpha_bar = torch.cumprod(self.alphas, dim=0)
        self.snr_db = 10 * torch.log10(self.alpha_bar / (1 - self.alpha_bar))

    def __repr__(self) -> str:
        return (f"CDDMSchedule(T={self.T}, kind={self.kind!r}, snr_db=[{float(self.snr_db[0]):.1f},"
                f" {float(self.snr_db[-1]):.1f}] dB)")

    # ------------------------------------------------------------------ start step
    def start_index(self, snr_db: float, convention: Convention = "official",
                    floor_db: float | None = 10.0) -> int:
        """Index ``i*`` the reverse chain starts from (``m = i* + 1`` network calls).

        ``snr_db`` is the channel's Es/N0 (dB). With ``floor_db`` the SNR is clamped from below
        first (the published default is 10 dB: never more than 93 steps). ``"consistent"``
        targets ``snr_db + 10 log10(2)``.
        """
        if convention not in ("official", "consistent"):
            raise ValueError(f"convention must be 'official' or 'consistent', got {convention!r}")
        s = float(snr_db)
        if not math.isfinite(s):
            raise ValueError(f"snr_db must be finite, got {snr_db!r}")
        if floor_db is not None:
            s = max(s, float(floor_db))
        target = s if convention == "official" else s + 10 * math.log10(2.0)
        lo, hi = float(self.snr_db[-1]), float(self.snr_db[0])
        if not lo <= target <= hi:
            raise ValueError(
                f"snr_db={snr_db} maps to a diffusion SNR of {target:.2f} dB, outside the "
                f"schedule's range [{lo:.1f}, {hi:.1f}] dB"
            )
        return int(torch.argmin((self.snr_db - target).abs()))

    def start_step(self, snr_db: float, convention: Convention = "official",
                   floor_db: float | None = 10.0) -> int:
        """Number of reverse steps ``m`` (network calls) for a channel at ``snr_db``."""
        return self.start_index(snr_db, convention, floor_db) + 1

    @staticmethod
    def received_scale(snr_db: float, convention: Convention, alpha_bar_m: float) -> float:
        """Factor applied to the equalized signal to form the start state ``x_m``.

        ``"official"``: ``1 / sqrt(1 + sigma2)``; ``"consistent"``: ``sqrt(alpha_bar_m)``, with
        ``sigma2 = 1 / (2 SNR_lin)`` the noise variance per real dimension.
        """
        if convention == "official":
            sigma2 = float(snr_db_to_no(snr_db)) / 2.0
            return 1.0 / math.sqrt(1.0 + sigma2)
        return math.sqrt(alpha_bar_m)

    # ------------------------------------------------------------------ processes
    def _ab(self, t: torch.Tensor | int, like: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t, device=like.device)
        if bool((t < 0).any()) or bool((t >= self.T).any()):
            raise ValueError(f"t must lie in [0, {self.T - 1}], got {t.tolist()}")
        ab = self.alpha_bar.to(like.device)[t].to(like.dtype)
        return ab.reshape(ab.shape + (1,) * (like.dim() - ab.dim())) if ab.dim() else ab

    def q_sample(self, x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor | int,
                 w_s: torch.Tensor | float = 1.0, w_n: torch.Tensor | float = 1.0
                 ) -> torch.Tensor:
        """Channel-shaped forward marginal: ``sqrt(ab_t) W_s x0 + sqrt(1 - ab_t) W_n eps``.

        ``t`` is a scalar or one index per example ``[B]``; ``W_s``, ``W_n`` broadcast to ``x0``
        (identity for AWGN).
        """
        if x0.shape != eps.shape:
            raise ValueError(f"x0 {tuple(x0.shape)} and eps {tuple(eps.shape)} must have one shape")
        ab = self._ab(t, x0)
        return ab.sqrt() * (w_s * x0) + (1 - ab).sqrt() * (w_n * eps)

    def reverse_step(self, x: torch.Tensor, i: int, noise: torch.Tensor) -> torch.Tensor:
        """One deterministic (DDIM, eta = 0) step from index ``i`` to ``i - 1``; at ``i = 0`` the
        clean estimate. ``noise`` is the predicted channel-shaped noise ``W_n · eps_theta``."""
        ab_i = float(self.alpha_bar[i])
        x0_hat = (x - math.sqrt(1 - ab_i) * noise) / math.sqrt(ab_i)
        if i == 0:
            return x0_hat
        ab_prev = float(self.alpha_bar[i - 1])
        return math.sqrt(ab_prev) * x0_hat + math.sqrt(1 - ab_prev) * noise

    def run_reverse(self, x_m: torch.Tensor, start_index: int,
                    eps_fn: Callable[[torch.Tensor, int], torch.Tensor],
                    w_n: torch.Tensor | float = 1.0) -> torch.Tensor:
        """Deterministic reverse chain ``i = start_index … 0``; ``eps_fn(x, i)`` predicts eps."""
        if not 0 <= start_index < self.T:
            raise ValueError(f"start_index must lie in [0, {self.T - 1}], got {start_index}")
        x = x_m
        for i in range(start_index, -1, -1):
            x = self.reverse_step(x, i, w_n * eps_fn(x, i))
        return x
