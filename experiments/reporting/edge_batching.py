"""Reporting of ``semcom edge-batching``: throughput and search-effort figures and the
summary tables of an :class:`~experiments.recipes.edge_batching.EdgeBatchingResult` (rows as
computed, or read back from the CSVs)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from experiments.reporting.plots import finish_axes
from experiments.reporting.results import ResultsDir, cell_float

if TYPE_CHECKING:
    from experiments.recipes.edge_batching import EdgeBatchingResult

__all__ = ["edge_batching_summary", "write_edge_batching_report"]


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def _served_table(rows: list[dict[str, Any]], link: str, bandwidth: float, m: int
                  ) -> dict[str, dict[int, float]]:
    """scheduler -> users -> mean served over instances."""
    out: dict[str, dict[int, list[float]]] = {}
    for r in rows:
        if (r["link"] == link and cell_float(r["bandwidth_mhz"]) == bandwidth
                and int(r["nodes"]) == m):
            out.setdefault(r["scheduler"], {}).setdefault(int(r["users"]), []).append(
                cell_float(r["served"]))
    return {s: {n: _mean(v) for n, v in sorted(d.items())} for s, d in out.items()}


def _plots(res: ResultsDir, rows: list[dict[str, Any]],
           search_rows: list[dict[str, Any]]) -> None:
    if rows:
        node_counts = sorted({int(r["nodes"]) for r in rows})
        link, bw = rows[0]["link"], cell_float(rows[0]["bandwidth_mhz"])
        fig, axes = plt.subplots(1, len(node_counts), figsize=(5.5 * len(node_counts), 4.2),
                                 squeeze=False)
        for ax, m in zip(axes[0], node_counts, strict=True):
            for s, d in _served_table(rows, link, bw, m).items():
                ax.plot(list(d), list(d.values()), "o-", ms=3, label=s)
            finish_axes(ax, "users", "served requests (mean over instances)",
                        f"{m} edge node(s), {link} links, {bw:g} MHz", legend={"fontsize": 7})
        fig.tight_layout()
        res.save_figure(fig, "throughput_vs_users.png")
        plt.close(fig)
    if search_rows:
        fig, ax = plt.subplots(figsize=(6.0, 4.2))
        sizes = sorted({int(r["n"]) for r in search_rows})
        for name, label in (("brute_force", "brute force"), ("ot_paper", "OT (paper pruning)"),
                            ("ot_tight", "OT (tightened pruning)"), ("sweep", "threshold sweep")):
            ax.semilogy(sizes, [_mean([cell_float(r[f"{name}_nodes"]) for r in search_rows
                                       if int(r["n"]) == n]) for n in sizes], "o-", label=label)
        ax.set_xlabel("users N (one node)")
        ax.set_ylabel("batches evaluated (mean)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        res.save_figure(fig, "search_nodes_vs_users.png")
        plt.close(fig)


def edge_batching_summary(result: EdgeBatchingResult) -> str:
    """``summary.md``: the search effort per N and the served requests per scheduler."""
    cfg, rows, search_rows = result.config, result.rows, result.search_rows
    lines = ["# Edge batching", "",
             f"{cfg.instances} random instance(s) per point, deadlines "
             f"U{tuple(float(x) for x in cfg.deadline_s)} s, Llama-2-7B-shaped model, "
             "quantization levels of the shipped text model; OT-GAH's per-node OT stops after "
             f"{cfg.ot_max_nodes} evaluations (then not proven optimal).", ""]
    if search_rows:
        lines += ["## Search effort (one node): batches evaluated, mean", "",
                  "| N | brute force | OT (paper) | OT (tight) | sweep | OT paper / brute force |",
                  "|---|---|---|---|---|---|"]
        for n in sorted({int(r["n"]) for r in search_rows}):
            sel = [r for r in search_rows if int(r["n"]) == n]
            bf = _mean([cell_float(r["brute_force_nodes"]) for r in sel])
            op = _mean([cell_float(r["ot_paper_nodes"]) for r in sel])
            lines.append(f"| {n} | {bf:.0f} | {op:.0f} | "
                         f"{_mean([cell_float(r['ot_tight_nodes']) for r in sel]):.0f} | "
                         f"{_mean([cell_float(r['sweep_nodes']) for r in sel]):.0f} | "
                         f"{op / bf:.4f} |")
        lines.append("")
    for lk in dict.fromkeys(r["link"] for r in rows):
        for bw in dict.fromkeys(cell_float(r["bandwidth_mhz"]) for r in rows):
            for m in sorted({int(r["nodes"]) for r in rows}):
                table = _served_table(rows, lk, bw, m)
                if not table:
                    continue
                sizes = sorted({n for d in table.values() for n in d})
                lines += [f"## Served requests: {m} node(s), {lk} links, {bw:g} MHz", "",
                          "| scheduler | " + " | ".join(str(n) for n in sizes) + " |",
                          "|---" * (len(sizes) + 1) + "|"]
                for s, d in table.items():
                    lines.append(f"| {s} | " + " | ".join(
                        f"{d.get(n, math.nan):.1f}" for n in sizes) + " |")
                lines.append("")
    return "\n".join(lines) + "\n"


def write_edge_batching_report(result: EdgeBatchingResult, res: ResultsDir) -> None:
    """The figures and ``summary.md`` of ``result`` in ``res``."""
    _plots(res, result.rows, result.search_rows)
    res.write_summary(edge_batching_summary(result))
