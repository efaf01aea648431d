"""One seed for everything random in a link simulation."""

from __future__ import annotations

import random

import numpy as np
import torch
from sionna.phy import config

__all__ = ["set_seed"]


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
