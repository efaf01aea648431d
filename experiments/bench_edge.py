"""Benchmark: search effort and wall time of the edge batching schedulers.

    semcom bench-edge [--sizes 8,12,16,20,24,32,40,48,64] [--instances 5]
                      [--sweep_sizes 50,100,200,400] [--out results]

(``python -m experiments.bench_edge`` is the same command.)

On seeded single-node instances (:func:`wdmoe_link.edge.random_instance`, phy links), side by
side in one run: the batches OT evaluates with the published pruning and with ours, brute
force's (up to 16 users), and the wall time of each; then the largest N whose every instance
OT solves to proven optimality within 1 s (each search is cut at ``--max_nodes``), and the
wall time of the exact threshold sweep at sizes OT cannot reach. Writes ``bench_edge.csv``
and ``summary.md``.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from experiments.cli import entry_point
from experiments.recipes.config import config_dict, resolve_config
from experiments.reporting.results import ResultsDir
from experiments.values import IntGrid
from phy.checks import check_positive_int

__all__ = ["BenchEdgeConfig", "BenchEdgeResult", "main", "run", "run_bench_edge"]


@dataclass(frozen=True)
class BenchEdgeConfig:
    """What ``semcom bench-edge`` times (checked when built).

    Attributes:
        sizes: numbers of users N timed with OT (both prunings), the sweep and, up to 16
            users, brute force.
        sweep_sizes: larger N timed with the exact threshold sweep only.
        instances: seeded instances per N.
        max_nodes: OT's search is cut after this many evaluated batches.
        seed: seed of the instances.
    """

    sizes: IntGrid = IntGrid((8, 12, 16, 20, 24, 32, 40, 48, 64))
    sweep_sizes: IntGrid = IntGrid((50, 100, 200, 400))
    instances: int = 5
    max_nodes: int = 300_000
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("sizes", "sweep_sizes"):
            object.__setattr__(self, name, IntGrid.parse(getattr(self, name)))
            for n in getattr(self, name):
                check_positive_int(f"{name} entry", n)
        check_positive_int("instances", self.instances)
        check_positive_int("max_nodes", self.max_nodes)


@dataclass
class BenchEdgeResult:
    """The timings of a :class:`BenchEdgeConfig`: one row per (N, instance) with each
    search's wall time (s), evaluated batches, served requests and proven optimality."""

    config: BenchEdgeConfig
    rows: list[dict[str, Any]]


def run(cfg: BenchEdgeConfig, *, on_rows: Callable[[list[dict]], Any] | None = None,
        progress: bool = True) -> BenchEdgeResult:
    """Time the searches of every instance of ``cfg`` (``on_rows`` gets the rows so far after
    each; ``progress`` prints them)."""
    from wdmoe_link.edge import (
        NodeProblem,
        brute_force_schedule,
        ot_schedule,
        random_instance,
        sweep_schedule,
    )

    rows: list[dict[str, Any]] = []
    seed, max_nodes = cfg.seed, cfg.max_nodes
    for n in cfg.sizes:
        for i in range(cfg.instances):
            requests, (node,) = random_instance(n, 1, seed=seed + 1000 * i + n)
            NodeProblem(requests, node)  # warm the link-adaptation tables
            row: dict[str, Any] = {"n": n, "instance": i}
            runs = [("ot_paper", ot_schedule, {"bound": "paper", "max_nodes": max_nodes}),
                    ("ot_tight", ot_schedule, {"max_nodes": max_nodes}),
                    ("sweep", sweep_schedule, {})]
            if n <= 16:
                runs.append(("brute_force", brute_force_schedule, {}))
            for name, fn, kw in runs:
                t0 = time.perf_counter()
                s = fn(requests, node, **kw)
                row[f"{name}_s"] = round(time.perf_counter() - t0, 6)
                row[f"{name}_nodes"] = s.nodes_visited
                row[f"{name}_served"] = len(s.batch)
                row[f"{name}_optimal"] = s.optimal
            rows.append(row)
            if on_rows is not None:
                on_rows(rows)
            if progress:
                print(row, flush=True)
    for n in cfg.sweep_sizes:
        for i in range(cfg.instances):
            requests, (node,) = random_instance(n, 1, seed=seed + 1000 * i + n)
            NodeProblem(requests, node)
            t0 = time.perf_counter()
            s = sweep_schedule(requests, node)
            rows.append({"n": n, "instance": i, "sweep_s": round(time.perf_counter() - t0, 6),
                         "sweep_nodes": s.nodes_visited, "sweep_served": len(s.batch),
                         "sweep_optimal": True})
            if on_rows is not None:
                on_rows(rows)
    return BenchEdgeResult(cfg, rows)


def _summary(result: BenchEdgeResult) -> str:
    cfg, rows = result.config, result.rows
    lines = ["# Edge batching search", "",
             f"{cfg.instances} instances per N, one node, phy links; OT cut at "
             f"{cfg.max_nodes} evaluations.", "",
             "| N | brute force evals | OT paper evals | OT paper / brute force | OT paper s "
             "(median) | OT tight s (median) | sweep s (median) | all OT proven optimal |",
             "|---|---|---|---|---|---|---|---|"]

    def med(sel: list[dict], key: str) -> float:
        vals = [float(r[key]) for r in sel if key in r]
        return statistics.median(vals) if vals else float("nan")

    def mean(sel: list[dict], key: str) -> float:
        vals = [float(r[key]) for r in sel if key in r]
        return statistics.fmean(vals) if vals else float("nan")

    largest = {"ot_paper": 0, "ot_tight": 0}
    for n in sorted({r["n"] for r in rows}):
        sel = [r for r in rows if r["n"] == n]
        for name in largest:
            if sel and all(r.get(f"{name}_optimal") is True and r[f"{name}_s"] <= 1.0
                           for r in sel) and "ot_paper_s" in sel[0]:
                largest[name] = max(largest[name], n)
        bf, op = mean(sel, "brute_force_nodes"), mean(sel, "ot_paper_nodes")
        opt = all(r.get("ot_paper_optimal", True) and r.get("ot_tight_optimal", True)
                  for r in sel)
        lines.append(f"| {n} | {bf:.0f} | {op:.0f} | {op / bf:.4f} | "
                     f"{med(sel, 'ot_paper_s'):.3f} | {med(sel, 'ot_tight_s'):.3f} | "
                     f"{med(sel, 'sweep_s'):.3f} | {opt} |")
    lines += ["", f"Largest N with every instance solved to optimality within 1 s: OT "
                  f"(paper pruning) {largest['ot_paper']}, OT (tightened) "
                  f"{largest['ot_tight']}."]
    return "\n".join(lines) + "\n"


def run_bench_edge(cfg: BenchEdgeConfig | None = None, *, out: str | Path = "results",
                   progress: bool = True, **settings: Any) -> ResultsDir:
    """``semcom bench-edge``: :func:`run` into ``bench_edge.csv`` (streamed) and
    ``summary.md`` (settings checked before any folder exists).

    Args:
        cfg: what to time; or give its fields as keywords (``settings``).
        out: root folder of the results.
        progress: print each instance's row and the summary.
    """
    cfg = resolve_config(BenchEdgeConfig, cfg, settings)
    with ResultsDir.create("bench_edge", config_dict(cfg, drop=()), cfg.seed, root=out) as rd:
        result = run(cfg, progress=progress,
                     on_rows=lambda rows: rd.write_csv("bench_edge.csv", rows))
        text = _summary(result)
        rd.write_summary(text)
    if progress:
        print(text)
    return rd


#: ``python -m experiments.bench_edge``: ``semcom bench-edge``
main = entry_point("bench-edge")


if __name__ == "__main__":
    raise SystemExit(main())
