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
from tqdm.auto import tqdm

import phy
from experiments.reporting.results import ResultsDir
from experiments.values import FloatGrid, IntGrid
from phy.sweep import LinkPoint, make_channel, simulate_link

__all__ = ["link_curve_numbers", "plot_link_curves", "read_link_curves", "run_link_curves",
           "snr_at_bler"]


def link_curve_numbers(rows: Sequence[dict]) -> list[dict]:
    """Copies of link-curve rows (as :func:`run_link_curves` writes them, or their CSV text)
    with numbers for the SNR, BER, BLER and block count; a missing BER/BLER (a point never
    simulated, ``num_blocks = 0``, or BER under the abstraction) becomes ``nan``."""

    def num(v: object) -> float:
        return math.nan if v in ("", None) else float(v)

    return [dict(r, snr_db=float(r["snr_db"]), ber=num(r["ber"]), bler=num(r["bler"]),
                 num_blocks=int(r["num_blocks"])) for r in rows]


def read_link_curves(path: str | Path) -> list[dict]:
    """The rows of a ``link_curves.csv`` file, numbers parsed (:func:`link_curve_numbers`)."""
    import csv

    with open(path) as f:
        return link_curve_numbers(list(csv.DictReader(f)))


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


_RESUME_KEY = ("mcs", "snr_db")


def _row(channel: str, table: str, m: phy.MCS, rate: float, p: LinkPoint | None, snr: float,
         abstraction: bool) -> dict:
    """One CSV row; ``p=None`` is a point never simulated (missing, not error-free)."""
    missing = p is None or p.num_blocks == 0
    return {
        "channel": channel, "table": table, "mcs": m.index, "label": m.name,
        "modulation_order": m.modulation_order, "code_rate": m.code_rate,
        "spectral_efficiency": m.spectral_efficiency, "snr_db": snr,
        "ebno_db": snr - 10 * math.log10(m.modulation_order * rate),
        # the abstraction draws block outcomes only: it has no bit errors to count
        "ber": "" if missing or abstraction else p.ber,
        "bler": "" if missing else p.bler,
        "bit_errors": "" if abstraction else (0 if p is None else p.bit_errors),
        "block_errors": 0 if p is None else p.block_errors,
        "num_bits": 0 if p is None else p.num_bits,
        "num_blocks": 0 if p is None else p.num_blocks,
    }


def _previous_rows(resume: str | Path | None) -> dict[tuple[int, float], dict]:
    if resume is None:
        return {}
    prev = Path(resume) / "link_curves.csv"
    if not prev.is_file():
        raise ValueError(f"resume folder {str(resume)!r} holds no link_curves.csv")
    import csv

    with prev.open() as f:  # the cells as written (text), so that they are copied verbatim
        return {(int(r["mcs"]), float(r["snr_db"])): r for r in csv.DictReader(f)}


def run_link_curves(*, channel: str = "awgn", mcs: IntGrid = IntGrid((0, 5, 10)),
                    table: str = "qam64", snr_db: FloatGrid = FloatGrid(range(-5, 26)),
                    block_bits: int = 1024, batch_size: int = 100, max_batches: int = 20,
                    target_block_errors: int = 100, max_transmissions: int = 1, seed: int = 0,
                    decoder: str = "auto", abstraction: bool = False,
                    out: str | Path = "results", name: str = "link_curves",
                    resume: str | Path | None = None, progress: bool = True) -> ResultsDir:
    """Simulate every MCS of ``mcs`` over ``snr_db`` and write the results folder.

    Each (MCS, SNR) point is seeded from ``(seed, table, MCS, SNR)``
    (:func:`phy.derived_seed`) and written to ``link_curves.csv`` as soon as it finishes. After
    a point without any block error the curve's remaining SNRs are written as missing (empty
    BER/BLER, ``num_blocks = 0``). ``resume`` (an earlier folder of this command) keeps its
    finished points and simulates only the rest in that folder, which gives the same numbers
    as one uninterrupted run; its settings other than ``mcs`` and ``snr_db`` must match.
    ``abstraction`` draws block outcomes from the BLER table
    (:class:`phy.AbstractDigitalLink`) instead of decoding: BLER only, no BER.

    Args:
        channel: channel spec (:data:`phy.CHANNELS`: awgn, rayleigh, rayleigh-block[:L],
            tdl-a ... tdl-e).
        mcs: MCS indices of ``table`` (``0,5,10`` or ``start:stop:step``).
        table: MCS table, ``qam64`` or ``qam256`` (TS 38.214).
        snr_db: Es/N0 grid in dB (``start:stop:step``, stop included, or ``a,b,c``).
        block_bits: information bits per code block.
        batch_size: code blocks per batch.
        max_batches: batches per SNR point at most.
        target_block_errors: move to the next SNR after this many block errors.
        max_transmissions: Chase-HARQ transmissions (1: off).
        seed: seed of every point (with the table, MCS and SNR).
        decoder: LDPC decoder, ``auto`` (the compiled layered decoder on CPU), ``cpu`` or
            ``sionna``.
        abstraction: draw block outcomes from the BLER table instead of decoding (BLER only).
        out: root folder of the results.
        name: results folder name.
        resume: an earlier link-curves results folder: keep its points, simulate the rest.
        progress: show a progress bar.
    """
    mcs, snr_db = IntGrid.parse(mcs), FloatGrid.parse(snr_db)
    mcs_list = [phy.MCS.from_index(int(i), table) for i in mcs]  # validates before any work
    snrs = [float(s) for s in snr_db]
    if not snrs:
        raise ValueError("snr_db must contain at least one SNR")
    config = {
        "channel": channel, "mcs": [int(i) for i in mcs], "table": table,
        "snr_db": snrs, "block_bits": block_bits,
        "batch_size": batch_size, "max_batches": max_batches,
        "target_block_errors": target_block_errors, "max_transmissions": max_transmissions,
        "num_iter": 20, "demapping": "app", "crc": "CRC24B", "decoder": decoder,
        "abstraction": bool(abstraction),
    }
    link_cls = phy.AbstractDigitalLink if abstraction else phy.DigitalLink
    make_channel(channel)  # fail fast on a bad name
    phy.DigitalLink(phy.AWGN(), mcs_list[0], decoder=decoder)  # and on a bad decoder
    links = {m.index: link_cls(make_channel(channel), m, block_bits=block_bits,
                               max_transmissions=max_transmissions, decoder=decoder)
             for m in mcs_list}  # and on a channel or MCS the abstraction cannot serve
    previous = _previous_rows(resume)
    if resume is not None:  # continue in place; only the grid (MCSs, SNRs) may change
        res = ResultsDir.resume(resume, name, config, seed, extendable=("mcs", "snr_db"))
    else:
        res = ResultsDir.create(name, config, seed, root=out)
    rows: list[dict] = []
    bar = tqdm(total=len(mcs_list) * len(snrs), desc=f"link-curves {channel}", unit="point",
               disable=not progress)
    with res, bar:
        for m in mcs_list:
            link = links[m.index]
            rate = link.info_rate() / m.modulation_order
            stopped = False
            for s in snrs:
                old = previous.get((m.index, s))
                if old is not None:
                    row = dict(old)
                    stopped = int(old["num_blocks"]) > 0 and int(old["block_errors"]) == 0
                elif stopped:
                    row = _row(channel, table, m, rate, None, s, abstraction)
                else:
                    phy.set_seed(phy.derived_seed(seed, table, m.index, s))
                    bar.set_postfix(mcs=m.index, snr_db=s)
                    p = simulate_link(link, [s], batch_size=batch_size, max_batches=max_batches,
                                      target_block_errors=target_block_errors,
                                      early_stop=False, progress=False)[0]
                    row = _row(channel, table, m, rate, p, s, abstraction)
                    stopped = p.block_errors == 0
                rows.append(row)
                res.write_csv("link_curves.csv", rows)  # streamed: a killed run keeps its points
                bar.update()
        rows = link_curve_numbers(rows)  # for the plot and the summary (resumed rows are text)
        kind = "abstraction (BLER table)" if abstraction else "decoded"
        fig = plot_link_curves(rows, f"{channel}: CRC24B + 5G LDPC, {block_bits} info bits/block"
                                     f", {kind}")
        res.save_figure(fig, "link_curves.png")
        plt.close(fig)
        lines = [f"# Link curves on `{channel}`", "",
                 f"{block_bits} information bits per block, seed {seed}, {kind}. SNR is Es/N0.",
                 "", "| MCS | SE (bit/use) | SNR for BLER 10 % (dB) | Shannon limit (dB) |",
                 "|---|---|---|---|"]
        for m in mcs_list:
            s = snr_at_bler([r for r in rows if r["label"] == m.name])
            shannon = 10 * math.log10(2**m.spectral_efficiency - 1)
            lines.append(f"| {m.name} | {m.spectral_efficiency:.3f} | "
                         f"{'n/a' if s is None else f'{s:.2f}'} | {shannon:.2f} |")
        lines += ["", "Points with `num_blocks = 0` were not simulated (early stop after the "
                  "first error-free point): their BER and BLER are empty in the CSV."]
        if resume is not None:
            lines += ["", f"Resumed from `{resume}`."]
        res.write_summary("\n".join(lines) + "\n")
    return res
