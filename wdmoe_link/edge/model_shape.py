"""FLOPs, bytes and KV-cache size of a transformer decoder, from its Hugging Face config.

The batched-serving cost model of "Beyond the Cloud" (and of the goodput papers that follow it)
counts, per layer and token, the QKV and output projections, the attention scores and values,
and the FFN matrices. Written out here for any decoder shape (grouped-query attention, gated or
plain FFN, routed and shared experts), so that the count holds for today's checkpoints and
reduces to the published closed form for a plain multi-head decoder:

    prefill FLOPs = L b (6 s h^2 + 4 s^2 h + 2 s h^2 + 4 s h h_f) + 2 b h V
    decode FLOPs  = L b (o - 1) (6 h^2 + 4 (s + o/2) h + 2 h^2 + 4 h h_f) + 2 b (o - 1) h V
    KV cache      = 2 L b (s + o) d_kv (kv_bits / 8) bytes          (d_kv = h without GQA)

with L layers, hidden size h, FFN size h_f, batch b, padded prompt length s, batch output
length o, vocabulary V (the LM head's ``2 h V`` per generated token is the one term the papers
leave out). A multiply-add is 2 FLOPs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

__all__ = ["LLAMA2_7B", "DecoderShape"]


def _int(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    return value


@dataclass(frozen=True)
class DecoderShape:
    """The sizes of a decoder-only transformer that set its compute, memory and traffic.

    Attributes:
        num_layers: decoder layers L.
        hidden_size: model width h.
        intermediate_size: FFN width h_f of one (routed) expert or of the dense FFN.
        num_attention_heads: query heads.
        num_key_value_heads: key/value heads (grouped-query attention; = query heads for MHA).
        head_dim: width of one head.
        vocab_size: vocabulary V.
        gated_mlp: three FFN matrices (SwiGLU: gate, up, down) or two (up, down).
        num_experts: routed experts per layer (1: a dense FFN).
        experts_per_token: routed experts each token uses (1 for a dense model).
        shared_intermediate_size: FFN width of the always-on shared experts (0: none).
        tie_word_embeddings: the LM head shares the embedding matrix.
        position_embeddings: rows of a learned absolute position table (GPT-2, OPT; 0 for
            rotary or ALiBi models).
        biases: the linear layers and norms carry biases (GPT-2 style).
        name: a label for reports.
    """

    num_layers: int
    hidden_size: int
    intermediate_size: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    vocab_size: int
    gated_mlp: bool = True
    num_experts: int = 1
    experts_per_token: int = 1
    shared_intermediate_size: int = 0
    tie_word_embeddings: bool = False
    position_embeddings: int = 0
    biases: bool = False
    name: str = ""

    def __post_init__(self) -> None:
        for f in ("num_layers", "hidden_size", "intermediate_size", "num_attention_heads",
                  "num_key_value_heads", "head_dim", "vocab_size", "num_experts",
                  "experts_per_token"):
            _int(f, getattr(self, f), 1)
        _int("shared_intermediate_size", self.shared_intermediate_size, 0)
        _int("position_embeddings", self.position_embeddings, 0)
        if self.experts_per_token > self.num_experts:
            raise ValueError(f"experts_per_token must be in [1, num_experts={self.num_experts}],"
                             f" got {self.experts_per_token}")
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(f"num_key_value_heads ({self.num_key_value_heads}) must divide "
                             f"num_attention_heads ({self.num_attention_heads})")

    # ---------------------------------------------------------------------------- construction

    @classmethod
    def from_config(cls, config: Any, name: str = "") -> DecoderShape:
        """From a transformers ``PretrainedConfig`` or its dict (dense or MoE families).

        Reads the usual field names (``num_hidden_layers``, ``hidden_size``,
        ``intermediate_size`` or ``moe_intermediate_size``, ``num_local_experts`` /
        ``num_experts`` / ``n_routed_experts``, ``num_experts_per_tok``,
        ``shared_expert_intermediate_size`` / ``n_shared_experts``, ...). GPT-2 style names
        (``n_layer``, ``n_embd``, ``n_head``) are accepted too.
        """
        cfg = config.to_dict() if hasattr(config, "to_dict") else dict(config)
        if "text_config" in cfg and isinstance(cfg["text_config"], Mapping):
            cfg = {**cfg, **cfg["text_config"]}

        def get(*keys: str, default: Any = None) -> Any:
            for k in keys:
                if cfg.get(k) is not None:
                    return cfg[k]
            return default

        layers = get("num_hidden_layers", "n_layer", "num_layers")
        hidden = get("hidden_size", "n_embd", "d_model")
        heads = get("num_attention_heads", "n_head")
        vocab = get("vocab_size")
        if None in (layers, hidden, heads, vocab):
            raise ValueError("config lacks one of num_hidden_layers, hidden_size, "
                             "num_attention_heads, vocab_size: not a decoder config")
        experts = int(get("num_local_experts", "num_experts", "n_routed_experts", default=1))
        moe = experts > 1
        ffn = get("moe_intermediate_size", "expert_intermediate_size") if moe else None
        ffn = ffn or get("intermediate_size", "n_inner", "ffn_dim") or 4 * hidden
        shared = get("shared_expert_intermediate_size", default=0) or 0
        if not shared and get("n_shared_experts", "num_shared_experts"):
            shared = int(get("n_shared_experts", "num_shared_experts")) * int(ffn)
        act = str(get("hidden_act", "activation_function", default="silu"))
        gated = act in ("silu", "swiglu", "geglu") or bool(get("mlp_gated", default=False))
        classic = cfg.get("model_type") in ("gpt2", "gpt_neox", "bloom", "opt", "falcon")
        if classic:
            gated = False
        learned_positions = cfg.get("model_type") in ("gpt2", "opt")
        return cls(num_layers=int(layers), hidden_size=int(hidden), intermediate_size=int(ffn),
                   num_attention_heads=int(heads),
                   num_key_value_heads=int(get("num_key_value_heads", default=heads)),
                   head_dim=int(get("head_dim", default=hidden // heads)),
                   vocab_size=int(vocab), gated_mlp=gated, num_experts=experts,
                   experts_per_token=int(get("num_experts_per_tok", "top_k", default=1))
                   if moe else 1,
                   shared_intermediate_size=int(shared),
                   tie_word_embeddings=bool(get("tie_word_embeddings", default=False)),
                   position_embeddings=int(get("n_positions", "max_position_embeddings",
                                               default=0)) if learned_positions else 0,
                   biases=classic,
                   name=name or str(cfg.get("model_type", "")))

    @classmethod
    def from_pretrained(cls, path: str | Path) -> DecoderShape:
        """From the ``config.json`` of a local checkpoint folder (nothing is downloaded)."""
        p = Path(path).expanduser()
        file = p / "config.json" if p.is_dir() else p
        if not file.is_file():
            raise FileNotFoundError(f"no config.json at {str(p)!r}")
        try:
            cfg = json.loads(file.read_text())
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValueError(f"{str(file)!r} is not a JSON config ({exc})") from None
        return cls.from_config(cfg, name=p.name if p.is_dir() else p.parent.name)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    # ---------------------------------------------------------------------------- sizes

    @property
    def attention_dim(self) -> int:
        """Width of the concatenated query heads."""
        return self.num_attention_heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        """Width of the keys (= of the values) of one token in one layer."""
        return self.num_key_value_heads * self.head_dim

    def _ffn_params(self, width: int) -> int:
        return (3 if self.gated_mlp else 2) * self.hidden_size * width

    @property
    def attention_params_per_layer(self) -> int:
        h = self.hidden_size
        return h * self.attention_dim * 2 + 2 * h * self.kv_dim

    @property
    def active_linear_params_per_layer(self) -> int:
        """Matrix parameters one token multiplies with in one layer (routed experts it uses,
        shared experts, router, attention projections)."""
        router = self.hidden_size * self.num_experts if self.num_experts > 1 else 0
        return (self.attention_params_per_layer
                + self.experts_per_token * self._ffn_params(self.intermediate_size)
                + self._ffn_params(self.shared_intermediate_size) + router)

    @property
    def num_parameters(self) -> int:
        """All parameters (every expert), norms included: what the weights occupy."""
        h = self.hidden_size
        router = h * self.num_experts if self.num_experts > 1 else 0
        norm = 2 * h if self.biases else h
        per_layer = (self.attention_params_per_layer
                     + self.num_experts * self._ffn_params(self.intermediate_size)
                     + self._ffn_params(self.shared_intermediate_size) + router + 2 * norm)
        if self.biases:  # q, k, v, o and the FFN's up and down
            per_layer += self.attention_dim + 2 * self.kv_dim + h \
                + self.num_experts * (self.intermediate_size + h)
        embeddings = self.vocab_size * h * (1 if self.tie_word_embeddings else 2) \
            + self.position_embeddings * h
        return self.num_layers * per_layer + embeddings + norm

    def weight_bytes(self, weight_bits: float) -> float:
        """Bytes of the weights stored at ``weight_bits`` bits per parameter."""
        return self.num_parameters * weight_bits / 8.0

    def kv_bytes_per_token(self, kv_bits: float = 16) -> float:
        """KV-cache bytes of one token over all layers (K and V)."""
        return 2.0 * self.num_layers * self.kv_dim * kv_bits / 8.0

    # ---------------------------------------------------------------------------- work

    def prefill_flops(self, batch: int, prompt_tokens: int) -> float:
        """FLOPs of the batched prefill of ``batch`` prompts padded to ``prompt_tokens``,
        including the LM head of the first generated token."""
        b, s = batch, prompt_tokens
        per_layer = 2.0 * s * self.active_linear_params_per_layer \
            + 4.0 * s * s * self.attention_dim
        return self.num_layers * b * per_layer + 2.0 * b * self.hidden_size * self.vocab_size

    def decode_flops(self, batch: int, prompt_tokens: int, output_tokens: int) -> float:
        """FLOPs of the ``output_tokens - 1`` decode steps after the prefill (the attention
        term at the mean context ``s + o/2``)."""
        b, s, o = batch, prompt_tokens, output_tokens
        steps = max(o - 1, 0)
        per_layer = 2.0 * self.active_linear_params_per_layer \
            + 4.0 * (s + o / 2.0) * self.attention_dim
        return steps * b * (self.num_layers * per_layer
                            + 2.0 * self.hidden_size * self.vocab_size)

    def decode_bytes(self, batch: int, prompt_tokens: int, output_tokens: int,
                     weight_bits: float, kv_bits: float = 16) -> float:
        """Bytes read from memory by the decode steps: every weight once per step and the
        batch's KV cache at the mean context (the roofline model's memory term)."""
        b, s, o = batch, prompt_tokens, output_tokens
        steps = max(o - 1, 0)
        return steps * (self.weight_bytes(weight_bits)
                        + b * (s + o / 2.0) * self.kv_bytes_per_token(kv_bits))

    def kv_cache_bytes(self, batch: int, prompt_tokens: int, output_tokens: int,
                       kv_bits: float = 16) -> float:
        """KV cache of the whole batch at the end of generation."""
        return batch * (prompt_tokens + output_tokens) * self.kv_bytes_per_token(kv_bits)

    def describe(self) -> str:
        moe = (f", {self.num_experts} experts (top-{self.experts_per_token})"
               if self.num_experts > 1 else "")
        return (f"{self.name or 'decoder'}: {self.num_layers} layers, h {self.hidden_size}, "
                f"h_f {self.intermediate_size}{moe}, {self.num_parameters / 1e9:.2f} B params")


#: The 7 B dense decoder the edge experiments default to (Llama-2-7B's published shape:
#: 32 layers, h 4096, SwiGLU 11008, 32 heads, vocabulary 32 000; 6.74 B parameters).
LLAMA2_7B = DecoderShape(num_layers=32, hidden_size=4096, intermediate_size=11008,
                         num_attention_heads=32, num_key_value_heads=32, head_dim=128,
                         vocab_size=32000, gated_mlp=True, name="llama-2-7b")
