"""Reporting of ``semcom cddm-decoder-study``: the summary table of a
:class:`~experiments.recipes.cddm_decoder_study.CDDMDecoderStudyResult`."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from experiments.recipes.cddm_decoder_study import CDDMDecoderStudyResult

__all__ = ["decoder_study_summary"]


def decoder_study_summary(result: CDDMDecoderStudyResult) -> str:
    """``summary.md``: PSNR per system and its difference to the plain codec."""
    cfg, rows = result.config, result.rows
    base = rows[0]["psnr"]
    lines = [f"# CDDM decoder study, {cfg.codec} CBR {cfg.cbr:.4g}, {cfg.channel} "
             f"{cfg.snr_db:g} dB",
             "", f"{result.num_test_images} test crops 256x256 of {cfg.test_dir}; decoders "
             f"re-trained on {cfg.crops} 64x64 crops of {cfg.train_dir} for {cfg.steps} steps "
             f"(lr {cfg.lr:g}, cosine).", "", "| system | PSNR (dB) | vs jscc (dB) |",
             "|---|---|---|"]
    lines += [f"| {r['system']} | {r['psnr']:.2f} | {r['psnr'] - base:+.2f} |" for r in rows]
    return "\n".join(lines) + "\n"
