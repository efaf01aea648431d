"""lm-evaluation-harness model ``"wdmoe"``: any benchmark through the split MoE and its links.

:class:`WDMoELM` is lm-eval's own Hugging Face model (``HFLM``: batching, caching, log-
likelihoods, generation) around a sparse-MoE checkpoint split by
:class:`~wdmoe_link.system.WDMoESystem`, so every expert input and output crosses the PHY
while the harness scores the model. Importing this module registers it with lm-eval as
``"wdmoe"``. lm-eval 0.4 has no entry-point discovery for models, so ``semcom-lm-eval`` (or
``python -m wdmoe_link.harness``) is lm-eval's own command line with this module imported
first::

    semcom-lm-eval --model wdmoe \\
        --model_args pretrained=PATH,policy=wlr:0.2,transport=digital:bf16,snr_db=10 \\
        --tasks piqa --include_path my_tasks/

``--model_args`` (besides HFLM's own, such as ``batch_size``):

* ``pretrained``: a local checkpoint directory or ``tiny`` (nothing is downloaded);
* ``policy``, ``transport``: spec strings (:func:`~wdmoe_link.policies.parse_policy`,
  :func:`~wdmoe_link.transports.parse_transport`; default ``topk`` and ``ideal``);
* ``snr_db``: every link's mean SNR in dB (default: the cell's link budget);
* ``devices``, ``bandwidth_mhz``, ``compute_model``, ``seed``: the cell
  (:func:`~wdmoe_link.topology.default_topology`).

The link metrics (latency per token, experts dropped and lost, bits on air) are added to the
results under ``config["wdmoe_link"]`` (lm-eval's ``get_model_info``) and printed after the
harness table. Each model forward is one step of the latency model: a prefill, or one decode
token when the model is called with one new token and a cache. Padding tokens of a batch are
routed and sent like the others (as a deployed batch would).

:data:`TASKS_DIR` holds offline task definitions for the shipped models (YAML + local JSONL).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import torch

from .split import load_moe
from .system import WDMoESystem
from .topology import default_topology

__all__ = ["TASKS_DIR", "WDMoELM", "main"]

#: Offline lm-eval task definitions for the shipped models (``--include_path``).
TASKS_DIR: Path = Path(__file__).resolve().parent / "data" / "lm_eval_tasks"

try:
    from lm_eval.api.registry import register_model
    from lm_eval.models.huggingface import HFLM
except ImportError as exc:  # pragma: no cover - the "eval" extra is not installed
    raise ImportError(
        "wdmoe_link.harness needs lm-evaluation-harness: pip install -e '.[eval]'"
    ) from exc


def _tokenizer_for(path: Path | str, model: Any) -> Any:
    from transformers import AutoTokenizer

    from .byte_tokenizer import HFByteTokenizer
    from .tasks import ByteTokenizer

    if str(path) == "tiny" or (model.config.vocab_size == ByteTokenizer.vocab_size and not any(
            (Path(path) / n).is_file() for n in ("tokenizer.json", "tokenizer_config.json"))):
        return HFByteTokenizer()
    return AutoTokenizer.from_pretrained(str(path), local_files_only=True)


@register_model("wdmoe")
class WDMoELM(HFLM):
    """lm-eval ``HFLM`` over a split MoE model (see the module docstring for the arguments)."""

    def __init__(self, pretrained: str = "tiny", policy: str = "topk",
                 transport: str = "ideal", snr_db: float | None = None, devices: int = 8,
                 bandwidth_mhz: float = 100.0, compute_model: str = "flops", seed: int = 0,
                 dtype: str = "float32", device: str = "cpu", **kwargs: Any) -> None:
        if not isinstance(pretrained, (str, Path)):
            raise TypeError("pretrained must be a local checkpoint path or 'tiny'")
        if snr_db is not None:
            snr_db = float(snr_db)
        torch_dtype = getattr(torch, str(dtype), None)
        if not isinstance(torch_dtype, torch.dtype):
            raise ValueError(f"dtype must be a torch dtype name such as 'float32' or "
                             f"'bfloat16', got {dtype!r}")
        topo = default_topology(int(devices), seed=int(seed), bandwidth_hz=float(bandwidth_mhz)
                                * 1e6, compute_model=compute_model, link_snr_db=snr_db)
        if str(device).startswith("cuda") and not torch.cuda.is_available():
            device = "cpu"  # lm-eval's --device defaults to cuda; HFLM falls back the same way
        model = load_moe(pretrained, dtype=torch_dtype, device=device)
        tokenizer = kwargs.pop("tokenizer", None) or _tokenizer_for(pretrained, model)
        from .byte_tokenizer import HFByteTokenizer

        if isinstance(tokenizer, HFByteTokenizer):
            kwargs.setdefault("add_bos_token", True)  # the byte models were trained with BOS
        super().__init__(pretrained=model, tokenizer=tokenizer, backend="causal", **kwargs)
        self.system = WDMoESystem(model, topo, transport, policy, seed=int(seed))
        self._link_args = {"pretrained": str(pretrained), "policy": self.system.policy.name,
                           "transport": transport, "snr_db": snr_db, "devices": int(devices),
                           "bandwidth_mhz": float(bandwidth_mhz), "seed": int(seed)}
        self._hooks = [model.register_forward_pre_hook(self._begin, with_kwargs=True),
                       model.register_forward_hook(self._end)]

    # ---- one forward = one step of the latency model -----------------------------------

    def _begin(self, module: Any, args: tuple, kwargs: dict) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is None:
            return
        cache = kwargs.get("past_key_values")
        cached = cache is not None and (cache.get_seq_length() if hasattr(
            cache, "get_seq_length") else 0) > 0
        phase = "decode" if cached and ids.shape[-1] == 1 else "prefill"
        self.system.begin_step(phase, int(ids.numel()))

    def _end(self, module: Any, args: tuple, output: Any) -> None:
        self.system.end_step()

    # ---- reporting -----------------------------------------------------------------------

    def link_report(self) -> dict[str, Any]:
        """The link metrics of everything run so far (:class:`~wdmoe_link.system.Report`)."""
        rep = self.system.report().to_dict()
        return {k: v for k, v in rep.items()
                if not (isinstance(v, float) and math.isnan(v)) and k != "accuracy"}

    def get_model_info(self) -> dict[str, Any]:
        info = super().get_model_info()
        info["wdmoe_link"] = {**self._link_args, **self.link_report()}
        return info


_PRINTED = ("policy", "transports", "num_prefill_steps", "num_decode_steps",
            "latency_per_token_mean_s", "experts_dropped_fraction", "experts_lost_fraction",
            "bits_dl_per_token", "bits_ul_per_token")


def main(argv: list[str] | None = None) -> None:
    """lm-eval's command line with the ``"wdmoe"`` model registered; prints the link report."""
    from lm_eval.__main__ import cli_evaluate

    live: list[WDMoELM] = []
    init = WDMoELM.__init__

    def tracking_init(self: WDMoELM, *a: Any, **kw: Any) -> None:
        init(self, *a, **kw)
        live.append(self)

    WDMoELM.__init__ = tracking_init  # type: ignore[method-assign]
    old = sys.argv
    if argv is not None:
        sys.argv = ["semcom-lm-eval", *argv]
    try:
        cli_evaluate()
    finally:
        sys.argv = old
        WDMoELM.__init__ = init  # type: ignore[method-assign]
    for lm in live:
        rep = lm.link_report()
        print("wdmoe link report: " + ", ".join(f"{k}={rep[k]:.4g}" if isinstance(rep[k], float)
                                                else f"{k}={rep[k]}" for k in _PRINTED
                                                if k in rep))


if __name__ == "__main__":
    main()
