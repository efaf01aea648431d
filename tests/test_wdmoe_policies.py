"""WDMoE expert-selection policies: top-k, WLR (rules A/B/C), joint selection + bandwidth.

Seeded, CPU only, a few seconds in all. Tolerances are stated next to each assertion.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wdmoe_link.latency import DeviceCost, ShannonAirtime, equal_split
from wdmoe_link.policies import (
    RULES,
    WLR,
    Decision,
    Joint,
    Policy,
    TopK,
    available_policies,
    combine_weights,
    device_loads,
    parse_policy,
    register_policy,
    score_weights,
    wlr_keep,
)
from wdmoe_link.routing import Routing
from wdmoe_link.topology import Device, Topology, default_topology, homogeneous_topology

F64 = torch.float64
D, FF = 4096, 14336
FLOPS = 2 * 3 * D * FF
WBYTES = 3 * D * FF * 2
THETAS = [i / 10 for i in range(11)]


def make_routing(n: int, e: int = 8, k: int = 2, seed: int = 0, temperature: float = 2.0,
                 renorm: bool = True) -> Routing:
    """Mixtral-style routing of ``n`` tokens (softmax, top-k, renormalised unless told)."""
    g = torch.Generator().manual_seed(seed)
    probs = torch.softmax(temperature * torch.randn(n, e, generator=g), dim=-1)
    w, idx = probs.topk(k, dim=-1)
    return Routing(probs=probs, top_idx=idx, top_w=w / w.sum(-1, keepdim=True) if renorm else w)


def make_cost(topo: Topology, seed: int | None = 0) -> DeviceCost:
    gain = topo.path_gain() if seed is None else topo.channel_gain(
        torch.Generator().manual_seed(seed))
    return DeviceCost(topo, gain, ShannonAirtime(16), hidden_size=D, flops_per_token=FLOPS,
                      weight_bytes=WBYTES)


IDENTITY = torch.arange(8)


# --------------------------------------------------------------------------------------------
# top-k and theta = 0


def test_topk_keeps_the_router_output() -> None:
    r = make_routing(16, seed=1)
    cost = make_cost(default_topology(8, seed=0))
    d = TopK().decide(r, IDENTITY, cost)
    assert bool(d.keep.all()) and torch.equal(d.weights, r.top_w)
    assert torch.equal(d.beta, equal_split(8))
    loads = torch.bincount(r.top_idx.reshape(-1), minlength=8).to(F64)
    assert torch.equal(d.info["loads"], loads)
    assert d.info["layer_latency_s"] == pytest.approx(cost.layer_latency_s(loads, d.beta),
                                                      rel=1e-12)


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("weight", ["renorm", "raw"])
@pytest.mark.parametrize("renorm_router", [True, False])
def test_wlr_at_theta_zero_is_exactly_topk(rule: str, weight: str, renorm_router: bool) -> None:
    cost = make_cost(default_topology(8, seed=3))
    for n in (1, 37):
        r = make_routing(n, seed=n, renorm=renorm_router)
        a = TopK().decide(r, IDENTITY, cost)
        b = WLR(0.0, rule=rule, weight=weight).decide(r, IDENTITY, cost)
        assert torch.equal(a.keep, b.keep)
        assert torch.equal(a.weights, b.weights)      # bit for bit
        assert torch.equal(a.beta, b.beta)


# --------------------------------------------------------------------------------------------
# weights and expert counts over theta


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("weight", ["renorm", "raw"])
def test_kept_weights_sum_to_one_and_at_least_one_expert(rule: str, weight: str) -> None:
    """For theta in [0, 1]: rows sum to 1 +- 1e-6, >= 1 expert kept, mean in [1, 2] and
    non-increasing in theta."""
    topo = default_topology(8, seed=5)
    r = make_routing(256, seed=2, temperature=1.0)
    cost = make_cost(topo, seed=4)
    counts = []
    for theta in THETAS:
        d = WLR(theta, rule=rule, weight=weight).decide(r, IDENTITY, cost)
        assert bool(d.keep.any(-1).all())
        torch.testing.assert_close(d.weights.sum(-1), torch.ones(256), rtol=0.0, atol=1e-6)
        assert bool((d.weights[~d.keep] == 0).all())
        counts.append(d.experts_per_token)
    assert all(1.0 <= c <= 2.0 for c in counts)
    assert all(b <= a for a, b in itertools.pairwise(counts))
    assert counts[0] == 2.0
    if rule == "share":
        assert counts[-1] == 1.0      # theta > 0.5 leaves exactly one expert with top-2


def test_renormalize_false_only_zeroes_dropped_weights() -> None:
    r = make_routing(64, seed=7)
    cost = make_cost(default_topology(8, seed=1))
    d = WLR(0.4, renormalize=False).decide(r, IDENTITY, cost)
    assert d.dropped > 0
    torch.testing.assert_close(d.weights, torch.where(d.keep, r.top_w, 0.0), rtol=0, atol=0)
    dropped_rows = ~d.keep.all(-1)
    assert bool((d.weights[dropped_rows].sum(-1) < 1.0).all())


def test_renormalisation_keeps_the_row_mass_of_unnormalised_routers() -> None:
    """Routers that do not renormalise their top-k (OLMoE) keep their own row total."""
    r = make_routing(64, seed=8, renorm=False)
    cost = make_cost(default_topology(8, seed=1))
    d = WLR(0.4).decide(r, IDENTITY, cost)
    assert d.dropped > 0
    torch.testing.assert_close(d.weights.sum(-1), r.top_w.sum(-1), rtol=1e-6, atol=0)
    one = combine_weights(torch.tensor([[0.3, 0.2]]), torch.tensor([[True, False]]))
    torch.testing.assert_close(one, torch.tensor([[0.5, 0.0]]))


# --------------------------------------------------------------------------------------------
# the rules on hand-built cases


def test_rule_a_share_threshold() -> None:
    w = torch.tensor([[0.7, 0.3]], dtype=F64)
    same = torch.tensor([[1.0, 1.0]], dtype=F64)
    # equal latencies: shares are the weights
    assert wlr_keep(w, same, 0.25, "share").tolist() == [[True, True]]
    assert wlr_keep(w, same, 0.35, "share").tolist() == [[True, False]]
    # a 5x faster second device: WLR = (0.7, 1.5), shares (0.318, 0.682)
    fast2 = torch.tensor([[1.0, 0.2]], dtype=F64)
    assert wlr_keep(w, fast2, 0.30, "share").tolist() == [[True, True]]
    assert wlr_keep(w, fast2, 0.35, "share").tolist() == [[False, True]]
    # the arg-max-WLR expert survives any theta; exact ties at 0.5 keep both
    assert wlr_keep(w, fast2, 1.0, "share").tolist() == [[False, True]]
    tie = torch.tensor([[0.5, 0.5]], dtype=F64)
    assert wlr_keep(tie, same, 0.5, "share").tolist() == [[True, True]]
    assert wlr_keep(tie, same, 0.51, "share").tolist() == [[True, False]]


def test_rule_b_ratio_to_best() -> None:
    w = torch.tensor([[0.7, 0.3]], dtype=F64)
    same = torch.tensor([[1.0, 1.0]], dtype=F64)
    # WLR_2 / WLR_1 = 3/7 = 0.4286
    assert wlr_keep(w, same, 0.42, "ratio").tolist() == [[True, True]]
    assert wlr_keep(w, same, 0.43, "ratio").tolist() == [[True, False]]
    # second device twice as fast: WLR = (0.7, 0.6) -> ratio 0.857
    fast2 = torch.tensor([[1.0, 0.5]], dtype=F64)
    assert wlr_keep(w, fast2, 0.85, "ratio").tolist() == [[True, True]]
    assert wlr_keep(w, fast2, 0.86, "ratio").tolist() == [[True, False]]
    assert wlr_keep(w, fast2, 1.0, "ratio").tolist() == [[True, False]]


def test_rule_c_weight_gated_latency() -> None:
    w = torch.tensor([[0.7, 0.3]], dtype=F64)
    slow2 = torch.tensor([[1.0, 2.0]], dtype=F64)
    fast2 = torch.tensor([[2.0, 1.0]], dtype=F64)
    assert wlr_keep(w, slow2, 0.29, "gated").tolist() == [[True, True]]   # w2 >= theta
    assert wlr_keep(w, slow2, 0.31, "gated").tolist() == [[True, False]]  # w2 < theta, slower
    assert wlr_keep(w, fast2, 1.0, "gated").tolist() == [[True, True]]    # faster: never
    # the highest-weight expert is never dropped, even when it sits in the second slot
    w_rev = torch.tensor([[0.3, 0.7]], dtype=F64)
    assert wlr_keep(w_rev, fast2, 1.0, "gated").tolist() == [[False, True]]


def test_wlr_policy_uses_single_row_latency_at_the_equal_split() -> None:
    topo = Topology(devices=[Device(distance_m=60.0, compute_flops=8e12),
                             Device(distance_m=290.0, compute_flops=1e12)], fading="none")
    cost = make_cost(topo, seed=None)
    probs = torch.tensor([[0.6, 0.4], [0.45, 0.55]])
    r = Routing(probs=probs, top_idx=torch.tensor([[0, 1], [1, 0]]),
                top_w=torch.tensor([[0.6, 0.4], [0.55, 0.45]]))
    t = cost.device_latency_s(torch.ones(2), equal_split(2))
    for rule in RULES:
        d = WLR(0.45, rule=rule).decide(r, torch.arange(2), cost)
        torch.testing.assert_close(d.info["per_token_latency_s"], t, rtol=1e-12, atol=0)
        expected = wlr_keep(score_weights(r), t[r.top_idx], 0.45, rule)
        assert torch.equal(d.keep, expected)
    # device 1 is far and slow: rule C drops token 0's second expert (w 0.4 < 0.45) and keeps
    # token 1's fast second expert
    d = WLR(0.45, rule="gated").decide(r, torch.arange(2), cost)
    assert d.keep.tolist() == [[True, False], [True, True]]


def test_raw_and_renormalised_scores_differ() -> None:
    probs = torch.tensor([[0.4, 0.2, 0.1, 0.1, 0.1, 0.1]])
    r = Routing(probs=probs, top_idx=torch.tensor([[0, 1]]), top_w=torch.tensor([[0.4, 0.2]]))
    torch.testing.assert_close(score_weights(r, "renorm"),
                               torch.tensor([[2 / 3, 1 / 3]], dtype=F64))
    torch.testing.assert_close(score_weights(r, "raw"), torch.tensor([[0.4, 0.2]], dtype=F64))
    slow2 = torch.tensor([[1.0, 2.0]], dtype=F64)
    assert wlr_keep(score_weights(r, "renorm"), slow2, 0.3, "gated").tolist() == [[True, True]]
    assert wlr_keep(score_weights(r, "raw"), slow2, 0.3, "gated").tolist() == [[True, False]]


# --------------------------------------------------------------------------------------------
# latency properties


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 100_000), k_dev=st.integers(1, 8), n=st.integers(1, 24),
       roofline=st.booleans(), random_beta=st.booleans())
def test_dropping_never_raises_a_layer_latency(seed: int, k_dev: int, n: int, roofline: bool,
                                               random_beta: bool) -> None:
    """At a fixed split, any drop pattern (>= 1 kept per token) costs <= the full top-k."""
    topo = default_topology(k_dev, seed=seed, compute_model="roofline" if roofline else "flops")
    cost = make_cost(topo, seed=seed)
    g = torch.Generator().manual_seed(seed)
    e = 8
    r = make_routing(n, e=e, seed=seed)
    expert_map = torch.randint(0, k_dev, (e,), generator=g)
    beta = torch.rand(k_dev, generator=g, dtype=F64) + 0.05 if random_beta else equal_split(k_dev)
    beta = beta / beta.sum()
    keep = torch.rand(n, 2, generator=g) < 0.6
    keep[torch.arange(n), torch.randint(0, 2, (n,), generator=g)] = True
    full = torch.ones(n, 2, dtype=torch.bool)
    t_full = cost.layer_latency_s(*_loads(r, full, expert_map, k_dev, beta))
    t_drop = cost.layer_latency_s(*_loads(r, keep, expert_map, k_dev, beta))
    assert t_drop <= t_full * (1 + 1e-12)
    for policy in (WLR(0.3), WLR(0.6, rule="ratio"), WLR(0.5, rule="gated")):
        d = policy.decide(r, expert_map, cost)
        assert d.info["layer_latency_s"] <= TopK().decide(r, expert_map, cost).info[
            "layer_latency_s"] * (1 + 1e-12)


def _loads(r: Routing, keep: torch.Tensor, expert_map: torch.Tensor, k: int,
           beta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    loads, active = device_loads(r.top_idx, keep, expert_map, k)
    return loads, beta, active


def test_device_loads_counts_rows_and_distinct_experts() -> None:
    top_idx = torch.tensor([[0, 4], [4, 1], [0, 5]])
    keep = torch.tensor([[True, True], [True, False], [False, True]])
    loads, active = device_loads(top_idx, keep, torch.arange(8) % 4, 4)
    # kept experts 0, 4, 4, 5 -> devices 0, 0, 0, 1; distinct experts {0, 4} on 0, {5} on 1
    assert loads.tolist() == [3.0, 1.0, 0.0, 0.0]
    assert active.tolist() == [2.0, 1.0, 0.0, 0.0]


def test_homogeneous_devices_equal_split_batch_one_gain_nothing() -> None:
    """Section 2.1: identical devices, equal split, decode with batch 1 -> zero gain (rel 1e-12)."""
    topo = homogeneous_topology(8, fading="none")
    cost = make_cost(topo, seed=None)
    for compute_model in ("flops", "roofline"):
        c = make_cost(Topology(devices=topo.devices, fading="none",
                               compute_model=compute_model), seed=None)
        for seed in range(15):
            r = make_routing(1, seed=seed, temperature=1.5)
            t_top = TopK().decide(r, IDENTITY, c).info["layer_latency_s"]
            for rule in RULES:
                for theta in (0.2, 0.5, 1.0):
                    d = WLR(theta, rule=rule).decide(r, IDENTITY, c)
                    assert d.info["layer_latency_s"] == pytest.approx(t_top, rel=1e-12)
    assert cost.num_devices == 8


def test_mean_latency_is_non_increasing_in_theta_and_lower_when_heterogeneous() -> None:
    topo = default_topology(8, seed=0)
    costs = [make_cost(topo, seed=s) for s in range(20)]     # one fading block per token
    routings = [make_routing(1, seed=100 + s) for s in range(20)]
    prefill = make_routing(64, seed=7)
    for rule in RULES:
        means, pre = [], []
        for theta in THETAS:
            p = WLR(theta, rule=rule)
            lat = [p.decide(r, IDENTITY, c).info["layer_latency_s"]
                   for r, c in zip(routings, costs, strict=True)]
            means.append(sum(lat) / len(lat))
            pre.append(p.decide(prefill, IDENTITY, costs[0]).info["layer_latency_s"])
        assert all(b <= a * (1 + 1e-12) for a, b in itertools.pairwise(means))
        assert all(b <= a * (1 + 1e-12) for a, b in itertools.pairwise(pre))
        assert means[-1] < 0.95 * means[0]        # strictly lower on a heterogeneous cell


# --------------------------------------------------------------------------------------------
# joint selection and bandwidth


@pytest.mark.parametrize("text", ["joint:0", "joint:0.2", "joint:0.4:ratio", "joint:0.3:gated",
                                  "joint:gamma=0.7", "joint:gamma=0.9"])
def test_joint_optimisation(text: str) -> None:
    topo = default_topology(8, seed=2)
    policy = parse_policy(text)
    for seed, n in ((0, 1), (1, 1), (2, 1), (3, 16), (4, 48)):
        cost = make_cost(topo, seed=seed)
        r = make_routing(n, seed=seed)
        d = policy.decide(r, IDENTITY, cost)
        hist = d.info["objective_history"]
        # monotone objective, at most 10 iterations
        assert d.info["iterations"] <= 10 and len(hist) <= 11
        if d.info["objective"] == "phi":
            assert all(b >= a for a, b in itertools.pairwise(hist))
        else:
            assert all(b <= a for a, b in itertools.pairwise(hist))
            kept_w = torch.where(d.keep, score_weights(r), 0.0).sum(-1)
            assert bool((kept_w >= policy.gamma - 1e-9).all())
        # never worse than the equal split, of its own selection or of top-k
        loads, active = device_loads(r.top_idx, d.keep, IDENTITY, 8)
        t = d.info["layer_latency_s"]
        assert t <= cost.layer_latency_s(loads, equal_split(8), active) * (1 + 1e-9)
        assert t <= TopK().decide(r, IDENTITY, cost).info["layer_latency_s"] * (1 + 1e-9)
        # loaded devices finish together (1 %), the band is shared, kept weights sum to 1
        lt = d.info["device_latency_s"][loads > 0]
        assert float(lt.max() / lt.min()) <= 1.01
        assert float(d.beta.sum()) <= 1.0 + 1e-12
        assert bool((d.beta[loads == 0] == 0).all())
        torch.testing.assert_close(d.weights.sum(-1), torch.ones(n), rtol=0, atol=1e-6)
        assert bool(d.keep.any(-1).all())


def test_joint_theta_zero_is_topk_with_optimised_bandwidth() -> None:
    cost = make_cost(default_topology(8, seed=4), seed=1)
    r = make_routing(8, seed=3)
    d = Joint(0.0).decide(r, IDENTITY, cost)
    assert bool(d.keep.all()) and torch.equal(d.weights, r.top_w)
    t_top = TopK().decide(r, IDENTITY, cost).info["layer_latency_s"]
    assert d.info["layer_latency_s"] < t_top


def test_joint_beats_wlr_with_an_equal_split_on_decode() -> None:
    topo = default_topology(8, seed=0)
    lat_j, lat_w = 0.0, 0.0
    for s in range(20):
        cost = make_cost(topo, seed=s)
        r = make_routing(1, seed=200 + s)
        lat_j += Joint(0.2).decide(r, IDENTITY, cost).info["layer_latency_s"]
        lat_w += WLR(0.2).decide(r, IDENTITY, cost).info["layer_latency_s"]
    assert lat_j < lat_w


# --------------------------------------------------------------------------------------------
# names, registry and bad input


def test_parse_policy_and_names_round_trip() -> None:
    assert isinstance(parse_policy("topk"), TopK)
    p = parse_policy("wlr:0.2")
    assert isinstance(p, WLR) and (p.theta, p.rule, p.weight, p.renormalize) == (
        0.2, "share", "renorm", True)
    p = parse_policy("wlr:0.3:gated:raw:renormalize=false")
    assert (p.theta, p.rule, p.weight, p.renormalize) == (0.3, "gated", "raw", False)
    j = parse_policy("joint")
    assert isinstance(j, Joint) and j.theta == 0.2 and j.gamma is None
    j = parse_policy("joint:gamma=0.8:max_iter=5")
    assert j.gamma == 0.8 and j.theta is None and j.max_iter == 5
    for text in ("topk", "wlr:0.1", "wlr:0.25:ratio:raw", "wlr:1:gated:renormalize=false",
                 "joint:0.3:ratio", "joint:gamma=0.75:weight=raw"):
        p = parse_policy(text)
        assert parse_policy(p.name).name == p.name
    assert {"topk", "wlr", "joint"} <= set(available_policies())


def test_register_policy_for_another_module() -> None:
    class Fixed(Policy):
        def __init__(self, keep_first: bool = True) -> None:
            self.name = f"test-fixed:{keep_first}"

        def decide(self, routing: Routing, expert_map: torch.Tensor,
                   cost: DeviceCost) -> Decision:
            keep = torch.zeros(routing.top_idx.shape, dtype=torch.bool)
            keep[:, 0] = True
            return Decision(keep=keep, weights=combine_weights(routing.top_w, keep),
                            beta=equal_split(cost.num_devices))

    register_policy("test-fixed", Fixed)
    try:
        p = parse_policy("test-fixed:false")
        assert isinstance(p, Fixed) and p.name == "test-fixed:False"
        d = p.decide(make_routing(4), IDENTITY, make_cost(default_topology(8)))
        assert d.experts_per_token == 1.0
        with pytest.raises(ValueError, match="already registered"):
            register_policy("test-fixed", Fixed)
        register_policy("test-fixed", Fixed, overwrite=True)
    finally:
        from wdmoe_link import policies
        policies.POLICIES.unregister("test-fixed")
    with pytest.raises(ValueError, match="policy name must be"):
        register_policy("Bad:Name", Fixed)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("nope", ["unknown policy", "'nope'", "joint", "topk", "wlr"]),
        ("", ["non-empty"]),
        ("wlr:1.5", ["theta", "[0, 1]", "1.5"]),
        ("wlr:-0.1", ["theta", "[0, 1]", "-0.1"]),
        ("wlr:nan", ["theta", "[0, 1]"]),
        ("wlr:abc", ["theta", "'abc'"]),
        ("wlr:0.2:bogus", ["rule", "share", "ratio", "gated", "'bogus'"]),
        ("wlr:0.2:share:softmax", ["weight", "renorm", "raw", "'softmax'"]),
        ("joint:0.2:gamma=0.5", ["theta or gamma"]),
        ("joint:gamma=2", ["gamma", "[0, 1]", "2"]),
        ("joint:max_iter=0", ["max_iter", ">= 1"]),
        ("topk:0.2", ["bad arguments", "topk:0.2"]),
        ("wlr:theta=0.1:0.2", ["positional value"]),
    ],
)
def test_bad_policy_strings(text: str, words: list[str]) -> None:
    with pytest.raises(ValueError) as err:
        parse_policy(text)
    for w in words:
        assert w in str(err.value)


def test_bad_expert_map_and_decisions() -> None:
    cost = make_cost(default_topology(4))
    r = make_routing(3)
    with pytest.raises(ValueError, match=r"a device for each of the 8 experts"):
        WLR(0.2).decide(r, torch.arange(4), cost)
    with pytest.raises(ValueError, match=r"device indices in \[0, 3\].*expert_map\[4\]=4"):
        WLR(0.2).decide(r, torch.arange(8), cost)
    with pytest.raises(ValueError, match="integer device indices"):
        TopK().decide(r, torch.zeros(8), cost)
    with pytest.raises(TypeError, match="theta must be a number"):
        WLR(True)
    with pytest.raises(ValueError, match="at least one expert for every token"):
        Decision(keep=torch.tensor([[True, False], [False, False]]), weights=torch.zeros(2, 2),
                 beta=equal_split(4))
    with pytest.raises(ValueError, match="sum to <= 1"):
        Decision(keep=torch.ones(1, 2, dtype=torch.bool), weights=torch.zeros(1, 2),
                 beta=torch.full((4,), 0.3, dtype=F64))
    assert math.isclose(WLR(0.5).theta, 0.5)
