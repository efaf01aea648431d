"""Batch schedulers for edge LLM serving: OT (exact tree search), GAH (multi-node local ratio
with OT per node), brute-force references and the baselines a serving system would use.

Written here because no library solves this problem: it is the batching problem of "Beyond the
Cloud" (maximize the served requests, or their profits, under memory, latency and accuracy
constraints), with the cost model of :mod:`wdmoe_link.edge.cost`.

* :func:`ot_schedule`: depth-first include/exclude search over the users sorted by ``order``.
  Feasibility pruning: the cost model is monotone, so an infeasible partial batch cuts its
  subtree. Bound pruning: ``value + remaining <= best`` cuts it too (``bound="paper"``, the
  published search). ``bound="tight"`` (default) goes further with the same monotonicity: a
  user that does not fit beside the current batch cannot fit beside any superset, so each
  include drops such users from the whole subtree, and "remaining" is capped by the largest
  batch the current aggregates allow (memory, compute and airtime only grow as users join;
  found by bisection). Both are exact for any order.
* :func:`gah_schedule`: the local-ratio scheme for generalized assignment (Cohen, Katzir and
  Raz): nodes in turn solve their batch exactly on residual profits, the chosen users' profits
  are subtracted from later nodes, and a backward pass gives each user to the last node that
  chose it. With an exact per-node solver the result is at least half the optimum.
* :func:`sweep_schedule`: exact for equal profits in polynomial time (a threshold sweep over
  the batch's tightest deadline, padded prompt and output; ours), for the large instances
  where tree search cannot finish.
* :func:`brute_force_schedule`, :func:`brute_force_assignment`: exhaustive references
  (subset enumeration; a subset dynamic program across nodes).
* :func:`greedy_assignment`: add users in a fixed order while the batch stays feasible, node by
  node: ``fifo`` (arrival), ``edf`` (earliest deadline first), ``slack`` (most slack first),
  ``random``.

``nodes_visited`` counts the batches whose feasibility a scheduler evaluated (brute force:
every subset at every level), the measure of search effort the paper compares.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass

from phy import Registry

from .cost import BatchCost, NodeProblem
from .links import EdgeLinks
from .node import EdgeNode, QuantLevel
from .request import Request

__all__ = [
    "BRUTE_FORCE_MAX_USERS",
    "BRUTE_FORCE_MAX_USERS_ASSIGNMENT",
    "OT_BOUNDS",
    "OT_ORDERS",
    "SCHEDULERS",
    "Assignment",
    "Schedule",
    "available_schedulers",
    "brute_force_assignment",
    "brute_force_schedule",
    "gah_schedule",
    "greedy_assignment",
    "ot_schedule",
    "run_scheduler",
    "sweep_schedule",
]

#: Largest number of users the brute-force references accept (2^N subsets per level).
BRUTE_FORCE_MAX_USERS: int = 20
#: Largest number of users of :func:`brute_force_assignment` (3^N sub-subsets per node).
BRUTE_FORCE_MAX_USERS_ASSIGNMENT: int = 12
#: Largest number of requests :func:`ot_schedule` takes (the search recurses per user).
OT_MAX_USERS: int = 800
#: Sort orders of :func:`ot_schedule`.
OT_ORDERS: tuple[str, ...] = ("deadline", "prompt", "airtime", "none")
#: Pruning of :func:`ot_schedule`: the published one, or ours (see the module docstring).
OT_BOUNDS: tuple[str, ...] = ("tight", "paper")
#: Per-node solvers of :func:`gah_schedule`.
GAH_SOLVERS: tuple[str, ...] = ("ot", "sweep", "auto")
GREEDY_ORDERS: tuple[str, ...] = ("fifo", "edf", "slack", "random")


@dataclass(frozen=True)
class Schedule:
    """One node's batch.

    Attributes:
        batch: indices of the scheduled requests (ascending).
        level: the quantization level it runs at (None for an empty batch).
        value: sum of the members' profits (their number with unit profits).
        nodes_visited: batches whose feasibility was evaluated.
        optimal: the search finished (False: stopped at ``max_nodes`` with the best so far).
        reason: why the batch is empty ("" otherwise).
        cost: the batch's latency and memory (:class:`BatchCost`).
        node: index of the node in the instance.
    """

    batch: tuple[int, ...]
    level: QuantLevel | None
    value: float
    nodes_visited: int
    optimal: bool = True
    reason: str = ""
    cost: BatchCost | None = None
    node: int = 0


@dataclass(frozen=True)
class Assignment:
    """Batches of every node of an instance.

    Attributes:
        schedules: one :class:`Schedule` per node.
        throughput: sum of the served requests' profits (served requests with unit profits).
        nodes_visited: total search effort.
        optimal: every per-node search finished.
        wall_s: wall time of the scheduler (s).
        scheduler: its name.
    """

    schedules: tuple[Schedule, ...]
    throughput: float
    nodes_visited: int
    optimal: bool = True
    wall_s: float = 0.0
    scheduler: str = ""

    @property
    def served(self) -> tuple[int, ...]:
        """All scheduled request indices."""
        return tuple(sorted(i for s in self.schedules for i in s.batch))


# ------------------------------------------------------------------------------------------
# inputs


def _profits(profits: Sequence[float] | None, n: int, name: str = "profits") -> list[float]:
    if profits is None:
        return [1.0] * n
    p = [float(x) for x in profits]
    if len(p) != n:
        raise ValueError(f"{name} must hold one value per request ({n}), got {len(p)}")
    if any(not math.isfinite(x) for x in p):
        raise ValueError(f"{name} must be finite")
    return p


def _profit_matrix(profits: Sequence[Sequence[float]] | Sequence[float] | None, n: int,
                   m: int) -> list[list[float]]:
    """``P[i][k]``: profit of serving request i at node k (a vector: the same at every node)."""
    if profits is None:
        return [[1.0] * m for _ in range(n)]
    rows = list(profits)
    if len(rows) != n:
        raise ValueError(f"profits must hold one entry per request ({n}), got {len(rows)}")
    out = []
    for i, r in enumerate(rows):
        if isinstance(r, (int, float)):
            out.append([float(r)] * m)
        else:
            vals = [float(x) for x in r]
            if len(vals) != m:
                raise ValueError(f"profits[{i}] must hold one value per node ({m})")
            out.append(vals)
    if any(not math.isfinite(x) for r in out for x in r):
        raise ValueError("profits must be finite")
    return out


def _nodes(nodes: EdgeNode | Sequence[EdgeNode]) -> list[EdgeNode]:
    if isinstance(nodes, EdgeNode):
        return [nodes]
    out = list(nodes)
    if not out:
        raise ValueError("nodes must hold at least one EdgeNode")
    for i, nd in enumerate(out):
        if not isinstance(nd, EdgeNode):
            raise TypeError(f"nodes[{i}] must be an EdgeNode, got {type(nd).__name__}")
    return out


def _levels(problem: NodeProblem) -> list[QuantLevel]:
    """The node's levels, most accurate first (ties: fewest bits first)."""
    return sorted(problem.node.levels, key=lambda lv: (-lv.accuracy, lv.weight_bits))


def _empty_reason(problem: NodeProblem, any_candidate: bool) -> str:
    if len(problem) == 0:
        return "no requests"
    if not any_candidate:
        return "no request is served alone at any level (accuracy floors, links, memory " \
               "or deadlines)"
    return ""


def _singleton_ok(problem: NodeProblem, i: int, level: QuantLevel) -> bool:
    return problem.serves(i, level) and problem.fits(
        1, problem.ul_s[i], problem.dl_s[i], problem.prompt[i], problem.output[i],
        problem.deadline[i], level)


def _sort(problem: NodeProblem, idx: list[int], order: str) -> list[int]:
    if order == "deadline":
        return sorted(idx, key=lambda i: (-problem.deadline[i], i))
    if order == "prompt":
        return sorted(idx, key=lambda i: (problem.prompt[i] + problem.output[i], i))
    if order == "airtime":
        return sorted(idx, key=lambda i: (problem.ul_s[i] + problem.dl_s[i], i))
    return sorted(idx)


# ------------------------------------------------------------------------------------------
# OT


class _Budget(Exception):
    pass


class _TreeSearch:
    """The include/exclude search of one level over the candidates ``cand`` (sorted)."""

    def __init__(self, problem: NodeProblem, level: QuantLevel, cand: list[int],
                 profits: Sequence[float], best: float, visited: int,
                 max_nodes: int | None) -> None:
        self.p, self.level, self.cand = problem, level, cand
        self.pv = [profits[i] for i in cand]
        n = len(cand)
        self.suffix = [0.0] * (n + 1)
        for k in range(n - 1, -1, -1):
            self.suffix[k] = self.suffix[k + 1] + self.pv[k]
        self.best, self.best_set = best, None
        self.visited, self.max_nodes = visited, max_nodes
        self.chosen: list[int] = []

    def tick(self, count: int = 1) -> None:
        self.visited += count
        if self.max_nodes is not None and self.visited > self.max_nodes:
            raise _Budget

    def fits(self, b: int, air: float, s: int, o: int, dmin: float) -> bool:
        return self.p.fits(b, air, 0.0, s, o, dmin, self.level)

    def record(self, val: float) -> None:
        if val > self.best:
            self.best, self.best_set = val, tuple(self.chosen)

    def join(self, i: int, air: float, s: int, o: int, dmin: float
             ) -> tuple[float, int, int, float]:
        """The aggregates after request ``i`` joins."""
        p = self.p
        return (air + p.ul_s[i] + p.dl_s[i], max(s, p.prompt[i]), max(o, p.output[i]),
                min(dmin, p.deadline[i]))

    def room(self, b: int, air: float, s: int, o: int, dmin: float, rest: int) -> int:
        """Most users that could still join: the largest b' <= b + rest the current
        aggregates allow (a relaxation: joining users only raise them), by bisection."""
        lo, hi = b, b + rest
        while lo < hi:
            mid = (lo + hi + 1) // 2
            self.tick()
            if self.fits(mid, air, s, o, dmin):
                lo = mid
            else:
                hi = mid - 1
        return lo - b

    def paper(self, k: int, b: int, air: float, s: int, o: int, dmin: float,
              val: float) -> None:
        """The published search: include/exclude user k, feasibility and suffix bound."""
        self.record(val)
        if k == len(self.cand) or val + self.suffix[k] <= self.best:
            return
        i = self.cand[k]
        self.tick()
        nxt = self.join(i, air, s, o, dmin)
        if self.fits(b + 1, *nxt):
            self.chosen.append(i)
            self.paper(k + 1, b + 1, *nxt, val + self.pv[k])
            self.chosen.pop()
        self.paper(k + 1, b, air, s, o, dmin, val)

    def tight(self, rest: list[int], b: int, air: float, s: int, o: int, dmin: float,
              val: float) -> None:
        """``rest`` holds only users that fit with the current batch (positions in
        ``cand``); a user that does not fit now never fits deeper, so it is dropped for
        the whole subtree. Bound: their profits, capped by the batch-size room."""
        self.record(val)
        if not rest:
            return
        total = sum(self.pv[k] for k in rest)
        if val + total <= self.best:
            return
        if b > 0:
            cap = self.room(b, air, s, o, dmin, len(rest))
            if val + min(total, cap * max(self.pv[k] for k in rest)) <= self.best:
                return
        k, tail = rest[0], rest[1:]
        i = self.cand[k]
        nxt = self.join(i, air, s, o, dmin)
        self.tick(len(tail))
        keep = [j for j in tail if self.fits(b + 2, *self.join(self.cand[j], *nxt))]
        self.chosen.append(i)
        self.tight(keep, b + 1, *nxt, val + self.pv[k])
        self.chosen.pop()
        self.tight(tail, b, air, s, o, dmin, val)


def _ot_problem(problem: NodeProblem, profits: Sequence[float], *, order: str = "deadline",
                bound: str = "tight", max_nodes: int | None = None,
                node_index: int = 0) -> Schedule:
    if order not in OT_ORDERS:
        raise ValueError(f"order must be one of {list(OT_ORDERS)}, got {order!r}")
    if bound not in OT_BOUNDS:
        raise ValueError(f"bound must be one of {list(OT_BOUNDS)}, got {bound!r}")
    if max_nodes is not None and (isinstance(max_nodes, bool) or not isinstance(max_nodes, int)
                                  or max_nodes < 1):
        raise ValueError(f"max_nodes must be None or an int >= 1, got {max_nodes!r}")
    if len(problem) > OT_MAX_USERS:
        raise ValueError(f"OT searches at most {OT_MAX_USERS} requests (one stack frame per "
                         f"tree level), got {len(problem)}; use sweep_schedule")
    best_val, best_set, best_level = 0.0, (), None
    visited, finished, any_candidate = 0, True, False
    for level in _levels(problem):
        cand = [i for i in range(len(problem))
                if profits[i] > 0 and _singleton_ok(problem, i, level)]
        any_candidate |= bool(cand)
        if not cand:
            continue
        search = _TreeSearch(problem, level, _sort(problem, cand, order), profits, best_val,
                             visited, max_nodes)
        try:
            if bound == "paper":
                search.paper(0, 0, 0.0, 0, 0, math.inf, 0.0)
            else:  # every candidate fits alone, so all of them start in ``rest``
                search.tight(list(range(len(cand))), 0, 0.0, 0, 0, math.inf, 0.0)
        except _Budget:
            finished = False
        visited = min(search.visited, max_nodes) if max_nodes else search.visited
        if search.best_set is not None and search.best > best_val:
            best_val, best_set, best_level = search.best, search.best_set, level
        if not finished:
            break
    return _finish(problem, best_set, best_level, best_val, visited, finished, node_index,
                   "" if best_set else _empty_reason(problem, any_candidate))


def _finish(problem: NodeProblem, batch: Sequence[int], level: QuantLevel | None, value: float,
            visited: int, optimal: bool, node_index: int, reason: str) -> Schedule:
    batch = tuple(sorted(batch))
    cost = problem.evaluate(batch, level) if level is not None and batch else None
    if batch and not cost.feasible:  # the search and the full evaluation must agree
        raise AssertionError(f"scheduled batch {batch} is infeasible: {cost.reason}")
    return Schedule(batch=batch, level=level if batch else None, value=value if batch else 0.0,
                    nodes_visited=visited, optimal=optimal,
                    reason=reason if not batch else "", cost=cost, node=node_index)


def ot_schedule(requests: Sequence[Request], node: EdgeNode, links: EdgeLinks | None = None, *,
                profits: Sequence[float] | None = None, order: str = "deadline",
                bound: str = "tight", max_nodes: int | None = None) -> Schedule:
    """The batch of most value (most requests with unit profits) that ``node`` can serve.

    Args:
        requests: the users' requests.
        node: the edge node.
        links: uplink/downlink rate model (default :class:`EdgeLinks`: ``phy``, Rayleigh).
        profits: value of serving each request (default 1 each: throughput).
        order: user order of the tree (:data:`OT_ORDERS`); the result does not depend on it,
            the search effort does.
        bound: ``"paper"`` (the published search: value + remaining profits) or ``"tight"``
            (each include keeps only the users that still fit, and the bound is capped by
            the largest batch the current aggregates allow).
        max_nodes: stop after this many evaluations with the best batch so far
            (``optimal=False``); None: search to the end.
    """
    problem = NodeProblem(requests, node, links)
    return _ot_problem(problem, _profits(profits, len(problem)), order=order, bound=bound,
                       max_nodes=max_nodes)


def _unit(profits: Sequence[float]) -> bool:
    positive = {p for p in profits if p > 0}
    return len(positive) <= 1


def _sweep_problem(problem: NodeProblem, profits: Sequence[float], node_index: int = 0
                   ) -> Schedule:
    if not _unit(profits):
        raise ValueError("the threshold sweep is exact for equal profits only; use OT")
    fits = problem.fits
    air = [u + d for u, d in zip(problem.ul_s, problem.dl_s, strict=True)]
    best_val, best_set, best_level, visited = 0, (), None, 0
    unit = max(profits, default=1.0)
    for level in _levels(problem):
        cand = sorted((i for i in range(len(problem))
                       if profits[i] > 0 and _singleton_ok(problem, i, level)),
                      key=lambda i: (air[i], i))
        if len(cand) <= best_val:
            continue
        for dmin in sorted({problem.deadline[i] for i in cand}):
            for s_cap in sorted({problem.prompt[i] for i in cand}):
                for o_cap in sorted({problem.output[i] for i in cand}):
                    pool = [i for i in cand if problem.deadline[i] >= dmin
                            and problem.prompt[i] <= s_cap and problem.output[i] <= o_cap]
                    if len(pool) <= best_val:
                        continue
                    prefix = [0.0]
                    for i in pool:
                        prefix.append(prefix[-1] + air[i])
                    lo, hi = 0, len(pool)  # largest b whose b cheapest users fit the caps
                    while lo < hi:
                        mid = (lo + hi + 1) // 2
                        visited += 1
                        if fits(mid, prefix[mid], 0.0, s_cap, o_cap, dmin, level):
                            lo = mid
                        else:
                            hi = mid - 1
                    if lo > best_val:
                        best_val, best_set, best_level = lo, tuple(pool[:lo]), level
    any_single = bool(best_set) or any(_singleton_ok(problem, i, lv)
                                       for i in range(len(problem))
                                       for lv in problem.node.levels)
    return _finish(problem, best_set, best_level, best_val * unit, visited, True, node_index,
                   "" if best_set else _empty_reason(problem, any_single))


def sweep_schedule(requests: Sequence[Request], node: EdgeNode,
                   links: EdgeLinks | None = None) -> Schedule:
    """The largest feasible batch, exactly, in polynomial time (equal profits).

    Every feasible batch has a tightest deadline ``D``, a padded prompt ``s`` and an output
    ``o``; the cheapest-airtime users among those with deadline >= D, prompt <= s and output
    <= o are feasible whenever a batch of that size with those values is (the cost model is
    monotone), so sweeping the (D, s, o) thresholds and bisecting the batch size over airtime
    prefix sums finds the optimum: O(N * |prompts| * |outputs|) pools of O(N) each, against
    OT's exponential worst case. Ours, not the paper's; :func:`ot_schedule` is the paper's.
    """
    problem = NodeProblem(requests, node, links)
    return _sweep_problem(problem, [1.0] * len(problem))


def _feasible_masks(problem: NodeProblem, level: QuantLevel) -> list[bool]:
    """``ok[mask]``: the users of ``mask`` (bit i = request i) form a feasible batch at
    ``level``. Aggregates are built mask by mask from the mask without its lowest user."""
    n = len(problem)
    size = 1 << n
    servable = sum(1 << i for i in range(n) if problem.serves(i, level))
    b, air, smax, omax = [0] * size, [0.0] * size, [0] * size, [0] * size
    dmin = [math.inf] * size
    ok = [False] * size
    fits = problem.fits
    for mask in range(1, size):
        i = (mask & -mask).bit_length() - 1
        rest = mask & (mask - 1)
        b[mask] = b[rest] + 1
        air[mask] = air[rest] + problem.ul_s[i] + problem.dl_s[i]
        smax[mask] = max(smax[rest], problem.prompt[i])
        omax[mask] = max(omax[rest], problem.output[i])
        dmin[mask] = min(dmin[rest], problem.deadline[i])
        ok[mask] = (mask & ~servable == 0 and math.isfinite(air[mask])
                    and fits(b[mask], air[mask], 0.0, smax[mask], omax[mask], dmin[mask],
                             level))
    return ok


def _brute_force_problem(problem: NodeProblem, profits: Sequence[float],
                         node_index: int = 0) -> Schedule:
    n = len(problem)
    if n > BRUTE_FORCE_MAX_USERS:
        raise ValueError(f"brute force handles at most {BRUTE_FORCE_MAX_USERS} requests "
                         f"(2^N subsets per level), got {n}")
    best_val, best_set, best_level, visited = 0.0, (), None, 0
    for level in _levels(problem):
        ok = _feasible_masks(problem, level)
        visited += len(ok) - 1
        for mask in range(1, 1 << n):
            if ok[mask]:
                val = sum(profits[i] for i in range(n) if mask >> i & 1)
                if val > best_val:
                    best_val, best_level = val, level
                    best_set = tuple(i for i in range(n) if mask >> i & 1)
    any_single = any(_singleton_ok(problem, i, lv) for i in range(n) for lv in problem.node.levels)
    return _finish(problem, best_set, best_level, best_val, visited, True, node_index,
                   "" if best_set else _empty_reason(problem, any_single))


def brute_force_schedule(requests: Sequence[Request], node: EdgeNode,
                         links: EdgeLinks | None = None, *,
                         profits: Sequence[float] | None = None) -> Schedule:
    """The exact reference of :func:`ot_schedule`: every subset at every level
    (at most :data:`BRUTE_FORCE_MAX_USERS` requests)."""
    if len(requests) > BRUTE_FORCE_MAX_USERS:
        raise ValueError(f"brute force handles at most {BRUTE_FORCE_MAX_USERS} requests "
                         f"(2^N subsets per level), got {len(requests)}")
    problem = NodeProblem(requests, node, links)
    return _brute_force_problem(problem, _profits(profits, len(problem)))


# ------------------------------------------------------------------------------------------
# several nodes


def _assignment(problems: Sequence[NodeProblem], batches: Sequence[Sequence[int]],
                levels: Sequence[QuantLevel | None], values: Sequence[float],
                visited: int, optimal: bool, t0: float, name: str,
                reasons: Sequence[str] | None = None) -> Assignment:
    schedules = []
    for k, (pb, b, lv, v) in enumerate(zip(problems, batches, levels, values, strict=True)):
        reason = reasons[k] if reasons else ("" if b else "no request left that this node "
                                             "can serve")
        schedules.append(_finish(pb, b, lv, v, 0, optimal, k, reason))
    return Assignment(schedules=tuple(schedules), throughput=float(sum(values)),
                      nodes_visited=visited, optimal=optimal,
                      wall_s=time.perf_counter() - t0, scheduler=name)


def _problems(requests: Sequence[Request], nodes: EdgeNode | Sequence[EdgeNode],
              links: EdgeLinks | None) -> list[NodeProblem]:
    return [NodeProblem(requests, nd, links) for nd in _nodes(nodes)]


def gah_schedule(requests: Sequence[Request], nodes: EdgeNode | Sequence[EdgeNode],
                 links: EdgeLinks | None = None, *,
                 profits: Sequence[Sequence[float]] | Sequence[float] | None = None,
                 order: str = "deadline", bound: str = "tight",
                 max_nodes: int | None = None, solver: str = "ot",
                 problems: Sequence[NodeProblem] | None = None) -> Assignment:
    """OT-GAH: local-ratio generalized assignment with an exact solver per node.

    ``profits[i][k]`` is the value of serving request i at node k (a vector: the same at every
    node; default 1: throughput). ``solver``: ``"ot"`` (:func:`ot_schedule`, the paper's),
    ``"sweep"`` (:func:`sweep_schedule`, exact and polynomial for equal profits) or ``"auto"``
    (sweep wherever a node's residual profits are equal, else OT). ``max_nodes`` bounds each
    OT search.
    """
    if solver not in GAH_SOLVERS:
        raise ValueError(f"solver must be one of {list(GAH_SOLVERS)}, got {solver!r}")
    t0 = time.perf_counter()
    problems = list(problems) if problems is not None else _problems(requests, nodes, links)
    n, m = len(requests), len(problems)
    residual = _profit_matrix(profits, n, m)
    original = [row[:] for row in residual]
    picked: list[tuple[int, ...]] = []
    visited, optimal = 0, True
    for k, pb in enumerate(problems):
        prof = [residual[i][k] for i in range(n)]
        if solver == "sweep" or (solver == "auto" and _unit(prof)):
            sched = _sweep_problem(pb, prof, node_index=k)
        else:
            sched = _ot_problem(pb, prof, order=order, bound=bound, max_nodes=max_nodes,
                                node_index=k)
        visited += sched.nodes_visited
        optimal &= sched.optimal
        picked.append(sched.batch)
        for i in sched.batch:
            r = residual[i][k]
            for k2 in range(k + 1, m):
                residual[i][k2] -= r
    taken: set[int] = set()
    batches: list[tuple[int, ...]] = [()] * m
    for k in range(m - 1, -1, -1):
        batches[k] = tuple(i for i in picked[k] if i not in taken)
        taken.update(batches[k])
    levels, values = [], []
    for k, pb in enumerate(problems):
        lv = _best_level(pb, batches[k])
        levels.append(lv)
        values.append(sum(original[i][k] for i in batches[k]))
    return _assignment(problems, batches, levels, values, visited, optimal, t0,
                       "ot-gah" if solver == "ot" else f"gah-{solver}")


def _best_level(problem: NodeProblem, batch: Sequence[int]) -> QuantLevel | None:
    """The most accurate level at which ``batch`` is feasible (None for an empty batch)."""
    if not batch:
        return None
    for lv in _levels(problem):
        if all(problem.serves(i, lv) for i in batch) and problem.evaluate(batch, lv).feasible:
            return lv
    raise AssertionError(f"batch {tuple(batch)} is feasible at no level")


def brute_force_assignment(requests: Sequence[Request], nodes: EdgeNode | Sequence[EdgeNode],
                           links: EdgeLinks | None = None, *,
                           profits: Sequence[Sequence[float]] | Sequence[float] | None = None,
                           ) -> Assignment:
    """The optimal assignment, by a dynamic program over subsets of the users
    (at most :data:`BRUTE_FORCE_MAX_USERS_ASSIGNMENT` requests)."""
    t0 = time.perf_counter()
    n = len(requests)
    if n > BRUTE_FORCE_MAX_USERS_ASSIGNMENT:
        raise ValueError(f"brute_force_assignment handles at most "
                         f"{BRUTE_FORCE_MAX_USERS_ASSIGNMENT} requests (3^N sub-subsets per "
                         f"node), got {n}")
    problems = _problems(requests, nodes, links)
    m = len(problems)
    pm = _profit_matrix(profits, n, m)
    full = (1 << n) - 1
    visited = 0
    # feasible[k][mask]: the level at which node k can serve exactly ``mask`` (None: none)
    feasible: list[dict[int, QuantLevel]] = []
    for pb in problems:
        found: dict[int, QuantLevel] = {}
        for lv in reversed(_levels(pb)):  # the most accurate level written last wins
            ok = _feasible_masks(pb, lv)
            visited += len(ok) - 1
            found.update((mask, lv) for mask in range(1, full + 1) if ok[mask])
        feasible.append(found)
    value = [{mk: sum(pm[i][k] for i in range(n) if mk >> i & 1) for mk in feasible[k]}
             for k in range(m)]
    memo: dict[tuple[int, int], tuple[float, tuple[int, ...]]] = {}

    def best(k: int, avail: int) -> tuple[float, tuple[int, ...]]:
        """Best value of nodes k.. on the users in ``avail``, and node masks."""
        if k == m:
            return 0.0, ()
        key = (k, avail)
        if key in memo:
            return memo[key]
        top_val, top_masks = best(k + 1, avail)
        top_masks = (0, *top_masks)
        sub = avail
        while sub:
            v = value[k].get(sub)
            if v is not None:
                rest_val, rest_masks = best(k + 1, avail & ~sub)
                if v + rest_val > top_val:
                    top_val, top_masks = v + rest_val, (sub, *rest_masks)
            sub = (sub - 1) & avail
        memo[key] = (top_val, top_masks)
        return memo[key]

    _, masks = best(0, full)
    batches = [tuple(i for i in range(n) if mk >> i & 1) for mk in masks]
    levels = [feasible[k].get(mk) if mk else None for k, mk in enumerate(masks)]
    values = [sum(pm[i][k] for i in b) for k, b in enumerate(batches)]
    return _assignment(problems, batches, levels, values, visited, True, t0, "brute-force")


def greedy_assignment(requests: Sequence[Request], nodes: EdgeNode | Sequence[EdgeNode],
                      links: EdgeLinks | None = None, *, order: str = "fifo", seed: int = 0,
                      problems: Sequence[NodeProblem] | None = None) -> Assignment:
    """Baselines: node by node, add the remaining users in ``order`` while the batch stays
    feasible (each level tried, the one serving most kept).

    Orders: ``fifo`` (request order), ``edf`` (earliest deadline first), ``slack`` (most
    slack first: deadline minus the user's latency alone at the node), ``random`` (seeded).
    """
    if order not in GREEDY_ORDERS:
        raise ValueError(f"order must be one of {list(GREEDY_ORDERS)}, got {order!r}")
    t0 = time.perf_counter()
    problems = list(problems) if problems is not None else _problems(requests, nodes, links)
    n = len(requests)
    rng = random.Random(seed)
    perm = list(range(n))
    rng.shuffle(perm)
    left = set(range(n))
    batches, levels, values, visited = [], [], [], 0
    for pb in problems:
        if order == "fifo":
            seq = sorted(left)
        elif order == "edf":
            seq = sorted(left, key=lambda i: (pb.deadline[i], i))
        elif order == "random":
            seq = [i for i in perm if i in left]
        else:
            def slack(i: int, pb: NodeProblem = pb) -> float:
                lat = [pb.evaluate([i], lv) for lv in pb.node.levels if pb.serves(i, lv)]
                return max((pb.deadline[i] - c.latency_s for c in lat), default=-math.inf)
            seq = sorted(left, key=lambda i: (-slack(i), i))
        top: tuple[list[int], QuantLevel | None] = ([], None)
        for lv in _levels(pb):
            batch: list[int] = []
            b, ul, dl, s, o, dmin = 0, 0.0, 0.0, 0, 0, math.inf
            for i in seq:
                if not pb.serves(i, lv):
                    continue
                visited += 1
                cand = (b + 1, ul + pb.ul_s[i], dl + pb.dl_s[i], max(s, pb.prompt[i]),
                        max(o, pb.output[i]), min(dmin, pb.deadline[i]))
                if pb.fits(*cand, lv):
                    batch.append(i)
                    b, ul, dl, s, o, dmin = cand
            if len(batch) > len(top[0]):
                top = (batch, lv)
        batches.append(tuple(top[0]))
        levels.append(top[1])
        values.append(float(len(top[0])))
        left -= set(top[0])
    return _assignment(problems, batches, levels, values, visited, True, t0, order)


# ------------------------------------------------------------------------------------------
# by name

#: Schedulers by name (:mod:`phy.registry`); each is called ``(requests, nodes, links, *,
#: seed, **options)`` and returns an :class:`Assignment`.
SCHEDULERS: Registry[Assignment] = Registry("scheduler")
SCHEDULERS.register("ot-gah", lambda requests, nodes, links=None, seed=0, **kw: gah_schedule(
    requests, nodes, links, **kw))
SCHEDULERS.register("gah-sweep", lambda requests, nodes, links=None, seed=0, **kw: gah_schedule(
    requests, nodes, links, solver="auto", **kw))
SCHEDULERS.register("brute-force", lambda requests, nodes, links=None, seed=0, **kw:
                    brute_force_assignment(requests, nodes, links))
for _order in GREEDY_ORDERS:
    SCHEDULERS.register(_order, lambda requests, nodes, links=None, seed=0, _o=_order, **kw:
                        greedy_assignment(requests, nodes, links, order=_o, seed=seed,
                                          problems=kw.get("problems")))


def available_schedulers() -> list[str]:
    """Names :func:`run_scheduler` accepts, sorted."""
    return SCHEDULERS.available()


def run_scheduler(name: str, requests: Sequence[Request], nodes: EdgeNode | Sequence[EdgeNode],
                  links: EdgeLinks | None = None, *, seed: int = 0, **kwargs) -> Assignment:
    """Run the scheduler ``name`` (:func:`available_schedulers`) on an instance."""
    return SCHEDULERS.factory(name)(requests, nodes, links, seed=seed, **kwargs)
