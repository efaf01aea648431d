"""The edge cost model against closed forms and real models: FLOPs and KV cache of the
published formulas, parameter counts of transformers models, airtime from phy and Shannon,
the min-max bandwidth split, and weight quantization through torchao."""

from __future__ import annotations

import math

import pytest
import torch

import phy
from wdmoe_link.edge import (
    LLAMA2_7B,
    DecoderShape,
    EdgeLinks,
    EdgeNode,
    NodeProblem,
    QuantLevel,
    Request,
    measured_levels,
    min_max_split,
    quantize_weights,
)

LEVELS = (QuantLevel(16, 0.8), QuantLevel(4, 0.7))


def test_flops_and_kv_cache_reduce_to_the_published_formulas() -> None:
    """A plain multi-head decoder with a two-matrix FFN: prefill, decode and KV cache equal
    the closed forms of the batching papers (plus the LM head's 2 h V per generated token)."""
    L, h, hf, V = 4, 256, 1024, 1000
    shape = DecoderShape(num_layers=L, hidden_size=h, intermediate_size=hf,
                         num_attention_heads=4, num_key_value_heads=4, head_dim=h // 4,
                         vocab_size=V, gated_mlp=False)
    b, s, o = 3, 40, 17
    pre = L * b * (6 * s * h**2 + 4 * s**2 * h + 2 * s * h**2 + 4 * s * h * hf) + 2 * b * h * V
    dec = L * b * (o - 1) * (6 * h**2 + 4 * (s + o / 2) * h + 2 * h**2 + 4 * h * hf) \
        + 2 * b * (o - 1) * h * V
    assert shape.prefill_flops(b, s) == pytest.approx(pre, rel=1e-12)
    assert shape.decode_flops(b, s, o) == pytest.approx(dec, rel=1e-12)
    assert shape.kv_cache_bytes(b, s, o) == pytest.approx(4 * h * L * b * (s + o), rel=1e-12)
    # grouped-query attention shrinks the cache by heads / kv_heads
    gqa = DecoderShape(**{**shape.to_dict(), "num_key_value_heads": 1})
    assert gqa.kv_cache_bytes(b, s, o) == pytest.approx(shape.kv_cache_bytes(b, s, o) / 4)


@pytest.mark.parametrize("family", ["llama", "mixtral", "qwen2_moe", "gpt2"])
def test_parameter_count_matches_transformers_models(family: str) -> None:
    """``DecoderShape.from_config`` counts the parameters of random-init transformers models
    (dense, routed MoE, shared experts, GPT-2 naming) to within 0.5 % (biases, position
    embeddings and norms the shape leaves out)."""
    import transformers as tf

    cfgs = {
        "llama": tf.LlamaConfig(hidden_size=128, intermediate_size=352, num_hidden_layers=3,
                                num_attention_heads=4, num_key_value_heads=2, vocab_size=500),
        "mixtral": tf.MixtralConfig(hidden_size=128, intermediate_size=256,
                                    num_hidden_layers=2, num_attention_heads=4,
                                    num_key_value_heads=4, num_local_experts=4,
                                    num_experts_per_tok=2, vocab_size=500),
        "qwen2_moe": tf.Qwen2MoeConfig(hidden_size=128, intermediate_size=256,
                                       moe_intermediate_size=64,
                                       shared_expert_intermediate_size=128,
                                       num_hidden_layers=2, num_attention_heads=4,
                                       num_key_value_heads=4, num_experts=4,
                                       num_experts_per_tok=2, vocab_size=500),
        "gpt2": tf.GPT2Config(n_embd=128, n_layer=2, n_head=4, vocab_size=500, n_positions=64),
    }
    cfg = cfgs[family]
    model = tf.AutoModelForCausalLM.from_config(cfg)
    real = sum(p.numel() for p in model.parameters())
    shape = DecoderShape.from_config(cfg)
    assert shape.num_parameters == pytest.approx(real, rel=5e-3)
    if family == "mixtral":
        assert (shape.num_experts, shape.experts_per_token) == (4, 2)


def test_llama2_7b_shape() -> None:
    assert LLAMA2_7B.num_parameters == pytest.approx(6.738e9, rel=1e-3)
    assert LLAMA2_7B.kv_bytes_per_token() == 2 * 32 * 4096 * 2  # 0.5 MiB per token in fp16


def test_min_max_split_equalizes_transfer_times() -> None:
    c = [0.3, 0.1, 0.6]
    beta, t = min_max_split(c)
    assert sum(beta) == pytest.approx(1.0)
    assert [ci / bi for ci, bi in zip(c, beta, strict=True)] == pytest.approx([t] * 3)
    assert t == pytest.approx(1.0)
    # any other split is slower for its slowest user
    other = [1 / 3] * 3
    assert max(ci / bi for ci, bi in zip(c, other, strict=True)) > t
    with pytest.raises(ValueError, match="airtime_full_band_s"):
        min_max_split([0.1, -1.0])


def test_shannon_airtime_and_ergodic_capacity() -> None:
    """AWGN: bits / (B log2(1 + SNR)); Rayleigh: the closed-form ergodic capacity equals a
    Monte Carlo mean of log2(1 + SNR |h|^2) within 0.5 % (2e5 draws, seed 0)."""
    awgn = EdgeLinks(model="shannon", fading="none")
    assert awgn.full_band_airtime_s(1000, 10.0, 1e6) == pytest.approx(
        1000 / (1e6 * math.log2(11.0)))
    ray = EdgeLinks(model="shannon", fading="rayleigh")
    g = -torch.log(torch.rand(200_000, generator=torch.Generator().manual_seed(0),
                              dtype=torch.float64))  # |h|^2 ~ Exp(1)
    for snr_db in (0.0, 10.0, 20.0):
        mc = float(torch.log2(1 + 10 ** (snr_db / 10) * g).mean())
        assert ray.spectral_efficiency(snr_db) == pytest.approx(mc, rel=5e-3)
        assert ray.spectral_efficiency(snr_db) < awgn.spectral_efficiency(snr_db)


def test_phy_airtime_is_link_adaptation_and_refuses_dead_links() -> None:
    """The phy airtime of a prompt is phy.LinkAdaptation's (MCS, code blocks, HARQ) on the
    per-symbol Rayleigh curves; below every MCS's target the request cannot be carried."""
    links = EdgeLinks()
    la = phy.LinkAdaptation(channel="rayleigh", target_bler=0.1, max_transmissions=4)
    node = EdgeNode(levels=LEVELS)
    r = Request(256, 128, deadline_s=10.0, snr_ul_db=12.0, snr_dl_db=25.0)
    ul, dl = links.airtimes([r], node)
    assert ul[0] == pytest.approx(float(la.expected_airtime_s(256 * 32, 12.0, 20e6)))
    assert dl[0] == pytest.approx(float(la.expected_airtime_s(128 * 32, 25.0, 20e6)))
    assert dl[0] < ul[0]  # fewer bits at a higher SNR
    dead = Request(256, 128, deadline_s=10.0, snr_ul_db=-20.0, snr_dl_db=25.0)
    assert math.isinf(links.airtimes([dead], node)[0][0])
    # link-level rates sit below capacity
    shannon = EdgeLinks(model="shannon").airtimes([r], node)[0][0]
    assert ul[0] > shannon


def test_snr_follows_distance_and_power() -> None:
    node = EdgeNode(levels=LEVELS)
    near = Request(128, 128, 10.0, position_m=(50.0, 0.0))
    far = Request(128, 128, 10.0, position_m=(300.0, 0.0))
    for d in ("ul", "dl"):
        gap = EdgeLinks.snr_db(near, node, d) - EdgeLinks.snr_db(far, node, d)
        assert gap == pytest.approx(37.6 * math.log10(6.0), rel=1e-9)  # 3GPP macro slope
    # 300 m, 40 dBm over 20 MHz, NF 7 dB: 40 - 73.0 - 108.43 + 167 = 25.6 dB
    assert EdgeLinks.snr_db(far, node, "dl") == pytest.approx(
        40 - 10 * math.log10(20e6) - (128.1 + 37.6 * math.log10(0.3)) + 174 - 7)


def test_batch_cost_terms() -> None:
    """Latency = UL + compute + DL with the min-max split; memory = weights + KV cache;
    compute follows the roofline (memory-bound decode here)."""
    node = EdgeNode(levels=LEVELS)
    reqs = [Request(128, 256, 30.0, snr_ul_db=10, snr_dl_db=20),
            Request(512, 128, 30.0, snr_ul_db=15, snr_dl_db=20)]
    pb = NodeProblem(reqs, node)
    cost = pb.evaluate([0, 1], LEVELS[1])
    assert cost.uplink_s == pytest.approx(sum(pb.ul_s))
    assert cost.downlink_s == pytest.approx(sum(pb.dl_s))
    assert cost.latency_s == pytest.approx(cost.uplink_s + cost.compute_s + cost.downlink_s)
    m = node.model
    w4 = m.weight_bytes(4)
    assert cost.memory_bytes == pytest.approx(w4 + 2 * (512 + 256) * m.kv_bytes_per_token())
    dec_bytes = 255 * (w4 + 2 * (512 + 128) * m.kv_bytes_per_token())
    assert dec_bytes / node.memory_bandwidth_bytes_s > \
        m.decode_flops(2, 512, 256) / node.compute_flops
    pre = max(m.prefill_flops(2, 512) / node.compute_flops, w4 / node.memory_bandwidth_bytes_s)
    assert cost.compute_s == pytest.approx(pre + dec_bytes / node.memory_bandwidth_bytes_s)
    # 16-bit weights: 4x the weight bytes, slower decode
    assert pb.evaluate([0, 1], LEVELS[0]).compute_s > cost.compute_s


def test_quantize_weights_puts_every_matrix_on_its_grid() -> None:
    """torchao int8 per output channel and int4 per group of 32: linear weights become
    torchao tensors, expert banks hold dequantized values on the symmetric grid, and the
    error is at most half a step."""
    import transformers as tf

    torch.manual_seed(0)
    cfg = tf.MixtralConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                           num_attention_heads=4, num_key_value_heads=4, num_local_experts=4,
                           vocab_size=100)
    for bits in (8, 4):
        model = tf.MixtralForCausalLM(cfg).eval()
        bank = model.model.layers[0].mlp.experts
        before = bank.down_proj.detach().clone()
        x = torch.randint(0, 100, (1, 12))
        with torch.no_grad():
            ref = model(x).logits
        quantize_weights(model, bits)
        after = bank.down_proj.detach()
        group = 32 if bits == 4 else after.shape[-1]
        blocks = after.reshape(*after.shape[:-1], -1, group)
        step = before.reshape(blocks.shape).abs().amax(-1, keepdim=True) / (2 ** (bits - 1) - 0.5)
        q = blocks / step
        assert torch.allclose(q, q.round(), atol=1e-3)  # on the grid
        assert ((blocks - before.reshape(blocks.shape)).abs() <= step / 2 + 1e-6).all()
        assert "torchao" in type(model.model.layers[0].self_attn.q_proj.weight).__module__
        with torch.no_grad():
            out = model(x).logits
        rel = float((out - ref).norm() / ref.norm())
        assert rel < (0.02 if bits == 8 else 0.2)
    with pytest.raises(ValueError, match="weight_bits"):
        quantize_weights(model, 3)


def test_shipped_level_table() -> None:
    """The cached table: both shipped models at 16, 8 and 4 bits; int4 costs the text model
    next-byte accuracy and bits per byte."""
    levels = measured_levels("text")
    assert [lv.weight_bits for lv in levels] == [16, 8, 4]
    assert levels[2].accuracy < levels[0].accuracy
    from wdmoe_link.edge.quantization import level_table

    bpb = {r["weight_bits"]: r["value"] for r in level_table()
           if r["model"] == "text" and r["metric"] == "bits_per_byte"}
    assert bpb[4] > bpb[16]
    assert measured_levels("tiny")[0].accuracy > 0.95
    with pytest.raises(ValueError, match="no rows"):
        measured_levels("nonexistent")
