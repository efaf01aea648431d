"""``semcom edge-batching``: throughput of batched LLM serving at edge nodes per scheduler,
as users, nodes, bandwidth and the link model vary; and the search effort of OT.

For every (users, nodes, bandwidth, link model, instance) a seeded random instance
(:func:`wdmoe_link.edge.random_instance`; instance i has the same nodes at every size and
its first n users are the same for every size >= n) is scheduled by every scheduler; one CSV
row each (``results.csv``: served requests, fraction served, nodes visited, whether the
search finished, mean batch latency). ``search.csv``: on single-node instances of N users,
the batches OT evaluates (the published pruning and ours), the threshold sweep's and brute
force's. Wall times go to ``timings.csv``, so that the same config and seed give
byte-identical ``results.csv`` and ``search.csv``. ``link`` is ``phy`` (MCS, BLER curves,
HARQ) or ``shannon`` (capacity) over the same instances. Rows stream to the CSVs; ``resume``
continues an earlier folder in place, skipping the rows it holds (only the grids may differ
from its run's settings).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from tqdm.auto import tqdm

from experiments.reporting.plots import finish_axes
from experiments.reporting.results import ResultsDir, cell_float, read_csv_rows
from experiments.values import FloatGrid, IntGrid, Names

__all__ = ["DEFAULT_SCHEDULERS", "run_edge_batching"]

DEFAULT_SCHEDULERS: tuple[str, ...] = ("ot-gah", "gah-sweep", "edf", "fifo", "slack", "random")
_KEY = ("users", "nodes", "bandwidth_mhz", "link", "instance", "scheduler")
_SEARCH_KEY = ("n", "instance")


def _check_sizes(name: str, values: Sequence[int], low: int) -> list[int]:
    out = []
    for v in values:
        if isinstance(v, bool) or int(v) != v or v < low:
            raise ValueError(f"{name} must hold integers >= {low}, got {v!r}")
        out.append(int(v))
    if not out:
        raise ValueError(f"{name} must not be empty")
    return out


def run_edge_batching(*, users: IntGrid = IntGrid(range(10, 201, 10)),
                      nodes: IntGrid = IntGrid((1, 3)),
                      schedulers: Names = Names(DEFAULT_SCHEDULERS),
                      bandwidth_mhz: FloatGrid = FloatGrid((20.0, 1.0, 0.2)),
                      links: Names = Names(("phy", "shannon")), instances: int = 3,
                      search_sizes: IntGrid = IntGrid((4, 6, 8, 10, 12, 14)),
                      deadline_s: FloatGrid = FloatGrid((5.0, 30.0)),
                      ot_max_nodes: int = 100_000, seed: int = 0,
                      out: str | Path = "results", resume: str | Path | None = None,
                      progress: bool = True) -> ResultsDir:
    """Run the sweep and write the results folder (see the module docstring).

    Args:
        users: users per instance (``start:stop:step`` or ``a,b,c``).
        nodes: edge nodes per instance.
        schedulers: scheduler names (:data:`wdmoe_link.edge.SCHEDULERS`).
        bandwidth_mhz: UL and DL bandwidth per node in MHz.
        links: link models, ``phy`` (MCS, BLER curves, HARQ) and/or ``shannon`` (capacity).
        instances: random instances per point.
        search_sizes: user counts of the OT vs brute-force search study (one node; empty or
            ``none`` skips it).
        deadline_s: ``low,high`` of the uniform deadlines in s.
        ot_max_nodes: evaluations after which OT returns its best batch so far.
        seed: seed of the instances.
        out: root folder of the results.
        resume: an earlier edge-batching results folder.
        progress: show a progress bar.
    """
    from wdmoe_link.edge import (
        BRUTE_FORCE_MAX_USERS,
        LINK_MODELS,
        SCHEDULERS,
        EdgeLinks,
        NodeProblem,
        brute_force_schedule,
        ot_schedule,
        random_instance,
        run_scheduler,
        sweep_schedule,
    )

    users, nodes = IntGrid.parse(users), IntGrid.parse(nodes)
    search_sizes = IntGrid.parse(search_sizes or ())
    schedulers, links = Names.parse(schedulers), Names.parse(links)
    bandwidth_mhz, deadline_s = FloatGrid.parse(bandwidth_mhz), FloatGrid.parse(deadline_s)
    if len(deadline_s) != 2:
        raise ValueError(f"deadline_s must be two numbers low,high (s), got {list(deadline_s)}")
    users = _check_sizes("users", users, 0)
    nodes = _check_sizes("nodes", nodes, 1)
    search_sizes = _check_sizes("search_sizes", search_sizes, 1) if search_sizes else []
    if any(n > BRUTE_FORCE_MAX_USERS for n in search_sizes):
        raise ValueError(f"search_sizes must be <= {BRUTE_FORCE_MAX_USERS} (brute force), got "
                         f"{max(search_sizes)}")
    for s in schedulers:
        SCHEDULERS.factory(s)  # an unknown name fails here, with the list
    if "brute-force" in schedulers and max(users) > 12:
        raise ValueError("the brute-force scheduler handles at most 12 users; drop it or "
                         "lower users")
    for lk in links:
        if lk not in LINK_MODELS:
            raise ValueError(f"links must be among {list(LINK_MODELS)}, got {lk!r}")
    for b in bandwidth_mhz:
        if not (math.isfinite(float(b)) and float(b) > 0):
            raise ValueError(f"bandwidth_mhz must be finite and > 0 MHz, got {b!r}")
    if isinstance(instances, bool) or not isinstance(instances, int) or instances < 1:
        raise ValueError(f"instances must be an int >= 1, got {instances!r}")
    if isinstance(ot_max_nodes, bool) or not isinstance(ot_max_nodes, int) or ot_max_nodes < 1:
        raise ValueError(f"ot_max_nodes must be an int >= 1, got {ot_max_nodes!r}")
    random_instance(1, 1, seed=seed, deadline_s=deadline_s)  # validate before any folder

    config = {"users": users, "nodes": nodes, "schedulers": list(schedulers),
              "bandwidth_mhz": [float(b) for b in bandwidth_mhz], "links": list(links),
              "instances": instances, "search_sizes": search_sizes,
              "deadline_s": [float(x) for x in deadline_s], "ot_max_nodes": ot_max_nodes}
    if resume is not None:  # the grids may grow; the rest must match the folder's run
        res = ResultsDir.resume(resume, "edge_batching", config, seed,
                                extendable=("users", "nodes", "schedulers", "bandwidth_mhz",
                                            "links", "instances", "search_sizes"))
    rows = _read(resume, "results.csv")
    search_rows = _read(resume, "search.csv")
    timings = _read(resume, "timings.csv")  # wall times apart: the other CSVs are reproducible
    done = {tuple(str(r[k]) for k in _KEY) for r in rows}
    search_done = {tuple(str(r[k]) for k in _SEARCH_KEY) for r in search_rows}
    if resume is None:
        res = ResultsDir.create("edge_batching", config, seed, root=out)
    combos = [(n, m, b, lk, i) for m in nodes for b in bandwidth_mhz for lk in links
              for n in users for i in range(instances)]
    with res:
        for n, i in tqdm([(n, i) for n in search_sizes for i in range(instances)],
                         desc="search", disable=not progress):
            if (str(n), str(i)) in search_done:
                continue
            requests, (node,) = random_instance(n, 1, seed=seed + 1000 * i + n,
                                                deadline_s=deadline_s)
            row: dict[str, Any] = {"n": n, "instance": i}
            for name, fn, kw in (("ot_paper", ot_schedule, {"bound": "paper"}),
                                 ("ot_tight", ot_schedule, {}),
                                 ("sweep", sweep_schedule, {}),
                                 ("brute_force", brute_force_schedule, {})):
                t0 = time.perf_counter()
                sched = fn(requests, node, **kw)
                row[f"{name}_nodes"] = sched.nodes_visited
                row[f"{name}_served"] = len(sched.batch)
                timings.append({"table": "search", "n": n, "instance": i, "method": name,
                                "wall_s": round(time.perf_counter() - t0, 6)})
            search_rows.append(row)
            res.write_csv("search.csv", search_rows)
            res.write_csv("timings.csv", timings)
        for n, m, b, lk, i in tqdm(combos, desc="edge-batching", disable=not progress):
            todo = [s for s in schedulers
                    if (str(n), str(m), str(float(b)), lk, str(i), s) not in done]
            if not todo:
                continue
            requests, ens = random_instance(n, m, seed=seed + 1000 * i,
                                            deadline_s=deadline_s, bandwidth_hz=float(b) * 1e6)
            link_model = EdgeLinks(model=lk)
            problems = [NodeProblem(requests, nd, link_model) for nd in ens]
            for s in todo:
                kw: dict[str, Any] = {"problems": problems}
                if s == "ot-gah":
                    kw["max_nodes"] = ot_max_nodes
                a = run_scheduler(s, requests, ens, link_model, seed=seed + i, **kw)
                lat = [sc.cost.latency_s for sc in a.schedules if sc.cost is not None]
                rows.append({"users": n, "nodes": m, "bandwidth_mhz": float(b), "link": lk,
                             "instance": i, "scheduler": s, "served": int(a.throughput),
                             "served_fraction": a.throughput / n if n else 0.0,
                             "nodes_visited": a.nodes_visited, "optimal": a.optimal,
                             "batch_latency_mean_s": sum(lat) / len(lat) if lat else ""})
                timings.append({"table": "results", "users": n, "nodes": m,
                                "bandwidth_mhz": float(b), "link": lk, "instance": i,
                                "method": s, "wall_s": round(a.wall_s, 6)})
            res.write_csv("results.csv", rows)
            res.write_csv("timings.csv", timings)
        if rows:
            res.write_csv("results.csv", rows)
        _plots(res, rows, search_rows)
        res.write_summary(_summary(rows, search_rows, config))
    return res


def _read(folder: str | Path | None, name: str) -> list[dict[str, Any]]:
    if folder is None:
        return []
    path = Path(folder) / name
    if not Path(folder).is_dir():
        raise ValueError(f"resume folder {str(folder)!r} does not exist")
    return read_csv_rows(path)


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


def _summary(rows: list[dict[str, Any]], search_rows: list[dict[str, Any]],
             config: dict[str, Any]) -> str:
    lines = ["# Edge batching", "",
             f"{config['instances']} random instance(s) per point, deadlines "
             f"U{tuple(config['deadline_s'])} s, Llama-2-7B-shaped model, quantization levels "
             "of the shipped text model; OT-GAH's per-node OT stops after "
             f"{config['ot_max_nodes']} evaluations (then not proven optimal).", ""]
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
