"""The split MoE system over links: equality with the unsplit model, weights, drops, losses,
latency accounting, expert maps, the link-aware policy and evaluation reports."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch import nn

from wdmoe_link.latency import DeviceCost
from wdmoe_link.link_aware import LinkAware
from wdmoe_link.policies import Decision, Policy, TopK, parse_policy
from wdmoe_link.routing import ExpertBank, Routing
from wdmoe_link.system import Report, WDMoESystem
from wdmoe_link.tasks import ArithmeticTask
from wdmoe_link.topology import default_topology, homogeneous_topology
from wdmoe_link.transports import Delivery, DigitalTransport, IdealTransport, Transport

ATOL = 1e-5


@pytest.fixture(scope="module")
def model() -> nn.Module:
    from transformers import MixtralConfig, MixtralForCausalLM

    cfg = MixtralConfig(vocab_size=259, hidden_size=32, intermediate_size=64,
                        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                        num_local_experts=8, num_experts_per_tok=2, max_position_embeddings=64,
                        bos_token_id=256, eos_token_id=257, pad_token_id=258)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(7)
        m = MixtralForCausalLM(cfg)
    return m.eval()


def _ids(shape: tuple[int, int] = (2, 7), seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, shape, generator=torch.Generator().manual_seed(seed))


def _patched(model: nn.Module) -> bool:
    return model.config._experts_implementation == "wdmoe"


class Recording(Policy):
    """Wraps a policy and keeps every (decision, cost)."""

    def __init__(self, inner: Policy) -> None:
        self.inner = inner
        self.name = inner.name
        self.calls: list[tuple[Decision, DeviceCost]] = []

    def decide(self, routing: Routing, expert_map: torch.Tensor, cost: DeviceCost) -> Decision:
        d = self.inner.decide(routing, expert_map, cost)
        self.calls.append((d, cost))
        return d


class LoseOddRows(Transport):
    """Identity that loses every odd row of each payload (deterministic losses)."""

    name = "lose-odd"

    def expected_airtime_s(self, rows: int, row_size: int, snr_db: float,
                           bandwidth_hz: float) -> float:
        return IdealTransport().expected_airtime_s(rows, row_size, snr_db, bandwidth_hz)

    def _send(self, x: torch.Tensor, snr_db: float, bandwidth_hz: float) -> Delivery:
        ok = torch.arange(x.shape[0]) % 2 == 0
        x_hat = torch.where(ok[:, None], x, torch.zeros_like(x))
        return Delivery(x_hat=x_hat, ok=ok, airtime_s=1e-6, bits=16 * x.numel(),
                        channel_uses=x.numel(), transmissions=1)


# --------------------------------------------------------------------------------------------
# exactness


@pytest.mark.parametrize("policy", ["topk", "wlr:0", "joint:0"])
def test_theta_zero_ideal_equals_unsplit_model(model: nn.Module, policy: str) -> None:
    ids = _ids()
    with torch.no_grad():
        ref = model(input_ids=ids).logits
        with WDMoESystem(model, default_topology(8, seed=1), "ideal", policy) as system:
            out = model(input_ids=ids).logits
            assert system.report().experts_dropped == 0
    assert not _patched(model)
    torch.testing.assert_close(out, ref, atol=ATOL, rtol=0)


def test_any_expert_map_gives_the_same_logits(model: nn.Module) -> None:
    ids = _ids((1, 6))
    with torch.no_grad():
        ref = model(input_ids=ids).logits
        with WDMoESystem(model, default_topology(4, seed=2), "ideal", "topk",
                         expert_map=[0, 0, 1, 1, 1, 3, 3, 3]) as system:
            out = model(input_ids=ids).logits
            rec = system.report().to_dict()  # closes the open (implicit) step
            used = {k for s in system.steps for r in s.layers for k in r.transports}
    torch.testing.assert_close(out, ref, atol=ATOL, rtol=0)
    assert used <= {0, 1, 3} and rec["experts_lost"] == 0


# --------------------------------------------------------------------------------------------
# weights, drops and losses


def test_policy_drops_are_counted_and_weights_sum_to_one(model: nn.Module) -> None:
    pol = Recording(parse_policy("wlr:0.6"))  # share rule, theta > 0.5: exactly one expert
    with torch.no_grad(), WDMoESystem(model, default_topology(8, seed=0), "ideal", pol) as s:
        model(input_ids=_ids((1, 9)))
        s.end_step()
        rep = s.report()
        layers = s.steps[0].layers
    assert len(pol.calls) == 2 == len(layers)
    for (d, _), r in zip(pol.calls, layers, strict=True):
        assert bool((d.keep.sum(-1) == 1).all())
        torch.testing.assert_close(d.weights.sum(-1), torch.ones(9), atol=1e-6, rtol=0)
        assert r.dropped == 9 and r.rows == 9 and r.lost == 0
    assert rep.experts_dropped == 18 and rep.experts_dropped_fraction == pytest.approx(0.5)
    assert rep.experts_per_token_mean == pytest.approx(1.0)


def test_link_losses_drop_experts_and_renormalize_survivors(model: nn.Module) -> None:
    block = model.model.layers[0].mlp
    bank = ExpertBank(block.experts)
    x = torch.randn(12, 32, generator=torch.Generator().manual_seed(3))
    logits, top_w, top_idx = block.gate(x)
    routing = Routing(probs=torch.softmax(logits, -1), top_idx=top_idx, top_w=top_w)
    with torch.no_grad(), WDMoESystem(model, default_topology(8, seed=0), LoseOddRows(),
                                      "topk") as s:
        out = s.moe_layer(0, x, routing, bank)
        w = s.last_weights
        rec = s._step.layers[-1]
    delivered = w > 0
    # every token that kept an expert after the links has weights summing to 1
    has = delivered.any(-1)
    torch.testing.assert_close(w.sum(-1)[has], torch.ones(int(has.sum())), atol=1e-6, rtol=0)
    assert bool((w[~has] == 0).all())
    # survivors keep their ratios
    masked = torch.where(delivered, top_w, torch.zeros_like(top_w))
    ref_w = masked / masked.sum(-1, keepdim=True).clamp_min(1e-30)
    torch.testing.assert_close(w, ref_w, atol=1e-6, rtol=0)
    # output = the surviving experts with those weights; lost ones counted
    ref = torch.zeros_like(x)
    for i in range(12):
        for j in range(2):
            if delivered[i, j]:
                ref[i] += w[i, j] * bank(int(top_idx[i, j]), x[i:i + 1])[0]
    torch.testing.assert_close(out, ref, atol=ATOL, rtol=0)
    assert rec.lost == int((~delivered).sum()) > 0
    assert rec.tokens_without_expert == int((~has).sum())


def test_digital_low_snr_never_puts_nan_in_the_residual_stream(model: nn.Module) -> None:
    far = homogeneous_topology(8, distance_m=3000.0, tx_power_dbm=-20.0, bs_power_dbm=-10.0,
                               fading="none")
    seen: list[torch.Tensor] = []
    hooks = [layer.register_forward_hook(lambda m, i, o: seen.append(o[0] if isinstance(o, tuple)
                                                                     else o))
             for layer in model.model.layers]
    try:
        with torch.no_grad(), WDMoESystem(model, far, DigitalTransport("bf16",
                                                                       max_transmissions=1),
                                          "topk") as s:
            logits = model(input_ids=_ids((1, 4))).logits
            s.end_step()
            rep = s.report()
            w = s.last_weights
    finally:
        for h in hooks:
            h.remove()
    assert bool(torch.isfinite(logits).all())
    assert seen and all(bool(torch.isfinite(h).all()) for h in seen)
    assert rep.experts_lost == rep.rows_total == 16 and rep.experts_lost_fraction == 1.0
    assert rep.tokens_without_expert == 8 and bool((w == 0).all())
    assert rep.bits_ul_total == 0  # nothing arrived, nothing computed, nothing sent back


# --------------------------------------------------------------------------------------------
# latency and accounting


def test_layer_latency_is_bs_time_plus_slowest_used_device(model: nn.Module) -> None:
    topo = default_topology(8, seed=0, fading="none", bs_time_s=1e-4)
    pol = Recording(TopK())
    with torch.no_grad(), WDMoESystem(model, topo, "ideal", pol) as s:
        model(input_ids=_ids((1, 5)))
        s.end_step()
        layers = s.steps[0].layers
    bank = ExpertBank(model.model.layers[0].mlp.experts)
    gain = topo.path_gain()
    for (d, _), r in zip(pol.calls, layers, strict=True):
        beta = d.beta
        n = d.info["loads"]
        rates = {dr: beta * topo.bandwidth_hz
                 * torch.log2(1 + 10 ** (topo.snr_db(dr, beta, gain) / 10)) for dr in ("dl", "ul")}
        bits = n * 32 * 16
        t = bits / rates["dl"] + n * bank.flops_per_token / topo.compute_flops + bits / rates["ul"]
        t = torch.where(n > 0, t, torch.zeros_like(t))
        torch.testing.assert_close(torch.tensor(r.device_latency_s, dtype=torch.float64), t,
                                   rtol=1e-9, atol=0)
        assert r.latency_s == pytest.approx(1e-4 + float(t.max()), rel=1e-12)
        assert r.latency_s == pytest.approx(r.estimated_latency_s, rel=1e-9)
        assert r.bits_dl == r.bits_ul == int(n.sum()) * 32 * 16


def test_multicast_downlink_sends_each_token_once(model: nn.Module) -> None:
    ids = _ids((1, 6))
    out, recs = {}, {}
    for mc in (False, True):
        with torch.no_grad(), WDMoESystem(model, default_topology(8, seed=0), "ideal", "topk",
                                          downlink_multicast=mc) as s:
            out[mc] = model(input_ids=ids).logits
            s.end_step()
            recs[mc] = s.steps[0].layers
    torch.testing.assert_close(out[True], out[False], atol=ATOL, rtol=0)
    for uni, multi in zip(recs[False], recs[True], strict=True):
        assert multi.bits_dl == 6 * 32 * 16 < uni.bits_dl == 12 * 32 * 16
        assert multi.bits_ul == uni.bits_ul


def test_expert_map_errors_are_clear_and_leave_the_model_unsplit(model: nn.Module) -> None:
    topo = default_topology(4, seed=0)
    for bad, msg in (([0, 1, 2], r"each of the 8 experts"),
                     ([0, 1, 2, 3, 0, 1, 2, 4], r"\[0, 3\].*expert_map\[7\]=4"),
                     ([-1, 1, 2, 3, 0, 1, 2, 3], r"expert_map\[0\]=-1"),
                     ([0.0] * 8, "integer device indices")):
        with pytest.raises(ValueError, match=msg):
            WDMoESystem(model, topo, "ideal", "topk", expert_map=bad)
        assert not _patched(model)
    with pytest.raises(ValueError, match="one entry per device"):
        WDMoESystem(model, topo, ["ideal"] * 3, "topk")
    with pytest.raises(ValueError, match="unknown transport"):
        WDMoESystem(model, topo, "smoke-signals", "topk")
    with pytest.raises(ValueError, match="unknown policy"):
        WDMoESystem(model, topo, "ideal", "fastest")
    assert not _patched(model)


# --------------------------------------------------------------------------------------------
# link-aware policy


def test_link_aware_choice_is_honoured_and_guarded(model: nn.Module) -> None:
    pol = parse_policy("link-aware:0")
    assert isinstance(pol, LinkAware) and parse_policy(pol.name).name == pol.name
    near = homogeneous_topology(8, distance_m=50.0, fading="none")
    far = homogeneous_topology(8, distance_m=300.0, fading="none")  # UL ~17.6 dB < 20 dB guard
    names = {}
    for label, topo in (("near", near), ("far", far)):
        rec = Recording(pol)
        with torch.no_grad(), WDMoESystem(model, topo, "ideal", rec) as s:
            model(input_ids=_ids((1, 4)))
            s.end_step()
            layer = s.steps[0].layers[0]
        chosen = rec.calls[0][0].info["transport_names"]
        assert layer.transports == {k: chosen[k] for k in layer.transports}
        names[label] = set(layer.transports.values())
    assert names["near"] == {"analog/analog"}   # analog is the fastest and allowed
    assert names["far"] == {"analog/digital:bf16"}  # the uplink SNR fails the analog guard


# --------------------------------------------------------------------------------------------
# evaluation


def test_evaluate_report_is_flat_consistent_and_reproducible(model: nn.Module) -> None:
    task = ArithmeticTask(size=3, seed=1)
    with WDMoESystem(model, default_topology(8, seed=0), "analog", "wlr:0.2") as s:
        r1 = s.evaluate(task, limit=2, max_new_tokens=3)
        decode = [st.latency_s for st in s.steps if st.phase == "decode"]
        r2 = s.evaluate(task, limit=2, max_new_tokens=3)
    assert isinstance(r1, Report) and r1.num_examples == 2 and r1.num_prefill_steps == 2
    assert r1.num_decode_steps == len(decode) > 0
    assert r1.latency_per_token_mean_s == pytest.approx(sum(decode) / len(decode))
    assert max(decode) >= r1.latency_per_token_p95_s >= r1.latency_per_token_mean_s * 0.5
    flat = r1.to_dict()
    assert all(isinstance(v, (int, float, str)) for v in flat.values())
    assert flat["transports"] == "analog" and flat["policy"].startswith("wlr:0.2")
    assert flat["bits_dl_total"] == 0 and flat["channel_uses_dl_total"] > 0
    a, b = dict(flat), r2.to_dict()
    a.pop("wall_time_s")
    b.pop("wall_time_s")
    assert a == b  # re-seeded: the same fading and link noise
    assert not math.isnan(r1.accuracy)


def test_report_fields_reduce_from_their_metadata(model: nn.Module) -> None:
    given = {"policy", "transports", "accuracy", "num_examples", "wall_time_s", "extra"}
    for f in dataclasses.fields(Report):
        assert ("reduce" in f.metadata) != (f.name in given), f.name
    task = ArithmeticTask(size=3, seed=2)
    pairs = [("digital:int8", "analog"), "ideal"] * 4
    with WDMoESystem(model, default_topology(8, seed=1), pairs, "wlr:0.3") as s:
        rep = s.evaluate(task, limit=2, max_new_tokens=3)
        steps = list(s.steps)
    layers = [r for st in steps for r in st.layers]
    decode = [st for st in steps if st.phase == "decode"]
    assert rep.rows_total == sum(r.rows for r in layers) > 0
    assert rep.experts_lost == sum(r.lost_dl + r.lost_ul for r in layers)
    assert rep.bits_ul_per_token == pytest.approx(sum(st.bits_ul for st in decode) / len(decode))
    slots = sum(r.rows + r.dropped for r in layers)
    assert rep.experts_dropped_fraction == pytest.approx(rep.experts_dropped / slots)
    used = sum(len(r.transports) for r in layers)
    assert sum(int(kv.split("=")[1]) for kv in rep.transport_usage.split(",")) == used
    again = Report.from_steps(steps, policy=rep.policy, transports=rep.transports,
                              accuracy=rep.accuracy, num_examples=rep.num_examples,
                              wall_time_s=rep.wall_time_s)
    assert again.to_dict() == rep.to_dict()
    with pytest.raises(TypeError, match="rows_total"):
        Report.from_steps(steps, policy="p", transports="t", accuracy=0.0, num_examples=0,
                          rows_total=1)


def test_digital_at_high_snr_matches_the_unsplit_model_up_to_bf16(model: nn.Module) -> None:
    ids = _ids((1, 5))
    near = homogeneous_topology(8, distance_m=100.0, fading="none")  # UL ~35 dB, DL ~52 dB
    with torch.no_grad():
        ref = model(input_ids=ids).logits
        with WDMoESystem(model, near, "digital:bf16", "topk") as s:
            out = model(input_ids=ids).logits
            rep = s.report()
    assert rep.experts_lost == 0 and rep.nan_guard == 0
    assert rep.bits_dl_total >= rep.rows_total * 32 * 16  # whole 1024-bit code blocks
    torch.testing.assert_close(out, ref, atol=5e-2, rtol=0)  # bf16 hidden states on the air


def test_shipped_model_digital_accuracy_equals_ideal() -> None:
    from wdmoe_link.tiny import TINY_DIR, tiny_task

    if not (TINY_DIR / "config.json").is_file():
        pytest.skip("the shipped tiny model is not there yet")
    from wdmoe_link.split import load_moe

    tiny = load_moe("tiny")
    topo = homogeneous_topology(8, distance_m=150.0, fading="none")  # UL ~29 dB, DL ~46 dB
    task = tiny_task("test", size=2)
    acc = {}
    for spec in ("ideal", "digital:bf16"):
        with WDMoESystem(tiny, topo, spec, "topk") as s:
            rep = s.evaluate(task)
        assert rep.experts_lost == 0
        acc[spec] = rep.accuracy
    assert acc["digital:bf16"] == acc["ideal"]


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_abstracted_digital_agrees_with_decoded_on_the_shipped_model() -> None:
    """``digital:bf16`` (CRC outcomes from the BLER table) against ``digital:bf16:decoded``
    (QAM + 5G LDPC decoding) at a link where about 11 % of the expert payload rows are lost:
    the lost fraction agrees within 4 binomial sigmas over the rows, and the accuracy over
    20 problems within 0.15 (a few problems)."""
    from wdmoe_link.split import load_moe
    from wdmoe_link.tiny import tiny_task

    tiny = load_moe("tiny")
    topo = homogeneous_topology(8, distance_m=300.0, fading="none")   # UL ~17.6 dB
    task = tiny_task("test", size=20)
    reps = {}
    for decoded in (False, True):
        t = DigitalTransport("bf16", max_transmissions=1, target_bler=0.3, decoded=decoded)
        assert t.name == "digital:bf16" + (":decoded" if decoded else "") + \
            ":target_bler=0.3:max_transmissions=1"
        with WDMoESystem(tiny, topo, t, "topk", seed=1) as s:
            reps[decoded] = s.evaluate(task)
    a, b = reps[False], reps[True]
    p = (a.experts_lost_fraction + b.experts_lost_fraction) / 2
    assert 0.03 < p < 0.3
    sigma = math.sqrt(p * (1 - p) * (1 / a.rows_total + 1 / b.rows_total))
    assert abs(a.experts_lost_fraction - b.experts_lost_fraction) <= 4 * sigma
    assert abs(a.accuracy - b.accuracy) <= 0.15


def test_bad_snr_and_limit_are_refused_at_once(model: nn.Module) -> None:
    from experiments.recipes.wdmoe import run_wdmoe
    from wdmoe_link.topology import default_topology

    for snr in (-200.0, 1e6, math.nan):
        with pytest.raises(ValueError, match="snr_db must lie in"):
            run_wdmoe(snr_db=[snr], out="/nonexistent")
    with pytest.raises(ValueError, match="link_snr_db must lie in"):
        default_topology(4, link_snr_db=-200.0)
    with WDMoESystem(model, homogeneous_topology(4), "ideal", "topk") as s, \
            pytest.raises(ValueError, match="limit must be None or an int >= 1"):
        s.evaluate(ArithmeticTask("test", size=3), limit=0)
