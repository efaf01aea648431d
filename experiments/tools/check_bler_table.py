"""Cross-check the shipped BLER table against the tables Sionna's link abstraction ships.

:class:`sionna.sys.PHYAbstraction` holds AWGN BLER curves per MCS and code-block size (CBS, the
LDPC information length, 24 to 2000 bits), made by Sionna's own 5G chain (LDPC5GEncoder/Decoder,
sum-product, 20 iterations, no CRC). For every MCS of the TS 38.214 PDSCH tables (Sionna's
category 1: table 1 = ``qam64``, table 2 = ``qam256``) and every CBS inside the block sizes our
table covers, this compares the SNR at which the BLER crosses ``target`` (0.1 by default): ours
at ``k = CBS - 24`` information bits (our blocks carry a CRC24B; between simulated sizes the
lookup interpolates in ``log k``), Sionna's by log-linear interpolation between its grid points
(1.8 dB apart; a crossing onto a zero BLER takes the zero as 1/3000, its resolution). A CBS up
to 10 % outside our sizes is compared with the nearest one.

Sionna's PUSCH files (category 0) are compared too, but they do not fit the 64QAM/256QAM MCS
tables their index claims (PUSCH table 2, MCS 27 reaches BLER 0.1 at 15 dB, 7 dB below the
Shannon limit of 256QAM at R = 0.93), so the summary rates the PDSCH comparison only.

:func:`check_bler_table` turns a :class:`CheckBLERTableConfig` into the comparison
(:class:`BLERTableCheck`); :func:`run_check_bler_table`, the command, writes it to a results
folder.

Usage::

    python -m experiments.tools.check_bler_table [--target 0.1] [--out results]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

import phy
from experiments.cli import entry_point
from experiments.recipes.config import resolve_config
from experiments.reporting.results import ResultsDir
from phy.codeblock import CRC_BITS

__all__ = ["BLERTableCheck", "CheckBLERTableConfig", "check_bler_table", "compare_to_sionna",
           "run_check_bler_table", "sionna_bracket", "sionna_snr_at_bler"]

#: Sionna's (category, table index) -> our MCS table name.
_SIONNA_TABLES = {(1, 1): "qam64", (1, 2): "qam256", (0, 1): "qam64", (0, 2): "qam256"}
_CATEGORY = {0: "PUSCH", 1: "PDSCH"}
_ZERO_BLER = 1 / 3000  # resolution of Sionna's shipped curves
#: A CBS up to 10 % outside our simulated block sizes is compared with the nearest size (the
#: waterfall moves by a few hundredths of a dB for a 10 % change of k).
_K_SLACK = 0.1


def sionna_snr_at_bler(snr_db: np.ndarray, bler: np.ndarray, target: float) -> float:
    """First downward crossing of ``target`` (log-linear between grid points); nan if none."""
    snr_db, bler = np.asarray(snr_db, float), np.asarray(bler, float)
    if bler[0] <= target:
        return math.nan  # below the grid: no crossing to read
    for i in range(len(bler) - 1):
        if bler[i] > target >= bler[i + 1]:
            b1 = max(bler[i + 1], _ZERO_BLER)
            f = (math.log10(bler[i]) - math.log10(target)) / (math.log10(bler[i])
                                                               - math.log10(b1))
            return float(snr_db[i] + f * (snr_db[i + 1] - snr_db[i]))
    return math.nan


def sionna_bracket(snr_db: np.ndarray, bler: np.ndarray, target: float) -> tuple[float, float]:
    """The grid interval ``(lo, hi)`` (dB) of the first downward crossing of ``target``: all a
    curve on a 1.8 dB grid says about where it crosses (a steep waterfall may cross anywhere
    inside; the log-linear reading of :func:`sionna_snr_at_bler` is one guess). nan if none."""
    snr_db, bler = np.asarray(snr_db, float), np.asarray(bler, float)
    if bler[0] <= target:
        return math.nan, math.nan
    for i in range(len(bler) - 1):
        if bler[i] > target >= bler[i + 1]:
            return float(snr_db[i]), float(snr_db[i + 1])
    return math.nan, math.nan


def compare_to_sionna(table: phy.BlerTable | None = None, target: float = 0.1,
                      channel: str = "awgn") -> list[dict[str, Any]]:
    """One row per (category, table, MCS, CBS): both SNRs at ``target`` and their gap (dB)."""
    from sionna.sys import PHYAbstraction

    bt = phy.load_bler_table() if table is None else table
    sionna_tables = PHYAbstraction(device="cpu").bler_table["category"]
    rows = []
    for (cat, ti), name in _SIONNA_TABLES.items():
        for index, entry in sorted(sionna_tables[cat]["index"][ti]["MCS"].items()):
            mcs = phy.MCS.from_index(int(index), name)
            if not bt.has_curve(mcs, channel):
                continue
            sizes = bt.block_sizes(channel, name, mcs.index)
            for cbs, curve in sorted(entry["CBS"].items()):
                k = int(cbs) - CRC_BITS
                if not sizes[0] * (1 - _K_SLACK) <= k <= sizes[-1] * (1 + _K_SLACK):
                    continue  # outside the sizes we simulated: no comparison
                s_sionna = sionna_snr_at_bler(entry["SNR_db"], curve["BLER"], target)
                lo, hi = sionna_bracket(entry["SNR_db"], curve["BLER"], target)
                s_ours = bt.snr_at_bler(mcs, target, channel, block_bits=k)
                rows.append({
                    "category": _CATEGORY[cat], "table": name, "mcs": mcs.index,
                    "modulation_order": mcs.modulation_order, "code_rate": mcs.code_rate,
                    "cbs": int(cbs), "block_bits": k,
                    "lookup": ("exact" if k in sizes else "interpolated"
                               if sizes[0] < k < sizes[-1] else "nearest"),
                    "snr_db_sionna": s_sionna, "snr_db_ours": s_ours,
                    "diff_db": s_ours - s_sionna,
                    "sionna_bracket_lo_db": lo, "sionna_bracket_hi_db": hi,
                    # how far ours lies outside the interval Sionna's curve crosses in
                    "outside_bracket_db": max(lo - s_ours, s_ours - hi, 0.0),
                })
    return rows


def _stats(diffs: list[float]) -> dict[str, float]:
    d = np.asarray([x for x in diffs if math.isfinite(x)])
    if d.size == 0:
        return {"n": 0, "median": math.nan, "mean": math.nan, "max_abs": math.nan}
    return {"n": int(d.size), "median": float(np.median(d)), "mean": float(d.mean()),
            "max_abs": float(np.abs(d).max())}


@dataclass(frozen=True)
class CheckBLERTableConfig:
    """What ``semcom check-bler-table`` compares (checked when built).

    Attributes:
        target: the BLER at which the SNRs are compared, in (0, 1).
        channel: channel of our curves (Sionna's tables are AWGN).
        seed: recorded in the manifest (nothing is random).
    """

    target: float = 0.1
    channel: str = "awgn"
    seed: int = 0

    def __post_init__(self) -> None:
        if (isinstance(self.target, bool) or not isinstance(self.target, (int, float))
                or not 0 < self.target < 1):
            raise ValueError(f"target must lie in (0, 1), got {self.target!r}")
        channels = phy.load_bler_table().channels
        if self.channel not in channels:
            raise ValueError(f"channel must be one of the BLER table's channels {channels}, "
                             f"got {self.channel!r}")

    def to_dict(self) -> dict[str, Any]:
        """The settings as ``config.yaml`` records them (the seed apart)."""
        return {"target_bler": self.target, "channel": self.channel,
                "ours": "phy/data/bler_table.csv",
                "sionna": "sionna.sys.PHYAbstraction tables"}


@dataclass
class BLERTableCheck:
    """The comparison of a :class:`CheckBLERTableConfig`.

    Attributes:
        config: what was compared.
        rows: one per (category, table, MCS, CBS), as :func:`compare_to_sionna` gives them.
    """

    config: CheckBLERTableConfig
    rows: list[dict[str, Any]]

    def gap_rows(self) -> list[dict[str, Any]]:
        """Per (category, CBS) with a finite gap: the count ``n``, the ``median``, ``mean`` and
        largest absolute gap (ours minus Sionna's, dB) and the most ours lies outside Sionna's
        grid interval (``outside_db``)."""
        out = []
        for cat in ("PDSCH", "PUSCH"):
            for cbs in sorted({r["cbs"] for r in self.rows}):
                sel = [r for r in self.rows if r["category"] == cat and r["cbs"] == cbs]
                st = _stats([r["diff_db"] for r in sel])
                if st["n"]:
                    out.append({"category": cat, "cbs": cbs, **st,
                                "outside_db": max(r["outside_bracket_db"] for r in sel
                                                  if math.isfinite(r["diff_db"]))})
        return out


def check_bler_table(cfg: CheckBLERTableConfig) -> BLERTableCheck:
    """Compare the shipped table with Sionna's at ``cfg.target`` (writes nothing).

    Raises:
        ValueError: no block size of the table on ``cfg.channel`` lies near Sionna's.
    """
    rows = compare_to_sionna(target=cfg.target, channel=cfg.channel)
    if not rows:
        raise ValueError(f"no block size of the BLER table on {cfg.channel!r} lies near "
                         "Sionna's code-block sizes (24 .. 2000 bits)")
    return BLERTableCheck(cfg, rows)


def run_check_bler_table(cfg: CheckBLERTableConfig | None = None, *,
                         out: str | Path = "results", **settings: Any) -> ResultsDir:
    """Write ``bler_crosscheck.csv``, ``bler_crosscheck.png`` and a summary of the gaps.

    Args:
        cfg: what to compare; or give its fields as keywords (``settings``).
        out: root folder of the results.
    """
    cfg = resolve_config(CheckBLERTableConfig, cfg, settings)
    target = cfg.target
    check = check_bler_table(cfg)
    rows = check.rows
    res = ResultsDir.create("check_bler_table", cfg.to_dict(), cfg.seed, root=out)
    with res:
        res.write_csv("bler_crosscheck.csv", rows)
        fig, ax = plt.subplots(figsize=(7, 4))
        for cbs in sorted({r["cbs"] for r in rows}):
            sel = [r for r in rows if r["cbs"] == cbs and r["category"] == "PDSCH"]
            ax.plot([r["modulation_order"] * r["code_rate"] for r in sel],
                    [r["diff_db"] for r in sel], "o", ms=4, label=f"CBS {cbs}")
        ax.axhline(0, color="grey", lw=1)
        ax.set_xlabel("spectral efficiency Qm R (bit/use)")
        ax.set_ylabel(f"SNR at BLER {target:g}: ours - Sionna (dB)")
        ax.set_title("Shipped BLER table vs sionna.sys.PHYAbstraction (PDSCH, AWGN)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        res.save_figure(fig, "bler_crosscheck.png")
        plt.close(fig)
        lines = [f"# BLER table vs sionna.sys.PHYAbstraction, AWGN, BLER {target:g}", "",
                 "SNR at the target, ours minus Sionna's (dB), per category and code-block "
                 "size (our k = CBS - 24 information bits).", "",
                 "| category | CBS | curves | median | mean | max abs | max outside Sionna's "
                 "grid interval |",
                 "|---|---|---|---|---|---|---|"]
        for g in check.gap_rows():
            lines.append(f"| {g['category']} | {g['cbs']} | {g['n']} | {g['median']:+.2f} | "
                         f"{g['mean']:+.2f} | {g['max_abs']:.2f} | {g['outside_db']:.2f} |")
        lines += ["", "Sionna's PUSCH curves do not fit the MCS tables their index names (see "
                  "the module docstring); the PDSCH rows are the comparison."]
        res.write_summary("\n".join(lines) + "\n")
    return res


#: ``python -m experiments.tools.check_bler_table`` = ``semcom check-bler-table``.
main = entry_point("check-bler-table")


if __name__ == "__main__":
    raise SystemExit(main())
