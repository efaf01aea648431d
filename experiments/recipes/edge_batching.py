"""``semcom edge-batching``: throughput of batched LLM serving at edge nodes per scheduler,
as users, nodes, bandwidth and the link model vary; and the search effort of OT.

For every (users, nodes, bandwidth, link model, instance) a seeded random instance
(:func:`wdmoe_link.edge.random_instance`; instance i has the same nodes at every size and
its first n users are the same for every size >= n) is scheduled by every scheduler; one row
each (``results.csv``: served requests, fraction served, nodes visited, whether the search
finished, mean batch latency). ``search.csv``: on single-node instances of N users, the
batches OT evaluates (the published pruning and ours), the threshold sweep's and brute
force's. ``link`` is ``phy`` (MCS, BLER curves, HARQ) or ``shannon`` (capacity) over the same
instances.

:func:`sweep_edge_batching` turns an :class:`EdgeBatchingConfig` into an
:class:`EdgeBatchingResult`; :func:`run_edge_batching`, the command, streams its rows to the
CSVs and adds the figures and summary of :mod:`experiments.reporting.edge_batching`. Wall
times go to ``timings.csv``, so that the same config and seed give byte-identical
``results.csv`` and ``search.csv``; ``resume`` continues an earlier folder in place, skipping
the rows it holds (only the grids may differ from its run's settings).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from experiments.recipes.config import resolve_config
from experiments.reporting.edge_batching import write_edge_batching_report
from experiments.reporting.results import ResultsDir, read_csv_rows
from experiments.values import FloatGrid, IntGrid, Names

__all__ = ["DEFAULT_SCHEDULERS", "EdgeBatchingConfig", "EdgeBatchingResult",
           "run_edge_batching", "sweep_edge_batching"]

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


@dataclass(frozen=True)
class EdgeBatchingConfig:
    """What ``semcom edge-batching`` sweeps (checked when built).

    Attributes:
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
    """

    users: IntGrid = IntGrid(range(10, 201, 10))
    nodes: IntGrid = IntGrid((1, 3))
    schedulers: Names = Names(DEFAULT_SCHEDULERS)
    bandwidth_mhz: FloatGrid = FloatGrid((20.0, 1.0, 0.2))
    links: Names = Names(("phy", "shannon"))
    instances: int = 3
    search_sizes: IntGrid = IntGrid((4, 6, 8, 10, 12, 14))
    deadline_s: FloatGrid = FloatGrid((5.0, 30.0))
    ot_max_nodes: int = 100_000
    seed: int = 0

    def __post_init__(self) -> None:
        from wdmoe_link.edge import BRUTE_FORCE_MAX_USERS, LINK_MODELS, SCHEDULERS, random_instance

        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        put("users", IntGrid(_check_sizes("users", IntGrid.parse(self.users), 0)))
        put("nodes", IntGrid(_check_sizes("nodes", IntGrid.parse(self.nodes), 1)))
        sizes = IntGrid.parse(self.search_sizes or ())
        put("search_sizes", IntGrid(_check_sizes("search_sizes", sizes, 1) if sizes else ()))
        put("schedulers", Names.parse(self.schedulers))
        put("links", Names.parse(self.links))
        put("bandwidth_mhz", FloatGrid.parse(self.bandwidth_mhz))
        put("deadline_s", FloatGrid.parse(self.deadline_s))
        if len(self.deadline_s) != 2:
            raise ValueError(f"deadline_s must be two numbers low,high (s), got "
                             f"{list(self.deadline_s)}")
        if any(n > BRUTE_FORCE_MAX_USERS for n in self.search_sizes):
            raise ValueError(f"search_sizes must be <= {BRUTE_FORCE_MAX_USERS} (brute force), "
                             f"got {max(self.search_sizes)}")
        for s in self.schedulers:
            SCHEDULERS.factory(s)  # an unknown name fails here, with the list
        if "brute-force" in self.schedulers and max(self.users) > 12:
            raise ValueError("the brute-force scheduler handles at most 12 users; drop it or "
                             "lower users")
        for lk in self.links:
            if lk not in LINK_MODELS:
                raise ValueError(f"links must be among {list(LINK_MODELS)}, got {lk!r}")
        for b in self.bandwidth_mhz:
            if not (math.isfinite(float(b)) and float(b) > 0):
                raise ValueError(f"bandwidth_mhz must be finite and > 0 MHz, got {b!r}")
        for name in ("instances", "ot_max_nodes"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an int >= 1, got {v!r}")
        random_instance(1, 1, seed=self.seed, deadline_s=self.deadline_s)

    def to_dict(self) -> dict[str, Any]:
        """The settings as ``config.yaml`` records them (the seed apart)."""
        return {"users": list(self.users), "nodes": list(self.nodes),
                "schedulers": list(self.schedulers),
                "bandwidth_mhz": [float(b) for b in self.bandwidth_mhz],
                "links": list(self.links), "instances": self.instances,
                "search_sizes": list(self.search_sizes),
                "deadline_s": [float(x) for x in self.deadline_s],
                "ot_max_nodes": self.ot_max_nodes}


@dataclass
class EdgeBatchingResult:
    """The sweep of an :class:`EdgeBatchingConfig`.

    Attributes:
        config: what was swept.
        rows: one per (users, nodes, bandwidth, link, instance, scheduler): requests served,
            fraction served, nodes visited, search finished (``optimal``), mean batch latency.
        search_rows: one per (N, instance) of the search study: batches evaluated and served
            by OT (published and tightened pruning), the threshold sweep and brute force.
        timings: the wall time of every scheduler call (apart, so that the rows repeat).
    """

    config: EdgeBatchingConfig
    rows: list[dict[str, Any]]
    search_rows: list[dict[str, Any]]
    timings: list[dict[str, Any]]


def sweep_edge_batching(cfg: EdgeBatchingConfig, *, done: EdgeBatchingResult | None = None,
                        on_rows: Callable[[EdgeBatchingResult], Any] | None = None,
                        progress: bool = True) -> EdgeBatchingResult:
    """Schedule every instance of ``cfg`` with every scheduler, and run the search study;
    rows already in ``done`` (an earlier run) are kept and skipped. ``on_rows`` gets the
    result so far after each instance."""
    from wdmoe_link.edge import (
        EdgeLinks,
        NodeProblem,
        brute_force_schedule,
        ot_schedule,
        random_instance,
        run_scheduler,
        sweep_schedule,
    )

    result = EdgeBatchingResult(cfg, *(([] if done is None else list(getattr(done, k)))
                                       for k in ("rows", "search_rows", "timings")))
    rows, search_rows, timings = result.rows, result.search_rows, result.timings
    done_keys = {tuple(str(r[k]) for k in _KEY) for r in rows}
    search_done = {tuple(str(r[k]) for k in _SEARCH_KEY) for r in search_rows}
    seed, deadline_s = cfg.seed, cfg.deadline_s
    combos = [(n, m, b, lk, i) for m in cfg.nodes for b in cfg.bandwidth_mhz for lk in cfg.links
              for n in cfg.users for i in range(cfg.instances)]
    for n, i in tqdm([(n, i) for n in cfg.search_sizes for i in range(cfg.instances)],
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
        if on_rows is not None:
            on_rows(result)
    for n, m, b, lk, i in tqdm(combos, desc="edge-batching", disable=not progress):
        todo = [s for s in cfg.schedulers
                if (str(n), str(m), str(float(b)), lk, str(i), s) not in done_keys]
        if not todo:
            continue
        requests, ens = random_instance(n, m, seed=seed + 1000 * i, deadline_s=deadline_s,
                                        bandwidth_hz=float(b) * 1e6)
        link_model = EdgeLinks(model=lk)
        problems = [NodeProblem(requests, nd, link_model) for nd in ens]
        for s in todo:
            kw: dict[str, Any] = {"problems": problems}
            if s == "ot-gah":
                kw["max_nodes"] = cfg.ot_max_nodes
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
        if on_rows is not None:
            on_rows(result)
    return result


def run_edge_batching(cfg: EdgeBatchingConfig | None = None, *, out: str | Path = "results",
                      resume: str | Path | None = None, progress: bool = True,
                      **settings: Any) -> ResultsDir:
    """``semcom edge-batching``: :func:`sweep_edge_batching` into a results folder (see the
    module docstring).

    Args:
        cfg: what to sweep; or give its fields as keywords (``settings``).
        out: root folder of the results.
        resume: an earlier edge-batching results folder.
        progress: show a progress bar.
    """
    cfg = resolve_config(EdgeBatchingConfig, cfg, settings)
    done = None
    if resume is not None:  # the grids may grow; the rest must match the folder's run
        res = ResultsDir.resume(resume, "edge_batching", cfg.to_dict(), cfg.seed,
                                extendable=("users", "nodes", "schedulers", "bandwidth_mhz",
                                            "links", "instances", "search_sizes"))
        done = EdgeBatchingResult(cfg, *(_read(resume, f"{name}.csv")
                                         for name in ("results", "search", "timings")))
    else:
        res = ResultsDir.create("edge_batching", cfg.to_dict(), cfg.seed, root=out)
    written = {"results.csv": 0, "search.csv": 0}

    def stream(result: EdgeBatchingResult) -> None:
        for name, rows in (("results.csv", result.rows), ("search.csv", result.search_rows)):
            if len(rows) != written[name]:
                res.write_csv(name, rows)
                written[name] = len(rows)
        res.write_csv("timings.csv", result.timings)

    with res:
        result = sweep_edge_batching(cfg, done=done, on_rows=stream, progress=progress)
        if result.rows:
            res.write_csv("results.csv", result.rows)
        write_edge_batching_report(result, res)
    return res


def _read(folder: str | Path | None, name: str) -> list[dict[str, Any]]:
    if folder is None:
        return []
    path = Path(folder) / name
    if not Path(folder).is_dir():
        raise ValueError(f"resume folder {str(folder)!r} does not exist")
    return read_csv_rows(path)
