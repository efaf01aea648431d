"""Benchmark: search effort and wall time of the edge batching schedulers.

    python -m experiments.bench_edge [--sizes 8,12,16,20,24,32,40,48,64] [--instances 5]
                                     [--sweep-sizes 50,100,200,400] [--out results]

On seeded single-node instances (:func:`wdmoe_link.edge.random_instance`, phy links), side by
side in one run: the batches OT evaluates with the published pruning and with ours, brute
force's (up to 16 users), and the wall time of each; then the largest N whose every instance
OT solves to proven optimality within 1 s (each search is cut at ``--max-nodes``), and the
wall time of the exact threshold sweep at sizes OT cannot reach. Writes ``bench_edge.csv``
and ``summary.md``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence

from experiments.reporting.results import ResultsDir

__all__ = ["main"]


def _int_list(spec: str) -> list[int]:
    return [int(x) for x in spec.split(",") if x.strip()]


def main(argv: Sequence[str] | None = None) -> int:
    from wdmoe_link.edge import (
        NodeProblem,
        brute_force_schedule,
        ot_schedule,
        random_instance,
        sweep_schedule,
    )

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=_int_list, default=[8, 12, 16, 20, 24, 32, 40, 48, 64])
    p.add_argument("--sweep-sizes", type=_int_list, default=[50, 100, 200, 400])
    p.add_argument("--instances", type=int, default=5)
    p.add_argument("--max-nodes", type=int, default=300_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="results")
    args = p.parse_args(argv)
    if args.instances < 1 or args.max_nodes < 1:
        p.error("--instances and --max-nodes must be >= 1")
    rows = []
    with ResultsDir.create("bench_edge", vars(args), args.seed, root=args.out) as rd:
        for n in args.sizes:
            for i in range(args.instances):
                requests, (node,) = random_instance(n, 1, seed=args.seed + 1000 * i + n)
                NodeProblem(requests, node)  # warm the link-adaptation tables
                row = {"n": n, "instance": i}
                runs = [("ot_paper", ot_schedule, {"bound": "paper", "max_nodes": args.max_nodes}),
                        ("ot_tight", ot_schedule, {"max_nodes": args.max_nodes}),
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
                print(row, flush=True)
        for n in args.sweep_sizes:
            for i in range(args.instances):
                requests, (node,) = random_instance(n, 1, seed=args.seed + 1000 * i + n)
                NodeProblem(requests, node)
                t0 = time.perf_counter()
                s = sweep_schedule(requests, node)
                rows.append({"n": n, "instance": i, "sweep_s": round(time.perf_counter() - t0, 6),
                             "sweep_nodes": s.nodes_visited, "sweep_served": len(s.batch),
                             "sweep_optimal": True})
                rd.write_csv("bench_edge.csv", rows)
        lines = ["# Edge batching search", "",
                 f"{args.instances} instances per N, one node, phy links; OT cut at "
                 f"{args.max_nodes} evaluations.", "",
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
        print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
