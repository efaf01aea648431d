"""``semcom quickstart``: a short tour of semcom on the embedded defaults (minutes on a CPU).

1. Analog link: MSE of MMSE-equalized unit-power symbols vs SNR on AWGN and per-symbol Rayleigh,
   against the closed forms N0/(1+N0) and N0·e^N0·E1(N0).
2. Digital link: BER/BLER of three MCSs (QPSK, 16QAM, 64QAM) on AWGN with 5G LDPC.
3. Link adaptation: the MCS :func:`phy.select_mcs` picks from the shipped BLER table, its rate
   over 20 MHz and the Shannon capacity.
4. Images (the main figure, ``psnr_vs_snr.png``): the shipped ADJSCC (CBR 1/12) and ADJSCC +
   CDDM against JPEG2000 + 5G LDPC per MCS, their best-MCS envelope (drawn as steps) and the
   capacity bound, on crops of the held-out built-in photos, AWGN 0-20 dB.
5. Train your own: a small ADJSCC trained for a few hundred steps (a demo, labelled as such).
6. The shipped tiny MoE split over 8 devices (policies, then analog / CDDM / digital links).

:func:`tour` turns a :class:`QuickstartConfig` into a :class:`QuickstartResult` (data, no
files but the demo's checkpoint), composing the recipes' computations in memory
(:func:`~experiments.recipes.link_curves.simulate_link_curves`,
:func:`~experiments.recipes.pretrained_curves.pretrained_curves`,
:func:`~experiments.recipes.wdmoe.sweep_wdmoe`); :func:`run_quickstart`, the command, writes
each section's CSVs and figures into one results folder as the section finishes, then
``summary.md`` (:mod:`experiments.reporting.quickstart`). Every section is seeded with the
config's seed, so the same config gives the same numbers.
"""

from __future__ import annotations

import contextlib
import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

import phy
from experiments.recipes.config import config_dict, resolve_config
from experiments.recipes.link_curves import LinkCurvesConfig, LinkCurvesResult
from experiments.reporting.console import quiet_libraries
from experiments.reporting.quickstart import quickstart_summary, write_quickstart_section
from experiments.reporting.results import ResultsDir
from experiments.values import FloatGrid, IntGrid

if TYPE_CHECKING:
    from experiments.recipes.pretrained_curves import CurvePoint
    from experiments.recipes.wdmoe import WDMoEConfig, WDMoEResult
    from jscc.evaluation import CodecScore

__all__ = ["SECTIONS", "AdaptationPoint", "AnalogPoint", "DemoResult", "QuickstartConfig",
           "QuickstartResult", "run_quickstart", "tour"]

#: The sections of the tour, in the order they run (``on_section`` gets these names).
SECTIONS = ("analog", "digital", "adaptation", "pretrained", "demo", "wdmoe")
#: The analog check's SNR range (dB): its closed form for Rayleigh overflows far below it.
ANALOG_SNR_RANGE_DB = (-20.0, 60.0)
#: Link adaptation: the SNRs (dB), bandwidth (Hz), BLER target, channel and MCS table.
ADAPTATION_SNR_DB = tuple(float(s) for s in range(0, 31, 5))
ADAPTATION_BANDWIDTH_HZ = 20e6
ADAPTATION_TARGET_BLER = 0.1
ADAPTATION_CHANNEL = "awgn"
ADAPTATION_TABLE = "qam256"
#: The digital curves' channel and MCS table, fixed (recorded in ``config.yaml``).
DIGITAL_CHANNEL = "awgn"
DIGITAL_TABLE = "qam64"


def _grid(name: str, value: Any, cls: type) -> Any:
    try:
        grid = cls.parse(value)
    except ValueError as err:
        raise ValueError(f"{name}: {err}") from None
    if not grid:
        raise ValueError(f"{name} must not be empty")
    return grid


def _int(name: str, value: Any, low: int, *, multiple: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low \
            or value % multiple:
        what = f"a multiple of {multiple} >= {low}" if multiple > 1 else f"an int >= {low}"
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return value


@dataclass(frozen=True)
class QuickstartConfig:
    """What ``semcom quickstart`` runs (checked when built, before any folder or work).

    Attributes:
        seed: seed of every section (an int >= 0).
        fast: fewer Monte-Carlo blocks, image crops and SNRs, training steps and MoE problems.
        analog_snr_db: SNRs (dB) of the analog-link check, each in [-20, 60] dB.
        analog_values_per_snr: real values sent per SNR and channel (a multiple of 16).
        digital_mcs: MCS indices (TS 38.214 64QAM table, 0..28) of the digital BER/BLER
            curves.
        digital_snr_db: SNR grid (dB) of the digital curves.
    """

    seed: int = 0
    fast: bool = False
    analog_snr_db: FloatGrid = FloatGrid(range(-5, 26, 5))
    analog_values_per_snr: int = 2**18
    digital_mcs: IntGrid = IntGrid((4, 13, 20))
    digital_snr_db: FloatGrid = FloatGrid(range(-5, 21))

    def __post_init__(self) -> None:
        from phy.mcs import MCS_TABLES

        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        _int("seed", self.seed, 0)
        if not isinstance(self.fast, bool):
            raise ValueError(f"fast must be a bool (true or false), got {self.fast!r}")
        put("analog_snr_db", _grid("analog_snr_db", self.analog_snr_db, FloatGrid))
        lo, hi = ANALOG_SNR_RANGE_DB
        for s in self.analog_snr_db:
            if not lo <= s <= hi:
                raise ValueError(f"analog_snr_db must hold SNRs in [{lo:g}, {hi:g}] dB, "
                                 f"got {s:g}")
        _int("analog_values_per_snr", self.analog_values_per_snr, 16, multiple=16)
        put("digital_mcs", _grid("digital_mcs", self.digital_mcs, IntGrid))
        num = MCS_TABLES[DIGITAL_TABLE][1]
        for i in self.digital_mcs:
            if not 0 <= i < num:
                raise ValueError(f"digital_mcs must hold MCS indices in [0, {num - 1}] "
                                 f"(TS 38.214 64QAM table), got {i}")
        if len(set(self.digital_mcs)) != len(self.digital_mcs):
            raise ValueError(f"digital_mcs must not repeat an index, got "
                             f"{list(self.digital_mcs)}")
        put("digital_snr_db", _grid("digital_snr_db", self.digital_snr_db, FloatGrid))
        for s in self.digital_snr_db:
            if not (math.isfinite(s) and phy.SNR_DB_MIN <= s <= phy.SNR_DB_MAX):
                raise ValueError(f"digital_snr_db must hold SNRs in [{phy.SNR_DB_MIN:g}, "
                                 f"{phy.SNR_DB_MAX:g}] dB, got {s:g}")
        self.link_curves_config()  # anything else the link curves refuse

    # the settings that follow from ``fast``
    @property
    def image_crops(self) -> int:
        """Held-out 128x128 crops of the built-in photos in the main figure."""
        return 4 if self.fast else 8

    @property
    def image_snr_db(self) -> tuple[float, ...]:
        """SNRs (dB) of the main figure's JSCC and digital curves."""
        return tuple(float(s) for s in range(0, 21, 4 if self.fast else 2))

    @property
    def cddm_snr_db(self) -> tuple[float, ...]:
        """SNRs (dB) of the main figure's JSCC + CDDM curve (its sampler is slow)."""
        return tuple(float(s) for s in range(0, 21, 4))

    @property
    def image_mcs(self) -> tuple[int, ...]:
        """MCS indices of the main figure's JPEG2000 + 5G LDPC curves."""
        return (5, 9, 13, 17, 22)

    @property
    def train_steps(self) -> int:
        """Training steps of the train-your-own demo."""
        return 150 if self.fast else 400

    @property
    def wdmoe_limit(self) -> int:
        """Problems of the split-MoE policies sweep (half as many for the links sweep)."""
        return 10 if self.fast else 20

    def link_curves_config(self) -> LinkCurvesConfig:
        """The digital section's :class:`LinkCurvesConfig`."""
        return LinkCurvesConfig(channel=DIGITAL_CHANNEL, mcs=self.digital_mcs,
                                table=DIGITAL_TABLE, snr_db=self.digital_snr_db,
                                block_bits=512, batch_size=50 if self.fast else 100,
                                max_batches=2, target_block_errors=20 if self.fast else 40,
                                seed=self.seed)

    def wdmoe_configs(self) -> tuple[WDMoEConfig, WDMoEConfig]:
        """The split-MoE section's sweeps: the policies on ideal links, then ``topk`` over
        analog links with and without the hidden-state CDDM and digital links at 10 dB."""
        from experiments.recipes.wdmoe import WDMoEConfig

        n = self.wdmoe_limit
        return (WDMoEConfig(model="tiny", policies=("topk", "wlr:0.3", "joint:0"),
                            transports=("ideal",), limit=n, seed=self.seed),
                WDMoEConfig(model="tiny", policies=("topk",),
                            transports=("analog", "analog+cddm", "digital:bf16"),
                            snr_db=(10.0,), limit=n // 2, seed=self.seed))

    def to_dict(self) -> dict[str, Any]:
        """The settings as ``config.yaml`` records them (the seed apart; the fixed digital
        channel too)."""
        return {**config_dict(self), "digital_channel": DIGITAL_CHANNEL}

    def section_settings(self) -> dict[str, Any]:
        """The settings that follow from :attr:`fast`, for the manifest."""
        return {"image_crops": self.image_crops, "image_snr_db": list(self.image_snr_db),
                "cddm_snr_db": list(self.cddm_snr_db), "image_mcs": list(self.image_mcs),
                "train_steps": self.train_steps,
                "link_curves": self.link_curves_config().to_dict(),
                "wdmoe": [c.to_dict() for c in self.wdmoe_configs()]}


@dataclass(frozen=True)
class AnalogPoint:
    """MSE per complex symbol of the MMSE-equalized analog link at one SNR.

    Attributes:
        channel: ``awgn`` or ``rayleigh`` (per symbol).
        snr_db: Es/N0 (dB).
        mse_per_symbol: simulated MSE per complex symbol (linear).
        mse_db: the same in dB.
        theory_db: the closed form (dB).
        predicted_db: the link's own ``noise_var`` after equalization, averaged (dB).
    """

    channel: str
    snr_db: float
    mse_per_symbol: float
    mse_db: float
    theory_db: float
    predicted_db: float


@dataclass(frozen=True)
class AdaptationPoint:
    """The MCS link adaptation picks at one SNR.

    Attributes:
        snr_db: SNR (dB).
        mcs: name of the MCS picked; None when none meets the BLER target.
        rate_mbps: its rate (Mbit/s, 0 without an MCS).
        capacity_mbps: the Shannon capacity at that SNR (Mbit/s).
    """

    snr_db: float
    mcs: str | None
    rate_mbps: float
    capacity_mbps: float


@dataclass(frozen=True)
class DemoResult:
    """The train-your-own demo.

    Attributes:
        steps: training steps done.
        scores: PSNR and MS-SSIM of the trained codec at 0, 10 and 20 dB (AWGN).
        checkpoint: the saved checkpoint; None when no folder was given.
    """

    steps: int
    scores: tuple[CodecScore, ...]
    checkpoint: Path | None


@dataclass
class QuickstartResult:
    """The tour of a :class:`QuickstartConfig`; a section not run yet is empty (or None).

    Attributes:
        config: what was run.
        analog: per channel and SNR, the analog link's MSE against its closed form.
        digital: the digital BER/BLER curves.
        adaptation: per SNR, the MCS of link adaptation, its rate and the capacity.
        image_crops: images of the main figure.
        pretrained: the main figure's curves.
        demo: the train-your-own demo.
        wdmoe: the split-MoE sweeps (policies on ideal links, then the links).
    """

    config: QuickstartConfig
    analog: list[AnalogPoint] = field(default_factory=list)
    digital: LinkCurvesResult | None = None
    adaptation: list[AdaptationPoint] = field(default_factory=list)
    image_crops: int = 0
    pretrained: list[CurvePoint] = field(default_factory=list)
    demo: DemoResult | None = None
    wdmoe: list[WDMoEResult] = field(default_factory=list)


def _analog(cfg: QuickstartConfig) -> list[AnalogPoint]:
    from scipy.special import exp1

    rows = []
    num_values = cfg.analog_values_per_snr
    for name, channel, theory in (
        ("awgn", phy.AWGN(), lambda n0: n0 / (1 + n0)),
        ("rayleigh", phy.RayleighFading("symbol"), lambda n0: n0 * math.exp(n0) * exp1(n0)),
    ):
        link = phy.AnalogLink(channel)
        for s in cfg.analog_snr_db:
            z = torch.randn(16, num_values // 16)
            r = link.send(z, s)
            scale2 = r.scale.square()[:, None]
            mse = float(((r.z_hat - z).square() / scale2).mean()) * 2  # per complex symbol
            rows.append(AnalogPoint(
                name, s, mse, 10 * math.log10(mse),
                10 * math.log10(theory(10 ** (-s / 10))),
                10 * math.log10(float((r.noise_var / scale2).mean()) * 2)))
    return rows


def _adaptation() -> list[AdaptationPoint]:
    out = []
    for s in ADAPTATION_SNR_DB:
        m = phy.select_mcs(s, target_bler=ADAPTATION_TARGET_BLER, channel=ADAPTATION_CHANNEL,
                           table=ADAPTATION_TABLE)
        out.append(AdaptationPoint(
            s, None if m is None else m.name,
            0.0 if m is None else phy.mcs_rate_bps(m, ADAPTATION_BANDWIDTH_HZ) / 1e6,
            phy.capacity_bps(ADAPTATION_BANDWIDTH_HZ, s) / 1e6))
    return out


def _pretrained(cfg: QuickstartConfig, say: Callable[[str], Any]
                ) -> tuple[int, list[CurvePoint]]:
    """The main figure: shipped ADJSCC and ADJSCC + CDDM against JPEG2000 + 5G LDPC per MCS,
    their envelope and the capacity bound, on crops of the held-out built-in photos."""
    from experiments.recipes.pretrained_curves import pretrained_curves
    from jscc.data import BuiltinPhotosDataset

    ds = BuiltinPhotosDataset(crop=128, train=False, num_crops=cfg.image_crops)
    images = torch.stack([ds[i] for i in range(len(ds))])
    points = pretrained_curves(images, snr_db=list(cfg.image_snr_db),
                               cddm_snr_db=list(cfg.cddm_snr_db), mcs=list(cfg.image_mcs),
                               seed=cfg.seed, progress=lambda msg: say(f"  {msg}"))
    return len(ds), points


def _demo(cfg: QuickstartConfig, folder: Path | None, say: Callable[[str], Any]
          ) -> DemoResult:
    """Train your own: a small ADJSCC for a few hundred steps on the built-in photos."""
    import pytorch_lightning as pl

    from jscc.data import BuiltinPhotosDataset, ImageDataModule
    from jscc.evaluation import evaluate_codec
    from jscc.lightning import JSCCModule

    seed = cfg.seed
    pl.seed_everything(seed, verbose=False)
    steps = cfg.train_steps
    model = JSCCModule(codec="adjscc:num_filters=32", cbr=1 / 12,
                       train_snr_range_db=(0.0, 20.0), val_snrs_db=(10.0,), lr=2e-3, seed=seed,
                       lr_schedule="cosine", lr_min=2e-4)
    with contextlib.ExitStack() as stack:
        root = folder if folder is not None else Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="quickstart-demo-")))
        trainer = pl.Trainer(max_epochs=-1, max_steps=steps, accelerator="cpu", logger=False,
                             enable_checkpointing=False, enable_model_summary=False,
                             enable_progress_bar=False, limit_val_batches=0,
                             default_root_dir=root)
        say(f"  training a small ADJSCC for {steps} steps")
        trainer.fit(model, ImageDataModule(source="builtin", crop=64, batch_size=16, seed=seed))
        ckpt = None
        if folder is not None:
            ckpt = folder / "adjscc_demo.ckpt"
            trainer.save_checkpoint(ckpt)
    ds = BuiltinPhotosDataset(crop=128, train=False, num_crops=8)
    images = torch.stack([ds[i] for i in range(len(ds))])
    scores = evaluate_codec(model.codec.eval().transmit, images, phy.AnalogLink(phy.AWGN()),
                            [0.0, 10.0, 20.0], seed=seed)
    return DemoResult(trainer.global_step, tuple(scores), ckpt)


def tour(cfg: QuickstartConfig, *, checkpoint_dir: str | Path | None = None,
         progress: bool = True, say: Callable[[str], Any] | None = None,
         on_section: Callable[[str, QuickstartResult], Any] | None = None
         ) -> QuickstartResult:
    """Run every section of the quickstart (see the module docstring) in memory.

    ``phy.set_seed(cfg.seed)`` comes first; the digital curves, the main figure, the demo and
    the split MoE seed themselves with ``cfg.seed``.

    Args:
        cfg: what to run.
        checkpoint_dir: folder for the demo's checkpoint (``adjscc_demo.ckpt``); None: a
            temporary folder, no checkpoint kept.
        progress: show the progress bars of the digital curves and the split MoE.
        say: called with each progress line (a section starts; indented, its steps).
        on_section: called with the section's name (:data:`SECTIONS`) and the result so far
            after each section (e.g. to write its files).
    """
    from experiments.recipes.link_curves import simulate_link_curves
    from experiments.recipes.wdmoe import sweep_wdmoe

    say = say or (lambda _msg: None)
    result = QuickstartResult(cfg)

    def done(section: str) -> None:
        if on_section is not None:
            on_section(section, result)

    phy.set_seed(cfg.seed)
    say("Analog link: MSE against the closed forms ...")
    result.analog = _analog(cfg)
    done("analog")
    say("Digital link: 5G LDPC BER/BLER curves ...")
    result.digital = simulate_link_curves(cfg.link_curves_config(), progress=progress)
    done("digital")
    result.adaptation = _adaptation()
    done("adaptation")
    say("Pretrained JSCC against the digital chain ...")
    result.image_crops, result.pretrained = _pretrained(cfg, say)
    done("pretrained")
    say("Train-your-own demo ...")
    result.demo = _demo(cfg, None if checkpoint_dir is None else Path(checkpoint_dir), say)
    done("demo")
    say("Split MoE language model over the PHY ...")
    for wcfg in cfg.wdmoe_configs():
        result.wdmoe.append(sweep_wdmoe(wcfg, progress=progress))
    done("wdmoe")
    return result


def run_quickstart(cfg: QuickstartConfig | None = None, *, out: str | Path = "results",
                   progress: bool = True, **settings: Any) -> ResultsDir:
    """``semcom quickstart``: :func:`tour` into one results folder (each section's CSVs and
    figures as it finishes, then ``summary.md``, also printed), returned.

    Args:
        cfg: what to run; or give its fields as keywords (``settings``).
        out: root folder of the results.
        progress: show progress bars.
    """
    cfg = resolve_config(QuickstartConfig, cfg, settings)  # checked before the folder exists
    res = ResultsDir.create("quickstart", cfg.to_dict(), cfg.seed, root=out)
    with quiet_libraries(), res:
        res.manifest.update(cfg.section_settings())
        result = tour(cfg, checkpoint_dir=res.path, progress=progress,
                      say=lambda msg: print(msg, flush=True),
                      on_section=lambda section, r: write_quickstart_section(res, section, r))
        text = quickstart_summary(result)
        res.write_summary(text)
    print(text)
    return res
