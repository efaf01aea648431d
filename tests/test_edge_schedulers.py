"""Edge batching schedulers against brute force: exactness, the 1/2 guarantee of GAH,
monotonicity in resources, feasibility of every batch, and bad input."""

from __future__ import annotations

import math
import random

import pytest

from wdmoe_link.edge import (
    BRUTE_FORCE_MAX_USERS,
    BRUTE_FORCE_MAX_USERS_ASSIGNMENT,
    EdgeLinks,
    EdgeNode,
    NodeProblem,
    QuantLevel,
    Request,
    available_schedulers,
    brute_force_assignment,
    brute_force_schedule,
    gah_schedule,
    ot_schedule,
    random_instance,
    run_scheduler,
    sweep_schedule,
)

LEVELS = (QuantLevel(16, 0.80), QuantLevel(8, 0.79), QuantLevel(4, 0.75))


def _instance(n: int, m: int, seed: int, tight: bool = False):
    """Random instances; ``tight`` makes memory and deadlines bind at a handful of users."""
    over = {"memory_bytes": 20e9} if tight else None
    return random_instance(n, m, seed=seed, levels=LEVELS, node_overrides=over,
                           deadline_s=(2.0, 12.0) if tight else (5.0, 30.0))


@pytest.mark.parametrize("tight", [False, True])
def test_ot_and_sweep_equal_brute_force(tight: bool) -> None:
    """Every random instance with N <= 12: OT (both prunings) and the sweep find a batch as
    large as brute force's, and OT evaluates fewer batches (the paper: > 45 % fewer)."""
    ratios = []
    for seed in range(24):
        n = 1 + seed % 12
        requests, nodes = _instance(n, 1, seed, tight)
        ref = brute_force_schedule(requests, nodes[0])
        for sched in (ot_schedule(requests, nodes[0]),
                      ot_schedule(requests, nodes[0], bound="paper", order="prompt"),
                      sweep_schedule(requests, nodes[0])):
            assert len(sched.batch) == len(ref.batch), (seed, sched.batch, ref.batch)
            assert sched.optimal
        paper = ot_schedule(requests, nodes[0], bound="paper")
        ratios.append(paper.nodes_visited / ref.nodes_visited)
    assert sum(ratios) / len(ratios) < 0.55


def test_ot_with_profits_equals_brute_force() -> None:
    """Weighted requests (the residual profits GAH hands to OT): the same optimum value."""
    rng = random.Random(0)
    for seed in range(10):
        requests, nodes = _instance(10, 1, seed, tight=True)
        profits = [rng.choice([0.0, 0.5, 1.0, 2.0, 3.5]) for _ in requests]
        a = ot_schedule(requests, nodes[0], profits=profits)
        b = brute_force_schedule(requests, nodes[0], profits=profits)
        assert a.value == pytest.approx(b.value), seed
        with pytest.raises(ValueError, match="equal profits"):
            from wdmoe_link.edge.schedulers import _sweep_problem
            if len({p for p in profits if p > 0}) > 1:
                _sweep_problem(NodeProblem(requests, nodes[0]), profits)
            else:
                raise ValueError("equal profits")


@pytest.mark.parametrize("solver", ["ot", "auto"])
def test_gah_reaches_half_the_optimum(solver: str) -> None:
    """Multi-node instances small enough for brute force (N <= 10, M <= 3): GAH >= 1/2 of the
    optimum every time, with unit and with per-node profits."""
    rng = random.Random(1)
    gaps = []
    for seed in range(12):
        n, m = 4 + seed % 7, 2 + seed % 2
        requests, nodes = _instance(n, m, seed, tight=True)
        opt = brute_force_assignment(requests, nodes)
        got = gah_schedule(requests, nodes, solver=solver)
        assert got.throughput >= 0.5 * opt.throughput - 1e-9
        assert len(set(got.served)) == len(got.served)  # nobody served twice
        gaps.append(opt.throughput - got.throughput)
        profits = [[rng.uniform(0.1, 2.0) for _ in nodes] for _ in requests]
        opt_w = brute_force_assignment(requests, nodes, profits=profits)
        got_w = gah_schedule(requests, nodes, profits=profits)
        assert got_w.throughput >= 0.5 * opt_w.throughput - 1e-9
    assert sum(gaps) <= len(gaps)  # usually close to optimal: under one request on average


def test_every_scheduled_batch_is_feasible() -> None:
    """The batches of every scheduler pass the cost model's full evaluation, at their level,
    with every member's deadline and floor met and the bandwidth shares summing to 1."""
    requests, nodes = _instance(40, 3, seed=3)
    for name in available_schedulers():
        if name == "brute-force":
            continue
        a = run_scheduler(name, requests, nodes, seed=0)
        for s in a.schedules:
            if not s.batch:
                continue
            pb = NodeProblem(requests, nodes[s.node])
            cost = pb.evaluate(s.batch, s.level)
            assert cost.feasible, (name, cost.reason)
            assert all(requests[i].deadline_s >= cost.latency_s for i in s.batch)
            assert all(requests[i].accuracy_floor <= s.level.accuracy for i in s.batch)
            assert cost.memory_bytes <= nodes[s.node].memory_bytes
        assert a.throughput == len(a.served)


@pytest.mark.parametrize("field,factor", [("memory_bytes", 2.0), ("compute_flops", 2.0),
                                          ("memory_bandwidth_bytes_s", 2.0),
                                          ("ul_bandwidth_hz", 0.01)])
def test_throughput_never_falls_as_resources_grow(field: str, factor: float) -> None:
    """Exact solvers: more memory, compute, memory bandwidth, radio bandwidth or looser
    deadlines never serve fewer requests (bandwidth is scaled from 1 % of the default up)."""
    for seed in range(6):
        requests, nodes = _instance(30, 1, seed, tight=True)
        node = nodes[0]
        if field == "ul_bandwidth_hz":  # start where the links bind
            node = node.with_(ul_bandwidth_hz=0.2e6, dl_bandwidth_hz=0.2e6)
        last = -1
        for step in range(4):
            scale = (2.0 ** step) if factor < 1 else factor ** step
            changes = {field: getattr(node, field) * scale}
            if field == "ul_bandwidth_hz":
                changes["dl_bandwidth_hz"] = node.dl_bandwidth_hz * scale
            served = len(sweep_schedule(requests, node.with_(**changes)).batch)
            assert served >= last
            last = served
        last = -1
        for extra in (0.0, 1.0, 5.0, 20.0):
            looser = [Request(**{**r.to_dict(), "position_m": r.position_m,
                                 "deadline_s": r.deadline_s + extra}) for r in requests]
            served = len(sweep_schedule(looser, node).batch)
            assert served >= last
            last = served


def test_brute_force_assignment_monotone_in_nodes_memory() -> None:
    for seed in range(3):
        requests, nodes = _instance(8, 2, seed, tight=True)
        small = brute_force_assignment(requests, nodes).throughput
        big = brute_force_assignment(
            requests, [nd.with_(memory_bytes=nd.memory_bytes * 2) for nd in nodes]).throughput
        assert big >= small


def test_infeasible_instance_gives_an_empty_batch_with_the_reason() -> None:
    requests = [Request(512, 1024, deadline_s=0.01)]  # no batch computes in 10 ms
    node = EdgeNode(levels=LEVELS)
    for sched in (ot_schedule(requests, node), sweep_schedule(requests, node),
                  brute_force_schedule(requests, node)):
        assert sched.batch == () and sched.level is None
        assert "no request is served" in sched.reason
    assert "no requests" in ot_schedule([], node).reason
    cost = NodeProblem(requests, node).evaluate([0], LEVELS[0])
    assert not cost.feasible and cost.reason.startswith("deadline")
    picky = [Request(128, 128, deadline_s=30.0, accuracy_floor=0.99)]
    assert NodeProblem(picky, node).evaluate([0], LEVELS[0]).reason.startswith("accuracy")
    far = [Request(128, 128, deadline_s=30.0, snr_ul_db=-30.0, snr_dl_db=20.0)]
    assert NodeProblem(far, node).evaluate([0], LEVELS[0]).reason.startswith("link")
    # Shannon rates carry any SNR: the same request is served
    assert ot_schedule(far, node, EdgeLinks(model="shannon")).batch == (0,)


def test_bad_input_is_refused_with_the_parameter_named() -> None:
    with pytest.raises(ValueError, match="memory_bytes"):
        EdgeNode(memory_bytes=-1.0, levels=LEVELS)
    with pytest.raises(ValueError, match="compute_flops"):
        EdgeNode(compute_flops=math.nan, levels=LEVELS)
    with pytest.raises(ValueError, match="ul_bandwidth_hz"):
        EdgeNode(ul_bandwidth_hz=0.0, levels=LEVELS)
    with pytest.raises(ValueError, match="accuracy"):
        QuantLevel(8, 1.5)
    with pytest.raises(ValueError, match="deadline_s"):
        Request(128, 128, deadline_s=math.nan)
    with pytest.raises(ValueError, match="prompt_tokens"):
        Request(0, 128, deadline_s=1.0)
    with pytest.raises(ValueError, match="snr_ul_db"):
        Request(128, 128, deadline_s=1.0, snr_ul_db=500.0)
    requests, nodes = _instance(5, 1, 0)
    with pytest.raises(ValueError, match="unknown scheduler 'lifo'"):
        run_scheduler("lifo", requests, nodes)
    with pytest.raises(ValueError, match="order"):
        ot_schedule(requests, nodes[0], order="size")
    with pytest.raises(ValueError, match="profits"):
        ot_schedule(requests, nodes[0], profits=[1.0])
    many, nodes = _instance(BRUTE_FORCE_MAX_USERS + 1, 1, 0)
    with pytest.raises(ValueError, match=f"at most {BRUTE_FORCE_MAX_USERS} requests"):
        brute_force_schedule(many, nodes[0])
    many, nodes = _instance(BRUTE_FORCE_MAX_USERS_ASSIGNMENT + 1, 2, 0)
    with pytest.raises(ValueError, match=f"at most {BRUTE_FORCE_MAX_USERS_ASSIGNMENT}"):
        brute_force_assignment(many, nodes)
    with pytest.raises(ValueError, match="num_users"):
        random_instance(-1)


def test_ot_budget_returns_the_best_so_far() -> None:
    requests, nodes = _instance(60, 1, 0)
    cut = ot_schedule(requests, nodes[0], max_nodes=500)
    assert not cut.optimal and cut.nodes_visited <= 500
    assert NodeProblem(requests, nodes[0]).evaluate(cut.batch, cut.level).feasible
    assert len(cut.batch) <= len(sweep_schedule(requests, nodes[0]).batch)


def test_instances_are_nested_over_users() -> None:
    """The same seed gives the same nodes at every size, and the first n users are shared."""
    small, nodes_a = random_instance(5, 2, seed=4)
    big, nodes_b = random_instance(9, 2, seed=4)
    assert big[:5] == small and nodes_a == nodes_b
    assert random_instance(5, 2, seed=5)[0] != small
