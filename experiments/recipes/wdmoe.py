"""``semcom wdmoe``: accuracy and latency of a split MoE language model over the PHY.

Every combination of ``policies`` × ``transports`` × ``snr_db`` runs the task through
:class:`wdmoe_link.WDMoESystem` and gives one CSV row (accuracy, latency per generated token mean
and p95, prefill latency, bits and channel uses on air per token, experts dropped by the policy
and lost on the links). Plots: latency vs accuracy per policy (one marker per transport and SNR)
and accuracy vs SNR per transport. ``snr_db=None`` uses the cell's link budget (distances, path
loss, powers, bandwidth share); a value sets every link's mean SNR (Rayleigh block fading kept)
for controlled sweeps. Wall times go to ``timings.csv``, so that the same config and seed give
byte-identical ``results.csv``. Rows are written after every configuration; ``resume`` skips the
configurations an earlier folder already holds and writes into that folder; its settings other
than the grid (policies, transports, SNRs, baselines) must match, or the run is refused.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from tqdm.auto import tqdm

import phy
from experiments.reporting.plots import finish_axes
from experiments.reporting.results import ResultsDir, cell_float, read_csv_rows
from experiments.values import FloatGrid, Names

__all__ = ["run_wdmoe"]

_KEY = ("policy_spec", "transport_spec", "snr_db")

#: Bytes predicted per window when the model is the shipped text model (``model="text"``).
TEXT_WINDOW = 128


def _task(model_name: str, limit: int, seed: int, digits: int | None) -> Any:
    from wdmoe_link import ArithmeticTask, tiny_task

    if model_name == "tiny":
        return tiny_task("test", size=limit, seed=seed)
    return ArithmeticTask("test", size=limit, seed=seed, digits=digits or 2, few_shot=3)


def _snr_label(s: float | None) -> str:
    return "budget" if s is None else f"{s:g} dB"


def run_wdmoe(*, model: str = "tiny", policies: Names = Names(("topk", "wlr:0.2", "joint")),
              transports: Names = Names(("ideal",)), snr_db: FloatGrid | None = None,
              bandwidth_mhz: float = 100.0, devices: int = 8, limit: int = 50,
              compute_model: str = "flops", digits: int | None = None, seed: int = 0,
              out: str | Path = "results", resume: str | Path | None = None,
              progress: bool = True, baselines: Names = Names()) -> ResultsDir:
    """Run the sweep and write the results folder (see the module docstring).

    ``baselines``: ``"split:<cut>"`` specs (:class:`wdmoe_link.split_layer.SplitAtLayer`, the
    model cut at a layer boundary with the activation on the uplink), run over the same
    transports and SNRs as the policies and reported in the same rows (``policy_spec`` is the
    baseline's spec).

    Args:
        model: ``tiny`` (shipped, arithmetic), ``text`` (shipped, held-out standard-library
            source in bits per byte) or a local Hugging Face MoE checkpoint folder.
        policies: policy specs, e.g. ``topk,wlr:0.2,joint,link-aware``.
        transports: transport specs, e.g. ``ideal,digital:int4,analog,analog+cddm``.
        snr_db: link SNRs in dB (``start:stop:step`` or ``a,b,c``); None: the cell's link
            budget.
        bandwidth_mhz: cell bandwidth in MHz.
        devices: devices in the cell.
        limit: examples of the task (128-byte windows for the text model).
        compute_model: device compute time, ``flops`` or ``roofline``.
        digits: operand digits of the arithmetic task for models other than the tiny one.
        seed: seed of the topology, fading and links.
        out: root folder of the results.
        resume: an earlier wdmoe results folder.
        progress: show a progress bar.
        baselines: ``split:<cut>`` specs run beside the policies.
    """
    from wdmoe_link import WDMoESystem, default_topology, load_moe, parse_policy, parse_transport
    from wdmoe_link.split_layer import SplitAtLayer, parse_split_baseline

    if bandwidth_mhz <= 0 or not math.isfinite(bandwidth_mhz):
        raise ValueError(f"bandwidth_mhz must be > 0 (MHz), got {bandwidth_mhz}")
    if isinstance(devices, bool) or not isinstance(devices, int) or devices < 1:
        raise ValueError(f"devices must be an int >= 1, got {devices!r}")
    if limit < 1:
        raise ValueError(f"limit must be >= 1 example, got {limit}")
    policies, transports = Names.parse(policies), Names.parse(transports)
    baselines = Names.parse(baselines)
    snr_db = (None,) if snr_db is None else tuple(
        None if s is None else float(s) for s in
        (snr_db if isinstance(snr_db, (list, tuple)) else FloatGrid.parse(snr_db)))
    for s in snr_db:
        if s is not None and not (math.isfinite(float(s))
                                  and phy.SNR_DB_MIN <= float(s) <= phy.SNR_DB_MAX):
            raise ValueError(f"snr_db must lie in [{phy.SNR_DB_MIN:g}, {phy.SNR_DB_MAX:g}] dB "
                             f"(phy's range), got {s!r}")
    for p in policies:
        parse_policy(p)  # fail before loading anything
    cuts = {b: parse_split_baseline(b) for b in baselines}
    if any(t.startswith("analog+") for t in transports) and cuts:
        raise ValueError("split baselines take ideal, digital or analog transports, not "
                         "analog+<denoiser>")
    for t in transports:
        if not t.startswith("analog+"):
            parse_transport(t)
    lm = load_moe(model)
    num_layers = lm.config.num_hidden_layers
    for b, cut in cuts.items():
        if not 1 <= cut < num_layers:
            raise ValueError(f"baseline {b!r}: the cut must be in [1, {num_layers - 1}] for "
                             f"this {num_layers}-layer model")
    text = model == "text"
    if text:
        from wdmoe_link.text import TextCorpus, evaluate_text

        task = TextCorpus("test")  # held-out standard-library modules; limit = windows
    else:
        task = _task(model, limit, seed, digits)
    config = {"model": model, "policies": list(policies), "transports": list(transports),
              "snr_db": [None if s is None else float(s) for s in snr_db],
              "bandwidth_mhz": float(bandwidth_mhz), "devices": devices, "limit": limit,
              "compute_model": compute_model, "digits": digits, "baselines": list(baselines)}
    rows: list[dict[str, Any]] = []
    timings: list[dict[str, Any]] = []  # wall times apart: results.csv is reproducible
    if resume is not None:  # the grid may grow; everything else must match the folder's run
        res = ResultsDir.resume(resume, "wdmoe", config, seed,
                                extendable=("policies", "transports", "snr_db", "baselines"))
        rows, timings = (read_csv_rows(Path(resume) / name) for name in ("results.csv",
                                                                      "timings.csv"))
    else:
        res = ResultsDir.create("wdmoe", config, seed, root=out)
    done = {tuple(str(r[k]) for k in _KEY) for r in rows}
    combos = [(p, t, s) for t in transports for s in snr_db for p in [*policies, *cuts]]
    with res:
        for p, t, s in tqdm(combos, desc="wdmoe", disable=not progress):
            key = (p, t, "" if s is None else str(float(s)))
            if key in done:
                continue
            topo = default_topology(devices, seed=seed, bandwidth_hz=bandwidth_mhz * 1e6,
                                    compute_model=compute_model,
                                    link_snr_db=None if s is None else float(s))
            if p in cuts:
                system_cm: Any = SplitAtLayer(lm, cuts[p], topo, t, seed=seed)
            else:
                system_cm = WDMoESystem(lm, topo, parse_transport(t), p, seed=seed)
            with system_cm as system:
                extra: dict[str, Any] = {}
                if text:
                    system.reset()
                    score = evaluate_text(lm, task, length=TEXT_WINDOW, max_windows=limit,
                                          batch_size=8, dispatcher=system)
                    report = system.report(accuracy=score.accuracy,
                                           num_examples=score.num_bytes)
                    extra = {"bits_per_byte": score.bits_per_byte}
                else:
                    report = system.evaluate(task, limit=limit)
            row = {"policy_spec": p, "transport_spec": t,
                   "snr_db": "" if s is None else float(s), **report.to_dict(), **extra}
            timings.append({**{k: row[k] for k in _KEY}, "wall_time_s": row.pop("wall_time_s")})
            rows.append(row)
            res.write_csv("results.csv", rows)
            res.write_csv("timings.csv", timings)
        if rows:
            res.write_csv("results.csv", rows)
            _plots(res, rows)
            res.write_summary(_summary(rows, config))
    return res


def _experts(r: dict[str, Any]) -> str:
    """Experts per token, or a dash for a layer-split baseline (no experts cross the air)."""
    v = cell_float(r["experts_per_token_mean"])
    return "—" if math.isnan(v) else f"{v:.2f}"


def _is_text(rows: list[dict[str, Any]]) -> bool:
    return any(r.get("bits_per_byte") not in (None, "") for r in rows)


def _axes(rows: list[dict[str, Any]]) -> tuple[Any, str, Any, str]:
    """(x of a row, x label, y of a row, y label) of the latency/quality plots.

    Generated answers are scored per decoded token; held-out text is scored in prefill (one
    forward pass per batch of windows, no decoding), so its latency is per forward pass and its
    quality is bits per byte (lower is better).
    """
    if _is_text(rows):
        return (lambda r: cell_float(r["prefill_latency_mean_s"]) * 1e3,
                "latency per forward pass (ms)",
                lambda r: cell_float(r["bits_per_byte"]), "held-out bits per byte")
    return (lambda r: cell_float(r["latency_per_token_mean_s"]) * 1e3,
            "decode latency per token (ms)",
            lambda r: cell_float(r["accuracy"]) * 100, "exact-match accuracy (%)")


def _plots(res: ResultsDir, rows: list[dict[str, Any]]) -> None:
    x_of, x_label, y_of, y_label = _axes(rows)
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    # label points with their link only when several links share the plot
    several = len({(r["transport_spec"], str(r["snr_db"])) for r in rows}) > 1
    for i, p in enumerate(dict.fromkeys(r["policy_spec"] for r in rows)):
        sel = [r for r in rows if r["policy_spec"] == p]
        ax.scatter([x_of(r) for r in sel], [y_of(r) for r in sel], label=p, color=f"C{i}")
        for r in sel if several else ():
            snr = None if r["snr_db"] in ("", None) else cell_float(r["snr_db"])
            ax.annotate(f"{r['transport_spec']} {_snr_label(snr)}", (x_of(r), y_of(r)),
                        fontsize=6, alpha=0.7)
    finish_axes(ax, x_label, y_label, legend={"fontsize": 7, "title": "policy"})
    fig.tight_layout()
    res.save_figure(fig, "latency_vs_accuracy.png")
    plt.close(fig)
    swept = [r for r in rows if r["snr_db"] not in ("", None)]
    if swept:
        fig, ax = plt.subplots(figsize=(6.5, 4.5))
        for t in dict.fromkeys(r["transport_spec"] for r in swept):
            for p in dict.fromkeys(r["policy_spec"] for r in swept):
                sel = sorted((r for r in swept if r["transport_spec"] == t
                              and r["policy_spec"] == p), key=lambda r: cell_float(r["snr_db"]))
                if sel:
                    ax.plot([cell_float(r["snr_db"]) for r in sel], [y_of(r) for r in sel], "o-",
                            label=f"{t} / {p}")
        finish_axes(ax, "link SNR (dB)", y_label, legend={"fontsize": 7})
        fig.tight_layout()
        res.save_figure(fig, "accuracy_vs_snr.png")
        plt.close(fig)


def _pct(key: str) -> Any:
    return lambda r: f"{cell_float(r[key]) * 100:.1f}"


def _ms(key: str, digits: int) -> Any:
    return lambda r: f"{cell_float(r[key]) * 1e3:.{digits}f}"


#: Summary columns after transport, SNR and policy: (header, cell of a row).
_TASK_COLUMNS = (("accuracy (%)", _pct("accuracy")),
                 ("latency/token mean (ms)", _ms("latency_per_token_mean_s", 3)),
                 ("p95 (ms)", _ms("latency_per_token_p95_s", 3)),
                 ("experts/token", _experts),
                 ("dropped (%)", _pct("experts_dropped_fraction")),
                 ("lost (%)", _pct("experts_lost_fraction")),
                 ("kbit DL/token", lambda r: f"{cell_float(r['bits_dl_per_token']) / 1e3:.1f}"))
_TEXT_COLUMNS = (("bits/byte", lambda r: f"{cell_float(r['bits_per_byte']):.3f}"),
                 ("next-byte accuracy (%)", _pct("accuracy")),
                 ("latency/forward (ms)", _ms("prefill_latency_mean_s", 1)),
                 ("experts/token", _experts),
                 ("dropped (%)", _pct("experts_dropped_fraction")),
                 ("lost (%)", _pct("experts_lost_fraction")),
                 ("kbit DL/byte",
                  lambda r: format(cell_float(r["bits_dl_total"])
                                   / cell_float(r["num_examples"]) / 1e3, ".1f")))


def _summary(rows: list[dict[str, Any]], config: dict[str, Any]) -> str:
    lines = ["# WDMoE over the PHY", "",
             f"model `{config['model']}`, {config['devices']} devices, "
             f"{config['bandwidth_mhz']:g} MHz, {config['limit']} examples, "
             f"compute model {config['compute_model']}", ""]
    return "\n".join(lines + summary_table(rows)) + "\n"


def summary_table(rows: list[dict[str, Any]]) -> list[str]:
    """The Markdown lines of the summary's results table (with its lead-in for text models)
    for the rows of ``results.csv`` (as written, or read back)."""
    lines: list[str] = []
    columns = _TASK_COLUMNS
    if _is_text(rows):
        columns = _TEXT_COLUMNS
        lines += [f"Held-out text ({TEXT_WINDOW}-byte windows of standard-library modules "
                  "never seen in training), scored in prefill: bits per byte (lower is "
                  "better), next-byte accuracy, simulated latency per forward pass of a batch "
                  "of windows, and bits on the downlink per scored byte:", ""]
    lines += ["| transport | SNR | policy | " + " | ".join(h for h, _ in columns) + " |",
              "|---" * (3 + len(columns)) + "|"]
    for r in rows:
        snr = "budget" if r["snr_db"] in ("", None) else f"{cell_float(r['snr_db']):g} dB"
        lines.append(f"| {r['transport_spec']} | {snr} | {r['policy_spec']} | "
                     + " | ".join(cell(r) for _, cell in columns) + " |")
    return lines
