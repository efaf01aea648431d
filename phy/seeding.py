"""One seed for everything random in a link simulation."""

from __future__ import annotations

import random
import zlib

import numpy as np
import torch
from sionna.phy import config

__all__ = ["derived_seed", "rng_state", "set_rng_state", "set_seed"]


def derived_seed(seed: int, *keys: object) -> int:
    """A seed for one unit of work (an SNR point, an MCS, ...) from the run's ``seed`` and the
    unit's ``keys``: the same keys give the same seed whatever ran before, so a resumed sweep
    draws exactly what the uninterrupted one would have (CRC32 of their text, in
    ``[0, 2^32)``; floats are written with 6 decimals)."""
    text = "/".join([str(seed), *(f"{k:.6f}" if isinstance(k, float) else str(k) for k in keys)])
    return zlib.crc32(text.encode())


def set_seed(seed: int) -> None:
    """Seed Sionna's generators (channel gains, noise, bit sources), torch, NumPy and ``random``.

    Sionna draws with its own per-device ``torch.Generator`` seeded only through
    ``sionna.phy.config.seed``; seeding torch alone does not make its noise repeatable.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    config.seed = seed
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - seeds legacy global users too
    random.seed(seed)


def rng_state(device: str = "cpu") -> dict:
    """A snapshot of Sionna's generator on ``device`` (channel gains, noise) and torch's global
    CPU generator, for checkpoints: :func:`set_rng_state` continues both streams exactly."""
    return {"sionna_torch": config.torch_rng(device).get_state(),
            "torch": torch.get_rng_state(), "device": device}


def set_rng_state(state: dict) -> None:
    """Restore a snapshot taken by :func:`rng_state` (on the device it was taken on)."""
    if not isinstance(state, dict) or "sionna_torch" not in state:
        raise ValueError("state must be a dict returned by phy.rng_state()")
    config.torch_rng(state.get("device", "cpu")).set_state(state["sionna_torch"])
    torch.set_rng_state(state["torch"])
