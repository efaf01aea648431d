"""semcom.cddm: the channel denoising diffusion model that follows the equalizer.

So far: the schedule, SNR-matched start step and the deterministic sampler maths
(:class:`cddm.schedule.CDDMSchedule`).
"""

from __future__ import annotations

from .schedule import CDDMSchedule

__all__ = ["CDDMSchedule"]
