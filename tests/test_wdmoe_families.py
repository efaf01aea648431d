"""Split execution of every sparse-MoE family through transformers' experts interface.

Random-init tiny configs of ten families (DeepSeek-V3's group-limited sigmoid router and
shared experts, gpt-oss's interleaved, transposed and biased experts with its own gate, GLM-4.5,
Granite-MoE, Phi-MoE's sparsemixer, ERNIE-4.5's shared experts, ...). For each: split with
ideal links and theta = 0 gives the unsplit logits (fp32, atol 1e-4), dropping to top-1 changes
them and equals a reference that renormalizes the kept weight, and a family that bypasses the
interface is refused by name.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from wdmoe_link.policies import Decision, Policy, combine_weights
from wdmoe_link.routing import LocalDispatcher, Routing, TopNDispatcher, UnsupportedMoEError
from wdmoe_link.split import SplitMoE, find_moe_blocks
from wdmoe_link.system import WDMoESystem
from wdmoe_link.topology import homogeneous_topology

ATOL = 1e-4
VOCAB = 64
COMMON = dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, max_position_embeddings=64)
MLA = dict(num_key_value_heads=4, kv_lora_rank=16, q_lora_rank=16, qk_rope_head_dim=8,
           qk_nope_head_dim=8, v_head_dim=8, rope_scaling=None)

#: model_type -> config overrides of a tiny random model (2 MoE layers, >= 6 experts, top-2)
FAMILIES: dict[str, dict] = {
    "mixtral": dict(intermediate_size=48, num_local_experts=6, num_experts_per_tok=2),
    "qwen2_moe": dict(intermediate_size=48, moe_intermediate_size=24, num_experts=6,
                      shared_expert_intermediate_size=40, num_experts_per_tok=2),
    "qwen3_moe": dict(intermediate_size=48, moe_intermediate_size=24, num_experts=6,
                      num_experts_per_tok=2, head_dim=8),
    "olmoe": dict(intermediate_size=24, num_experts=6, num_experts_per_tok=2),
    "deepseek_v3": dict(MLA, intermediate_size=48, moe_intermediate_size=24,
                        n_routed_experts=8, num_experts_per_tok=2, n_group=2, topk_group=1,
                        first_k_dense_replace=0, n_shared_experts=1),
    "gpt_oss": dict(intermediate_size=24, num_local_experts=6, num_experts_per_tok=2,
                    head_dim=8, layer_types=["sliding_attention", "full_attention"]),
    "glm4_moe": dict(intermediate_size=48, moe_intermediate_size=24, n_routed_experts=8,
                     num_experts_per_tok=2, n_group=2, topk_group=1, first_k_dense_replace=0,
                     head_dim=8),
    "granitemoe": dict(intermediate_size=24, num_local_experts=6, num_experts_per_tok=2),
    "phimoe": dict(intermediate_size=24, num_local_experts=6, num_experts_per_tok=2),
    "ernie4_5_moe": dict(intermediate_size=48, moe_intermediate_size=24, moe_num_experts=6,
                         moe_k=2, moe_layer_start_index=0, moe_num_shared_experts=1),
}


def tiny_model(model_type: str, seed: int = 0) -> nn.Module:
    """A random-init tiny causal LM of ``model_type`` (fp32, eval mode)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.for_model(model_type, **{**COMMON, **FAMILIES[model_type]})
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(cfg)
        # random routers and biases: default inits leave some of them at zero, which would
        # make every expert tie and hide routing errors
        for name, p in model.named_parameters():
            if any(k in name for k in ("gate.weight", "router.weight", "bias",
                                       "e_score_correction")):
                nn.init.normal_(p, std=0.5)
        for name, b in model.named_buffers():
            if "e_score_correction" in name:
                b.normal_(std=0.1)
    return model.eval()


def _ids(seed: int = 0) -> torch.Tensor:
    return torch.randint(0, VOCAB, (2, 9), generator=torch.Generator().manual_seed(seed))


class Top1Reference(TopNDispatcher):
    """Top-1 with the kept weight rescaled to the row's original top-k total."""

    def moe_layer(self, layer, x, routing: Routing, experts):  # type: ignore[override]
        self.layer_calls += 1
        best = routing.top_w.argmax(-1, keepdim=True)
        idx = routing.top_idx.gather(1, best)
        w = routing.top_w.sum(-1, keepdim=True)
        out = torch.zeros_like(x)
        for i in range(x.shape[0]):
            out[i] = w[i, 0] * experts(int(idx[i, 0]), x[i:i + 1])[0]
        return out


class KeepBest(Policy):
    """Keeps each token's largest-weight slot (dropping through the system's own path)."""

    name = "keep-best"

    def decide(self, routing, expert_map, cost):  # type: ignore[override]
        best = routing.top_w.argmax(-1, keepdim=True)
        keep = torch.zeros_like(routing.top_w, dtype=torch.bool).scatter_(1, best, True)
        beta = torch.full((cost.num_devices,), 1.0 / cost.num_devices, dtype=torch.float64)
        return Decision(keep=keep, weights=combine_weights(routing.top_w, keep), beta=beta)


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def family(request: pytest.FixtureRequest) -> tuple[str, nn.Module]:
    return request.param, tiny_model(request.param)


@torch.no_grad()
def test_split_is_exact(family: tuple[str, nn.Module]) -> None:
    name, model = family
    ids = _ids()
    ref = model(input_ids=ids).logits
    disp = LocalDispatcher()
    with SplitMoE(model, disp) as split:
        local = model(input_ids=ids).logits
    assert split.num_layers == 2 and disp.layer_calls == 2, name
    torch.testing.assert_close(local, ref, atol=ATOL, rtol=0)
    with WDMoESystem(model, homogeneous_topology(num_devices=3), "ideal", "wlr:0") as system:
        got = model(input_ids=ids).logits
    assert system.report().experts_dropped == 0
    torch.testing.assert_close(got, ref, atol=ATOL, rtol=0)
    after = model(input_ids=ids).logits
    assert torch.equal(after, ref), f"{name}: the model is not restored after detach"


@torch.no_grad()
def test_dropping_to_top1(family: tuple[str, nn.Module]) -> None:
    name, model = family
    ids = _ids(1)
    ref = model(input_ids=ids).logits
    with SplitMoE(model, Top1Reference(1)):
        want = model(input_ids=ids).logits
    with WDMoESystem(model, homogeneous_topology(num_devices=3), "ideal", KeepBest()) as system:
        got = model(input_ids=ids).logits
        rep = system.report()
    assert (want - ref).abs().max() > 1e-3, f"{name}: top-1 does not change the logits"
    assert rep.experts_dropped > 0
    torch.testing.assert_close(got, want, atol=ATOL, rtol=0)


def test_router_probabilities_are_exposed(family: tuple[str, nn.Module]) -> None:
    name, model = family
    seen: list[Routing] = []

    class Keep(LocalDispatcher):
        def moe_layer(self, layer, x, routing, experts):  # type: ignore[override]
            seen.append(routing)
            return super().moe_layer(layer, x, routing, experts)

    with torch.no_grad(), SplitMoE(model, Keep()):
        model(input_ids=_ids(2))
    for r in seen:
        assert r.probs is not None and r.probs.shape == (18, r.num_experts), name
        torch.testing.assert_close(r.probs.sum(-1), torch.ones(18), atol=1e-5, rtol=0)


@pytest.mark.parametrize("model_type,overrides,cls", [
    ("llama4_text", dict(intermediate_size=24, intermediate_size_mlp=48, num_local_experts=4,
                         num_experts_per_tok=1, head_dim=8), "Llama4Text"),
    ("jetmoe", dict(num_local_experts=4, num_experts_per_tok=2, kv_channels=8,
                    intermediate_size=24), "JetMoe"),
])
def test_family_outside_the_interface_is_named(model_type: str, overrides: dict,
                                               cls: str) -> None:
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.for_model(model_type, **{**COMMON, **overrides})
    model = AutoModelForCausalLM.from_config(cfg).eval()
    with pytest.raises(UnsupportedMoEError, match=cls):
        find_moe_blocks(model)
