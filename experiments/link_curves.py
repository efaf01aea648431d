"""``semcom link-curves``: BER and BLER vs SNR of the 5G digital chain, per MCS.

Writes ``results/<name>/<timestamp>/`` with ``config.yaml``, ``manifest.json``,
``link_curves.csv`` (one row per MCS and SNR, with the Monte-Carlo counts), ``link_curves.png``
(BER and BLER panels) and ``summary.md`` (SNR needed for BLER 10 % per MCS).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

import phy
from experiments.results import ResultsDir
from phy.sweep import make_channel, simulate_link

__all__ = ["plot_link_curves", "read_link_curves", "run_link_curves", "snr_at_bler"]


def read_link_curves(path: str | Path) -> list[dict]:
    """The rows of a ``link_curves.csv``, numbers parsed; missing BER/BLER (points never
    simulated, ``num_blocks = 0``) become ``nan``."""
    import csv

    def num(text: str) -> float:
        return math.nan if text == "" else float(text)

    with open(path) as f:
        return [dict(r, snr_db=float(r["snr_db"]), ber=num(r["ber"]), bler=num(r["bler"]),
                     num_blocks=int(r["num_blocks"])) for r in csv.DictReader(f)]


def snr_at_bler(rows: Sequence[dict], target: float = 0.1) -> float | None:
    """SNR (dB) where a simulated BLER curve crosses ``target`` (log-linear interpolation)."""
    pts = [(r["snr_db"], r["bler"]) for r in rows if r["num_blocks"] > 0]
    for (s0, b0), (s1, b1) in itertools.pairwise(pts):
        if b0 > target >= b1:
            if b1 <= 0:
                return s1
            f = (math.log10(b0) - math.log10(target)) / (math.log10(b0) - math.log10(b1))
            return s0 + f * (s1 - s0)
    if pts and pts[0][1] <= target:
        return pts[0][0]
    return None


def plot_link_curves(rows: Sequence[dict], title: str) -> plt.Figure:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharex=True)
    labels = sorted({r["label"] for r in rows}, key=lambda s: [r["label"] for r in rows].index(s))
    for label in labels:
        sel = [r for r in rows if r["label"] == label and r["num_blocks"] > 0]
        for ax, key in zip(axes, ("ber", "bler"), strict=True):
            pts = [(r["snr_db"], r[key]) for r in sel if r[key] > 0]
            if pts:
                ax.semilogy(*zip(*pts, strict=True), marker="o", ms=3, label=label)
    for ax, key in zip(axes, ("BER (information bits)", "BLER (CRC failures)"), strict=True):
        ax.set_xlabel("SNR $E_s/N_0$ (dB)")
        ax.set_ylabel(key)
        ax.grid(True, which="both", alpha=0.3)
        ax.set_ylim(bottom=1e-6)
    axes[1].axhline(0.1, color="grey", ls=":", lw=1)
    axes[1].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def run_link_curves(*, channel: str = "awgn", mcs: Sequence[int] = (0, 5, 10),
                    table: str = "qam64", snr_db: Sequence[float] = tuple(range(-5, 26)),
                    block_bits: int = 1024, batch_size: int = 100, max_batches: int = 20,
                    target_block_errors: int = 100, max_transmissions: int = 1, seed: int = 0,
                    decoder: str = "auto",
                    out: str | Path = "results", name: str = "link_curves",
                    progress: bool = True) -> ResultsDir:
    """Simulate every MCS of ``mcs`` over ``snr_db`` and write the results folder."""
    mcs_list = [phy.MCS.from_index(int(i), table) for i in mcs]  # validates before any work
    config = {
        "channel": channel, "mcs": [int(i) for i in mcs], "table": table,
        "snr_db": [float(s) for s in snr_db], "block_bits": block_bits,
        "batch_size": batch_size, "max_batches": max_batches,
        "target_block_errors": target_block_errors, "max_transmissions": max_transmissions,
        "num_iter": 20, "demapping": "app", "crc": "CRC24B", "decoder": decoder,
    }
    make_channel(channel)  # fail fast on a bad name
    phy.DigitalLink(phy.AWGN(), mcs_list[0], decoder=decoder)  # and on a bad decoder
    res = ResultsDir.create(name, config, seed, root=out)
    rows: list[dict] = []
    with res:
        for m in mcs_list:
            phy.set_seed(seed)
            link = phy.DigitalLink(make_channel(channel), m, block_bits=block_bits,
                                   max_transmissions=max_transmissions, decoder=decoder)
            rate = link.info_rate() / m.modulation_order
            points = simulate_link(link, snr_db, batch_size=batch_size, max_batches=max_batches,
                                   target_block_errors=target_block_errors, progress=progress,
                                   desc=f"{channel} {m.name}")
            for p in points:
                rows.append({
                    "channel": channel, "table": table, "mcs": m.index, "label": m.name,
                    "modulation_order": m.modulation_order, "code_rate": m.code_rate,
                    "spectral_efficiency": m.spectral_efficiency,
                    "snr_db": p.snr_db,
                    "ebno_db": p.snr_db - 10 * math.log10(m.modulation_order * rate),
                    # a point never simulated is missing (empty), not error-free
                    "ber": "" if p.num_blocks == 0 else p.ber,
                    "bler": "" if p.num_blocks == 0 else p.bler, "bit_errors": p.bit_errors,
                    "block_errors": p.block_errors, "num_bits": p.num_bits,
                    "num_blocks": p.num_blocks,
                })
        res.write_csv("link_curves.csv", rows)
        fig = plot_link_curves(rows, f"{channel}: CRC24B + 5G LDPC, {block_bits} info bits/block")
        res.save_figure(fig, "link_curves.png")
        plt.close(fig)
        lines = [f"# Link curves on `{channel}`", "",
                 f"{block_bits} information bits per block, seed {seed}. SNR is Es/N0.", "",
                 "| MCS | SE (bit/use) | SNR for BLER 10 % (dB) | Shannon limit (dB) |",
                 "|---|---|---|---|"]
        for m in mcs_list:
            s = snr_at_bler([r for r in rows if r["label"] == m.name])
            shannon = 10 * math.log10(2**m.spectral_efficiency - 1)
            lines.append(f"| {m.name} | {m.spectral_efficiency:.3f} | "
                         f"{'n/a' if s is None else f'{s:.2f}'} | {shannon:.2f} |")
        lines += ["", "Points with `num_blocks = 0` were not simulated (early stop after the "
                  "first error-free point): their BER and BLER are empty in the CSV."]
        res.write_summary("\n".join(lines) + "\n")
    return res
