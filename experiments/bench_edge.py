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
from pathlib import Path

from experiments.cli import entry_point
from experiments.reporting.results import ResultsDir
from experiments.values import IntGrid
from phy.checks import check_positive_int

__all__ = ["main", "run_bench_edge"]


def run_bench_edge(*, sizes: IntGrid = IntGrid((8, 12, 16, 20, 24, 32, 40, 48, 64)),
                   sweep_sizes: IntGrid = IntGrid((50, 100, 200, 400)), instances: int = 5,
                   max_nodes: int = 300_000, seed: int = 0, out: str | Path = "results",
                   progress: bool = True) -> ResultsDir:
    """Time the schedulers' searches on seeded single-node instances and write
    ``bench_edge.csv`` and ``summary.md`` (settings checked before any folder exists).

    Args:
        sizes: numbers of users N timed with OT (both prunings), the sweep and, up to 16
            users, brute force.
        sweep_sizes: larger N timed with the exact threshold sweep only.
        instances: seeded instances per N.
        max_nodes: OT's search is cut after this many evaluated batches.
        seed: seed of the instances.
        out: root folder of the results.
        progress: print each instance's row and the summary.
    """
    from wdmoe_link.edge import (
        NodeProblem,
        brute_force_schedule,
        ot_schedule,
        random_instance,
        sweep_schedule,
    )

    sizes, sweep_sizes = IntGrid.parse(sizes), IntGrid.parse(sweep_sizes)
    for name, grid in (("sizes", sizes), ("sweep_sizes", sweep_sizes)):
        for n in grid:
            check_positive_int(f"{name} entry", n)
    check_positive_int("instances", instances)
    check_positive_int("max_nodes", max_nodes)
    config = {"sizes": list(sizes), "sweep_sizes": list(sweep_sizes), "instances": instances,
              "max_nodes": max_nodes, "seed": seed}
    rows = []
    with ResultsDir.create("bench_edge", config, seed, root=out) as rd:
        for n in sizes:
            for i in range(instances):
                requests, (node,) = random_instance(n, 1, seed=seed + 1000 * i + n)
                NodeProblem(requests, node)  # warm the link-adaptation tables
                row = {"n": n, "instance": i}
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
                rd.write_csv("bench_edge.csv", rows)
                if progress:
                    print(row, flush=True)
        for n in sweep_sizes:
            for i in range(instances):
                requests, (node,) = random_instance(n, 1, seed=seed + 1000 * i + n)
                NodeProblem(requests, node)
                t0 = time.perf_counter()
                s = sweep_schedule(requests, node)
                rows.append({"n": n, "instance": i, "sweep_s": round(time.perf_counter() - t0, 6),
                             "sweep_nodes": s.nodes_visited, "sweep_served": len(s.batch),
                             "sweep_optimal": True})
                rd.write_csv("bench_edge.csv", rows)
        lines = ["# Edge batching search", "",
                 f"{instances} instances per N, one node, phy links; OT cut at "
                 f"{max_nodes} evaluations.", "",
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
        rd.write_summary("\n".join(lines) + "\n")
    if progress:
        print("\n".join(lines))
    return rd


#: ``python -m experiments.bench_edge``: ``semcom bench-edge``
main = entry_point("bench-edge")


if __name__ == "__main__":
    raise SystemExit(main())
