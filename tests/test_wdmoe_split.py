"""Split execution of MoE causal LMs: equality with the unsplit model, routing, expert maths,
patch / restore and load errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from wdmoe_link.routing import (
    ExpertBank,
    LocalDispatcher,
    Routing,
    TopNDispatcher,
    UnsupportedMoEError,
    combine,
)
from wdmoe_link.split import (
    EXPERTS_IMPLEMENTATION,
    NotMoECheckpointError,
    SplitMoE,
    find_moe_blocks,
    load_moe,
)
from wdmoe_link.tiny import TINY_DIR, build_tiny_model

ATOL = 1e-5
Tensor = torch.Tensor


class RecordingDispatcher(LocalDispatcher):
    """Local mixture that keeps every layer call's routing."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[int, Tensor, Routing]] = []

    def moe_layer(self, layer, x, routing, experts):  # type: ignore[override]
        self.calls.append((layer, x.detach().clone(), routing))
        return super().moe_layer(layer, x, routing, experts)


def _ids(vocab: int, shape: tuple[int, int], seed: int = 0) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab, shape, generator=g)


@pytest.fixture(scope="module")
def random_mixtral() -> nn.Module:
    return build_tiny_model(seed=3, num_hidden_layers=2)


@pytest.fixture(scope="module")
def shipped() -> nn.Module:
    return load_moe("tiny")


@torch.no_grad()
def _assert_split_equal(model: nn.Module, ids: Tensor) -> SplitMoE:
    ref = model(input_ids=ids).logits
    disp = LocalDispatcher()
    with SplitMoE(model, disp) as split:
        got = model(input_ids=ids).logits
    assert disp.layer_calls == split.num_layers
    torch.testing.assert_close(got, ref, atol=ATOL, rtol=0)
    return split


def test_split_equals_unsplit_random_mixtral(random_mixtral: nn.Module) -> None:
    split = _assert_split_equal(random_mixtral, _ids(259, (3, 11)))
    assert (split.num_layers, split.num_experts, split.top_k, split.hidden_size) == (2, 8, 2, 64)
    assert split.block_names == ["model.layers.0.mlp", "model.layers.1.mlp"]
    assert split.decoder_layers == [0, 1]


def test_split_equals_unsplit_shipped_model(shipped: nn.Module) -> None:
    assert type(shipped).__name__ == "MixtralForCausalLM"
    assert not shipped.training and shipped.dtype == torch.float32
    ids = torch.tensor([[256, *b"123+456=579", 257], [256, *b"905+870=1775"]])
    _assert_split_equal(shipped, ids)


def test_split_equals_unsplit_qwen2_moe_with_shared_expert() -> None:
    from transformers import Qwen2MoeConfig, Qwen2MoeForCausalLM

    torch.manual_seed(0)
    cfg = Qwen2MoeConfig(
        vocab_size=50, hidden_size=32, intermediate_size=48, moe_intermediate_size=24,
        shared_expert_intermediate_size=40, num_hidden_layers=4, num_attention_heads=4,
        num_key_value_heads=2, num_experts=6, num_experts_per_tok=2, decoder_sparse_step=2,
        norm_topk_prob=False, max_position_embeddings=32,
    )
    model = Qwen2MoeForCausalLM(cfg).eval()
    # make the shared expert matter: the default init makes it tiny
    for block in (layer.mlp for layer in model.model.layers):
        if hasattr(block, "shared_expert_gate"):
            nn.init.normal_(block.shared_expert_gate.weight, std=1.0)
    rec = RecordingDispatcher()
    ids = _ids(50, (2, 9))
    with torch.no_grad():
        ref = model(input_ids=ids).logits
        with SplitMoE(model, rec) as split:
            got = model(input_ids=ids).logits
    torch.testing.assert_close(got, ref, atol=ATOL, rtol=0)
    assert split.num_layers == 2 and split.decoder_layers == [1, 3]
    # norm_topk_prob=False: raw probabilities, not renormalised
    _, _, routing = rec.calls[0]
    torch.testing.assert_close(routing.top_w, routing.probs.gather(1, routing.top_idx))
    assert (routing.top_w.sum(-1) < 1 - 1e-3).all()


def test_split_equals_unsplit_olmoe() -> None:
    from transformers import OlmoeConfig, OlmoeForCausalLM

    torch.manual_seed(1)
    cfg = OlmoeConfig(
        vocab_size=50, hidden_size=32, intermediate_size=24, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=4, num_experts=8, num_experts_per_tok=2,
        max_position_embeddings=32,
    )
    model = OlmoeForCausalLM(cfg).eval()
    split = _assert_split_equal(model, _ids(50, (2, 7)))
    assert split.num_experts == 8 and split.num_layers == 2


def test_detach_restores_original(random_mixtral: nn.Module) -> None:
    ids = _ids(259, (1, 6), seed=5)
    blocks = [b for _, b in find_moe_blocks(random_mixtral)]
    with torch.no_grad():
        ref = random_mixtral(input_ids=ids).logits
        disp = LocalDispatcher()
        before = random_mixtral.get_experts_implementation()
        split = SplitMoE(random_mixtral, disp)  # attached on construction
        assert split.attached
        assert random_mixtral.config._experts_implementation == EXPERTS_IMPLEMENTATION
        assert all(b.experts.config._experts_implementation == "wdmoe" for b in blocks)
        with pytest.raises(RuntimeError, match="already split"):
            SplitMoE(random_mixtral, LocalDispatcher())
        split.detach()
        assert not split.attached
        assert random_mixtral.get_experts_implementation() == before
        after = random_mixtral(input_ids=ids).logits
    assert disp.layer_calls == 0
    assert torch.equal(after, ref)
    split.detach()  # idempotent
    with split:  # re-attach and restore again
        assert random_mixtral.config._experts_implementation == "wdmoe"
    assert random_mixtral.get_experts_implementation() == before
    # the implementation without an owner refuses to run rather than mixing silently
    random_mixtral.set_experts_implementation("wdmoe")
    try:
        with pytest.raises(RuntimeError, match="no SplitMoE owns it"):
            random_mixtral(input_ids=ids)
    finally:
        random_mixtral.set_experts_implementation(before)


def test_mixtral_routing_weights(random_mixtral: nn.Module) -> None:
    rec = RecordingDispatcher()
    with torch.no_grad(), SplitMoE(random_mixtral, rec):
        random_mixtral(input_ids=_ids(259, (2, 10), seed=2))
    assert [layer for layer, _, _ in rec.calls] == [0, 1]
    for _, x, r in rec.calls:
        assert x.shape == (20, 64)
        assert r.probs.dtype == torch.float32 and r.top_w.dtype == torch.float32
        assert r.top_idx.dtype == torch.int64 and r.top_idx.shape == (20, 2)
        torch.testing.assert_close(r.probs.sum(-1), torch.ones(20), atol=1e-6, rtol=0)
        torch.testing.assert_close(r.top_w.sum(-1), torch.ones(20), atol=1e-6, rtol=0)
        top_p, top_i = r.probs.topk(2, dim=-1)
        assert torch.equal(r.top_idx, top_i)
        torch.testing.assert_close(r.top_w, top_p / top_p.sum(-1, keepdim=True))
        assert int(r.loads().sum()) == 40


def test_expert_bank_matches_hf_experts(random_mixtral: nn.Module) -> None:
    experts = random_mixtral.model.layers[0].mlp.experts
    bank = ExpertBank(experts)
    f = experts.down_proj.shape[-1]
    assert (bank.num_experts, bank.hidden_size, bank.intermediate_size) == (8, 64, f)
    assert bank.flops_per_token == 2 * 3 * 64 * f
    assert bank.weight_bytes(3) == 3 * 64 * f * 4
    x = torch.randn(5, 64)
    with torch.no_grad():
        for e in range(8):
            # HF's own expert computation with all weight on expert e
            ref = experts(x, torch.full((5, 1), e), torch.ones(5, 1))
            got = bank(e, x)
            torch.testing.assert_close(got, ref, atol=1e-6, rtol=0)
            gu = experts.gate_up_proj[e]
            manual = (F.silu(x @ gu[:f].T) * (x @ gu[f:].T)) @ experts.down_proj[e].T
            torch.testing.assert_close(got, manual, atol=1e-6, rtol=1e-5)
        assert bank(0, x[:0]).shape == (0, 64)
    with pytest.raises(IndexError, match=r"\[0, 7\]"):
        bank(8, x)
    # all pairs in one kernel call equal the per-expert calls
    e_of = torch.tensor([3, 0, 3, 7, 1])
    with torch.no_grad():
        ref = torch.stack([bank(int(e), x[i:i + 1])[0] for i, e in enumerate(e_of)])
        torch.testing.assert_close(bank.pairs(x, e_of), ref, atol=1e-6, rtol=1e-5)
    with pytest.raises(ValueError, match="x must be"):
        bank(0, x[:, :10])


def test_combine_weights_and_top1(random_mixtral: nn.Module) -> None:
    bank = ExpertBank(random_mixtral.model.layers[1].mlp.experts)
    x = torch.randn(4, 64)
    idx = torch.tensor([[0, 5], [5, 2], [7, 7], [1, 3]])
    w = torch.tensor([[0.7, 0.3], [1.0, 0.0], [0.5, 0.5], [0.25, 0.75]])
    with torch.no_grad():
        out = combine(x, idx, w, bank)
        # the skip slot E drops a slot exactly as a zero weight does
        skip = torch.where(w == 0, torch.full_like(idx, bank.num_experts), idx)
        torch.testing.assert_close(combine(x, skip, w, bank), out, atol=0, rtol=0)
        for i in range(4):
            ref = sum(w[i, j] * bank(int(idx[i, j]), x[i:i + 1])[0] for j in range(2))
            torch.testing.assert_close(out[i], ref, atol=1e-6, rtol=1e-5)
        probs = torch.rand(4, 8).softmax(-1)
        r = Routing(probs, idx, w)
        top1 = TopNDispatcher(1).moe_layer(0, x, r, bank)
        best = torch.tensor([0, 5, 7, 3])
        ref1 = torch.stack([bank(int(best[i]), x[i:i + 1])[0] for i in range(4)])
        torch.testing.assert_close(top1, ref1, atol=1e-6, rtol=1e-5)


def test_load_moe_errors(tmp_path: Path) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM, ViTConfig

    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_moe(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match=r"config\.json"):
        load_moe(tmp_path)
    llama = tmp_path / "llama"
    LlamaForCausalLM(LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32,
                                 num_hidden_layers=1, num_attention_heads=2,
                                 num_key_value_heads=2)).save_pretrained(llama)
    with pytest.raises(NotMoECheckpointError, match="not an MoE checkpoint"):
        load_moe(llama)
    vit = tmp_path / "vit"
    vit.mkdir()
    (vit / "config.json").write_text(json.dumps(ViTConfig().to_dict()))
    with pytest.raises(ValueError, match="not a causal language model"):
        load_moe(vit)


def test_unsupported_block_layout_names_class() -> None:
    class FancyMoeBlock(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.gate = nn.Linear(4, 2)
            self.experts = nn.ModuleList([nn.Linear(4, 4), nn.Linear(4, 4)])
            self.post_norm = nn.LayerNorm(4)

    model = nn.Sequential(FancyMoeBlock())
    with pytest.raises(UnsupportedMoEError, match="FancyMoeBlock"):
        find_moe_blocks(model)
    with pytest.raises(NotMoECheckpointError):
        find_moe_blocks(nn.Sequential(nn.Linear(2, 2)))
    with pytest.raises(TypeError, match="moe_layer"):
        SplitMoE(build_tiny_model(num_hidden_layers=1), object())  # type: ignore[arg-type]


def test_shipped_model_is_small() -> None:
    names = ("config.json", "model.safetensors", "training.json")
    assert sum((TINY_DIR / n).stat().st_size for n in names) < 4 * 2**20


def test_load_moe_refuses_garbage_checkpoints(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"config\.json.*not a readable transformers config"):
        load_moe(bad)
    f = tmp_path / "model.safetensors"
    f.write_bytes(b"\0" * 10)
    with pytest.raises(NotADirectoryError, match="is not a directory"):
        load_moe(f)
    trunc = tmp_path / "trunc"
    build_tiny_model(num_hidden_layers=1).save_pretrained(trunc)
    weights = trunc / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ValueError, match="cannot load the weights of checkpoint"):
        load_moe(trunc)
