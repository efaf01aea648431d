"""``semcom wdmoe``: accuracy and latency of a split MoE language model over the PHY.

Every combination of ``policies`` × ``transports`` × ``snr_db`` runs the task through
:class:`wdmoe_link.WDMoESystem` and gives one row (accuracy, latency per generated token mean
and p95, prefill latency, bits and channel uses on air per token, experts dropped by the policy
and lost on the links): :func:`sweep_wdmoe` turns a :class:`WDMoEConfig` into a
:class:`WDMoEResult`; :func:`run_wdmoe`, the command, streams the rows to ``results.csv`` and
adds the report of :mod:`experiments.reporting.wdmoe` (latency vs accuracy per policy, accuracy
vs SNR per transport, ``summary.md``). ``snr_db=None`` uses the cell's link budget
(distances, path loss, powers, bandwidth share); a value sets every link's mean SNR (Rayleigh
block fading kept) for controlled sweeps. Wall times go to ``timings.csv``, so that the same
config and seed give byte-identical ``results.csv``. ``resume`` skips the configurations an
earlier folder already holds and writes into that folder; its settings other than the grid
(policies, transports, SNRs, baselines) must match, or the run is refused.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

import phy
from experiments.recipes.config import resolve_config
from experiments.reporting.results import ResultsDir, read_csv_rows
from experiments.reporting.wdmoe import TEXT_WINDOW, summary_table, write_wdmoe_report
from experiments.values import FloatGrid, Names

__all__ = ["WDMoEConfig", "WDMoEResult", "load_model", "run_wdmoe", "summary_table",
           "sweep_wdmoe"]

_KEY = ("policy_spec", "transport_spec", "snr_db")

def _task(model_name: str, limit: int, seed: int, digits: int | None) -> Any:
    from wdmoe_link import ArithmeticTask, tiny_task

    if model_name == "tiny":
        return tiny_task("test", size=limit, seed=seed)
    return ArithmeticTask("test", size=limit, seed=seed, digits=digits or 2, few_shot=3)


@dataclass(frozen=True)
class WDMoEConfig:
    """What ``semcom wdmoe`` sweeps (checked when built; the model loads at run time).

    Attributes:
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
        baselines: ``split:<cut>`` specs (:class:`wdmoe_link.split_layer.SplitAtLayer`, the
            model cut at a layer boundary with the activation on the uplink), run over the
            same transports and SNRs as the policies and reported in the same rows
            (``policy_spec`` is the baseline's spec).
    """

    model: str = "tiny"
    policies: Names = Names(("topk", "wlr:0.2", "joint"))
    transports: Names = Names(("ideal",))
    snr_db: FloatGrid | None = None
    bandwidth_mhz: float = 100.0
    devices: int = 8
    limit: int = 50
    compute_model: str = "flops"
    digits: int | None = None
    seed: int = 0
    baselines: Names = field(default_factory=Names)

    def __post_init__(self) -> None:
        from wdmoe_link import parse_policy, parse_transport
        from wdmoe_link.split_layer import parse_split_baseline

        if self.bandwidth_mhz <= 0 or not math.isfinite(self.bandwidth_mhz):
            raise ValueError(f"bandwidth_mhz must be > 0 (MHz), got {self.bandwidth_mhz}")
        if isinstance(self.devices, bool) or not isinstance(self.devices, int) \
                or self.devices < 1:
            raise ValueError(f"devices must be an int >= 1, got {self.devices!r}")
        if self.limit < 1:
            raise ValueError(f"limit must be >= 1 example, got {self.limit}")
        for name in ("policies", "transports", "baselines"):
            object.__setattr__(self, name, Names.parse(getattr(self, name)))
        if self.snr_db is not None:
            object.__setattr__(self, "snr_db", FloatGrid(
                None if s is None else float(s) for s in
                (self.snr_db if isinstance(self.snr_db, (list, tuple))
                 else FloatGrid.parse(self.snr_db))))
        for s in self.snr_points:
            if s is not None and not (math.isfinite(s)
                                      and phy.SNR_DB_MIN <= s <= phy.SNR_DB_MAX):
                raise ValueError(f"snr_db must lie in [{phy.SNR_DB_MIN:g}, "
                                 f"{phy.SNR_DB_MAX:g}] dB (phy's range), got {s!r}")
        for p in self.policies:
            parse_policy(p)
        cuts = [parse_split_baseline(b) for b in self.baselines]
        if any(t.startswith("analog+") for t in self.transports) and cuts:
            raise ValueError("split baselines take ideal, digital or analog transports, not "
                             "analog+<denoiser>")
        for t in self.transports:
            if not t.startswith("analog+"):
                parse_transport(t)

    @property
    def snr_points(self) -> tuple[float | None, ...]:
        """The SNRs swept (dB); ``(None,)``: the cell's link budget."""
        return (None,) if self.snr_db is None else tuple(self.snr_db)

    def to_dict(self) -> dict[str, Any]:
        """The settings as ``config.yaml`` records them (the seed apart)."""
        return {"model": self.model, "policies": list(self.policies),
                "transports": list(self.transports), "snr_db": list(self.snr_points),
                "bandwidth_mhz": float(self.bandwidth_mhz), "devices": self.devices,
                "limit": self.limit, "compute_model": self.compute_model,
                "digits": self.digits, "baselines": list(self.baselines)}


@dataclass
class WDMoEResult:
    """The sweep of a :class:`WDMoEConfig`.

    Attributes:
        config: what was swept.
        rows: one per (policy or baseline, transport, SNR): the
            :meth:`wdmoe_link.Report.to_dict` fields (``bits_per_byte`` too for text).
        timings: the wall time of each row (apart, so that ``rows`` are reproducible).
    """

    config: WDMoEConfig
    rows: list[dict[str, Any]]
    timings: list[dict[str, Any]]


def load_model(cfg: WDMoEConfig) -> Any:
    """The model of ``cfg`` (:func:`wdmoe_link.load_moe`), checked against its split
    baselines (each cut inside the model)."""
    from wdmoe_link import load_moe
    from wdmoe_link.split_layer import parse_split_baseline

    lm = load_moe(cfg.model)
    num_layers = lm.config.num_hidden_layers
    for b in cfg.baselines:
        if not 1 <= parse_split_baseline(b) < num_layers:
            raise ValueError(f"baseline {b!r}: the cut must be in [1, {num_layers - 1}] for "
                             f"this {num_layers}-layer model")
    return lm


def sweep_wdmoe(cfg: WDMoEConfig, *, done: WDMoEResult | None = None,
                on_rows: Callable[[WDMoEResult], Any] | None = None,
                model: Any = None, progress: bool = True) -> WDMoEResult:
    """Run every (policy or baseline, transport, SNR) of ``cfg`` not already in ``done``
    (rows of an earlier run, kept first); ``on_rows`` gets the result so far after each.
    ``model``: :func:`load_model` of ``cfg`` when already loaded."""
    from wdmoe_link import WDMoESystem, default_topology, parse_transport
    from wdmoe_link.split_layer import SplitAtLayer, parse_split_baseline

    cuts = {b: parse_split_baseline(b) for b in cfg.baselines}
    lm = load_model(cfg) if model is None else model
    text = cfg.model == "text"
    if text:
        from wdmoe_link.text import TextCorpus, evaluate_text

        task = TextCorpus("test")  # held-out standard-library modules; limit = windows
    else:
        task = _task(cfg.model, cfg.limit, cfg.seed, cfg.digits)
    result = WDMoEResult(cfg, [] if done is None else list(done.rows),
                         [] if done is None else list(done.timings))
    have = {tuple(str(r[k]) for k in _KEY) for r in result.rows}
    combos = [(p, t, s) for t in cfg.transports for s in cfg.snr_points
              for p in [*cfg.policies, *cuts]]
    for p, t, s in tqdm(combos, desc="wdmoe", disable=not progress):
        if (p, t, "" if s is None else str(float(s))) in have:
            continue
        topo = default_topology(cfg.devices, seed=cfg.seed,
                                bandwidth_hz=cfg.bandwidth_mhz * 1e6,
                                compute_model=cfg.compute_model, link_snr_db=s)
        if p in cuts:
            system_cm: Any = SplitAtLayer(lm, cuts[p], topo, t, seed=cfg.seed)
        else:
            system_cm = WDMoESystem(lm, topo, parse_transport(t), p, seed=cfg.seed)
        with system_cm as system:
            extra: dict[str, Any] = {}
            if text:
                system.reset()
                score = evaluate_text(lm, task, length=TEXT_WINDOW, max_windows=cfg.limit,
                                      batch_size=8, dispatcher=system)
                report = system.report(accuracy=score.accuracy, num_examples=score.num_bytes)
                extra = {"bits_per_byte": score.bits_per_byte}
            else:
                report = system.evaluate(task, limit=cfg.limit)
        row = {"policy_spec": p, "transport_spec": t, "snr_db": "" if s is None else float(s),
               **report.to_dict(), **extra}
        result.timings.append({**{k: row[k] for k in _KEY},
                               "wall_time_s": row.pop("wall_time_s")})
        result.rows.append(row)
        if on_rows is not None:
            on_rows(result)
    return result


def run_wdmoe(cfg: WDMoEConfig | None = None, *, out: str | Path = "results",
              resume: str | Path | None = None, progress: bool = True,
              **settings: Any) -> ResultsDir:
    """``semcom wdmoe``: :func:`sweep_wdmoe` into a results folder (see the module docstring).

    Args:
        cfg: what to sweep; or give its fields as keywords (``settings``).
        out: root folder of the results.
        resume: an earlier wdmoe results folder.
        progress: show a progress bar.
    """
    cfg = resolve_config(WDMoEConfig, cfg, settings)
    lm = load_model(cfg)  # a bad model or cut fails before the folder exists
    done = None
    if resume is not None:  # the grid may grow; everything else must match the folder's run
        res = ResultsDir.resume(resume, "wdmoe", cfg.to_dict(), cfg.seed,
                                extendable=("policies", "transports", "snr_db", "baselines"))
        rows, timings = (read_csv_rows(Path(resume) / name) for name in ("results.csv",
                                                                      "timings.csv"))
        done = WDMoEResult(cfg, rows, timings)
    else:
        res = ResultsDir.create("wdmoe", cfg.to_dict(), cfg.seed, root=out)

    def stream(result: WDMoEResult) -> None:
        res.write_csv("results.csv", result.rows)
        res.write_csv("timings.csv", result.timings)

    with res:
        result = sweep_wdmoe(cfg, done=done, on_rows=stream, model=lm, progress=progress)
        if result.rows:
            res.write_csv("results.csv", result.rows)
        write_wdmoe_report(result, res)
    return res
