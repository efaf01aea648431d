"""Benchmark: wall time per generated token and memory of the split MoE at realistic width.

    semcom bench-wdmoe [--hidden 1024 --layers 8 --experts 64 --top_k 8]
                       [--new_tokens 16 --reps 3 --out results]

(``python -m experiments.bench_wdmoe`` is the same command.)

A random-init ``qwen3_moe`` causal LM (bf16 by default; hidden 1024, 8 layers, 64 experts,
top-8, expert FFN 512) on the default heterogeneous 8-device cell. Three systems run side by
side in one process, alternating ``reps`` times so that machine load hits them alike:

* ``unsplit``: the model's own forward (``grouped_mm`` experts);
* ``split/ideal``: :class:`wdmoe_link.WDMoESystem` with ideal links (Shannon latency model);
* ``split/digital:bf16``: every expert input and output as a bf16 payload over 5G NR link
  adaptation, CRC outcomes from the BLER curves (:class:`phy.AbstractDigitalLink`).

The figure is the decode time per generated token (greedy, one request, a KV cache; the
prompt's prefill is not timed), its ratio to ``unsplit`` (goal <= 1.2x, bar <= 1.5x), the
process's peak resident memory after the unsplit runs and after the split runs, and the bits
on air per token. The time spent inside the model's experts modules (PyTorch forward hooks
around every module of the experts interface: the model's own experts call when unsplit, the
whole split layer call otherwise) splits the difference: what the split adds per MoE layer
call (plan, links, checks, combine, ledger) against what stays the model's.

The check of the payload model: one (token, expert, direction) of a model of hidden width
``D`` in bf16 is ``16 D`` bits, 65,536 for Mixtral-8x7B (``D = 4096``). Writes
``bench_wdmoe.csv`` and ``summary.md``.
"""

from __future__ import annotations

import dataclasses
import resource
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from experiments.cli import entry_point
from experiments.recipes.config import config_dict, resolve_config
from experiments.reporting.results import ResultsDir
from phy.checks import check_choice, check_positive_int

__all__ = ["BenchWDMoEConfig", "BenchWDMoEResult", "main", "run", "run_bench_wdmoe"]

SYSTEMS = ("unsplit", "split/ideal", "split/digital:bf16")


@dataclass(frozen=True)
class BenchWDMoEConfig:
    """What ``semcom bench-wdmoe`` times (checked when built).

    Attributes:
        hidden: hidden width D (a multiple of 16).
        layers: decoder layers.
        experts: experts per layer.
        top_k: experts per token (<= experts).
        expert_ffn: expert FFN width.
        vocab: vocabulary size.
        dtype: model dtype, bfloat16 or float32.
        devices: devices in the cell.
        prompt: prompt tokens (prefill, not timed).
        new_tokens: decoded tokens per run.
        reps: alternating runs of the three systems.
        threads: torch threads.
        seed: seed of the model weights, prompt and cell.
    """

    hidden: int = 1024
    layers: int = 8
    experts: int = 64
    top_k: int = 8
    expert_ffn: int = 512
    vocab: int = 8192
    dtype: str = "bfloat16"
    devices: int = 8
    prompt: int = 16
    new_tokens: int = 16
    reps: int = 3
    threads: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if f.name not in ("dtype", "seed"):
                check_positive_int(f.name, getattr(self, f.name))
        check_choice("dtype", self.dtype, ("bfloat16", "float32"))
        if self.top_k > self.experts:
            raise ValueError(f"top_k must be <= experts ({self.experts}), got {self.top_k}")
        if self.hidden % 16:
            raise ValueError(f"hidden must be a multiple of 16 (16 attention heads), got "
                             f"{self.hidden}")


@dataclass
class BenchWDMoEResult:
    """The timings of a :class:`BenchWDMoEConfig`.

    Attributes:
        config: what was timed.
        rows: per system: median and best s per token, ratio to unsplit, bits on air per
            token.
        info: parameters, peak resident memory (MB) after the unsplit and the split runs and
            their ratio, and the bf16 payload bits per (token, expert, direction).
    """

    config: BenchWDMoEConfig
    rows: list[dict[str, Any]]
    info: dict[str, Any]


def build_model(args: BenchWDMoEConfig) -> Any:
    """The random-init ``Qwen3MoeForCausalLM`` of the benchmark (eval mode, ``args.dtype``)."""
    from transformers import Qwen3MoeConfig, Qwen3MoeForCausalLM

    cfg = Qwen3MoeConfig(vocab_size=args.vocab, hidden_size=args.hidden,
                         num_hidden_layers=args.layers, num_attention_heads=16,
                         num_key_value_heads=4, head_dim=args.hidden // 16,
                         intermediate_size=4 * args.hidden,
                         moe_intermediate_size=args.expert_ffn, num_experts=args.experts,
                         num_experts_per_tok=args.top_k, norm_topk_prob=True,
                         max_position_embeddings=4 * (args.prompt + args.new_tokens))
    torch.manual_seed(args.seed)
    dtype = getattr(torch, args.dtype)
    with torch.device("cpu"):
        model = Qwen3MoeForCausalLM(cfg).to(dtype)
    return model.eval()


class _NoSteps:
    def begin_step(self, phase: str, num_tokens: int) -> None: ...

    def end_step(self) -> None: ...


class ExpertsTimer:
    """Wall time (s) spent inside the experts modules of ``model`` (every module of the
    transformers experts interface), from PyTorch forward pre- and post-hooks; ``remove()``
    takes the hooks off."""

    def __init__(self, model: torch.nn.Module) -> None:
        from wdmoe_link.routing import is_interface_experts

        self.seconds = 0.0
        self._started: list[float] = []
        self._handles = []
        for module in model.modules():
            if is_interface_experts(module):
                self._handles.append(module.register_forward_pre_hook(self._pre))
                self._handles.append(module.register_forward_hook(self._post))
        if not self._handles:
            raise ValueError("the model has no experts module of the transformers experts "
                             "interface")

    def _pre(self, module: torch.nn.Module, args: Any) -> None:
        self._started.append(time.perf_counter())

    def _post(self, module: torch.nn.Module, args: Any, output: Any) -> None:
        self.seconds += time.perf_counter() - self._started.pop()

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()


@torch.no_grad()
def decode_seconds_per_token(model: Any, ids: torch.Tensor, new_tokens: int,
                             steps: Any = None, timer: ExpertsTimer | None = None) -> float:
    """Greedy decoding of ``new_tokens`` after a prefill of ``ids``: mean s per decode step.

    ``steps``: a dispatcher whose ``begin_step``/``end_step`` bracket each forward (a
    :class:`wdmoe_link.WDMoESystem`), so that its report counts decode steps. ``timer``: an
    :class:`ExpertsTimer` on ``model``, zeroed after the prefill (it then holds the decode
    steps' time in the experts modules)."""
    steps = steps or _NoSteps()
    steps.begin_step("prefill", ids.numel())
    out = model(input_ids=ids, use_cache=True)
    steps.end_step()
    if timer is not None:
        timer.seconds = 0.0
    cache = out.past_key_values
    nxt = out.logits[:, -1:].argmax(-1)
    t0 = time.perf_counter()
    for _ in range(new_tokens):
        steps.begin_step("decode", nxt.numel())
        out = model(input_ids=nxt, past_key_values=cache, use_cache=True)
        steps.end_step()
        cache = out.past_key_values
        nxt = out.logits[:, -1:].argmax(-1)
    return (time.perf_counter() - t0) / new_tokens


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def run(args: BenchWDMoEConfig) -> BenchWDMoEResult:
    """Time the three systems side by side (see the module docstring)."""
    from wdmoe_link import DigitalTransport, WDMoESystem, default_topology

    torch.set_num_threads(args.threads)
    model = build_model(args)
    n_params = sum(p.numel() for p in model.parameters())
    ids = torch.randint(0, args.vocab, (1, args.prompt),
                        generator=torch.Generator().manual_seed(args.seed))
    topo = default_topology(args.devices, seed=args.seed)
    times: dict[str, list[float]] = {s: [] for s in SYSTEMS}
    in_experts: dict[str, list[float]] = {s: [] for s in SYSTEMS}
    bits: dict[str, float] = {}
    decode_seconds_per_token(model, ids, 2)  # warm-up of the unsplit kernels
    rss_unsplit = 0.0
    timer = ExpertsTimer(model)
    try:
        for _ in range(args.reps):
            times["unsplit"].append(decode_seconds_per_token(model, ids, args.new_tokens,
                                                             timer=timer))
            in_experts["unsplit"].append(timer.seconds / args.new_tokens)
            rss_unsplit = max(rss_unsplit, _peak_rss_mb())
            for name, transport in (("split/ideal", "ideal"),
                                    ("split/digital:bf16", DigitalTransport("bf16"))):
                with WDMoESystem(model, topo, transport, "topk", seed=args.seed) as system:
                    times[name].append(decode_seconds_per_token(model, ids, args.new_tokens,
                                                                system, timer))
                    in_experts[name].append(timer.seconds / args.new_tokens)
                    rep = system.report()
                    bits[name] = rep.bits_dl_per_token + rep.bits_ul_per_token
    finally:
        timer.remove()
    rss_split = _peak_rss_mb()
    base = statistics.median(times["unsplit"])
    base_experts = statistics.median(in_experts["unsplit"])
    rows = []
    for name in SYSTEMS:
        med = statistics.median(times[name])
        experts_s = statistics.median(in_experts[name])
        rows.append({"system": name, "s_per_token_median": med,
                     "s_per_token_min": min(times[name]), "ratio_to_unsplit": med / base,
                     "experts_s_per_token": experts_s,
                     "added_ms_per_layer_call": (experts_s - base_experts) / args.layers * 1e3,
                     "bits_on_air_per_token": bits.get(name, 0.0), "reps": args.reps})
    info = {"parameters": n_params, "peak_rss_mb_unsplit": rss_unsplit,
            "peak_rss_mb_split": rss_split, "memory_ratio": rss_split / rss_unsplit,
            "bits_per_token_expert_direction":
                DigitalTransport("bf16").payload_bits(1, args.hidden),
            "mixtral_bits_per_token_expert_direction":
                DigitalTransport("bf16").payload_bits(1, 4096)}
    return BenchWDMoEResult(args, rows, info)


def _summary(result: BenchWDMoEResult) -> str:
    rows, info, args = result.rows, result.info, result.config
    lines = [
        "# bench_wdmoe",
        "",
        f"Random-init qwen3_moe, {info['parameters'] / 1e6:.0f} M parameters ({args.dtype}): "
        f"hidden {args.hidden}, {args.layers} layers, {args.experts} experts, top-{args.top_k}, "
        f"expert FFN {args.expert_ffn}; {args.devices} devices; prompt {args.prompt} tokens, "
        f"{args.new_tokens} decoded per run, {args.reps} alternating runs, "
        f"{args.threads} thread(s).",
        "",
        "| system | s / token (median) | vs unsplit | in the MoE layers (s / token) | "
        "added per MoE layer call (ms) | bits on air / token |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['system']} | {r['s_per_token_median']:.4f} | "
                     f"{r['ratio_to_unsplit']:.2f}x | {r['experts_s_per_token']:.4f} | "
                     f"{r['added_ms_per_layer_call']:.2f} | "
                     f"{r['bits_on_air_per_token']:.0f} |")
    lines += [
        "",
        f"Peak resident memory: {info['peak_rss_mb_unsplit']:.0f} MB after the unsplit runs, "
        f"{info['peak_rss_mb_split']:.0f} MB after the split runs "
        f"({info['memory_ratio']:.2f}x). Goal: time <= 1.2x (bar 1.5x), memory <= 1.2x.",
        "",
        f"Payload per (token, expert, direction) in bf16: "
        f"{info['bits_per_token_expert_direction']} bits here, "
        f"{info['mixtral_bits_per_token_expert_direction']} for Mixtral's hidden 4096 "
        "(the papers' 65,536).",
    ]
    return "\n".join(lines) + "\n"


def run_bench_wdmoe(cfg: BenchWDMoEConfig | None = None, *, out: str | Path = "results",
                    progress: bool = True, **settings: Any) -> ResultsDir:
    """``semcom bench-wdmoe``: :func:`run` into ``bench_wdmoe.csv`` and ``summary.md``
    (settings checked before any folder exists).

    Args:
        cfg: what to time; or give its fields as keywords (``settings``).
        out: root folder of the results.
        progress: print the summary when done.
    """
    cfg = resolve_config(BenchWDMoEConfig, cfg, settings)
    res = ResultsDir.create("bench_wdmoe", config_dict(cfg, drop=()), cfg.seed, root=out)
    with res:
        result = run(cfg)
        res.write_csv("bench_wdmoe.csv", result.rows)
        text = _summary(result)
        res.write_summary(text)
    if progress:
        print(text)
    return res


#: ``python -m experiments.bench_wdmoe``: ``semcom bench-wdmoe``
main = entry_point("bench-wdmoe")


if __name__ == "__main__":
    raise SystemExit(main())
