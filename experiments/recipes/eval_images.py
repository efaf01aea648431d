"""``semcom eval-images``: PSNR/MS-SSIM vs SNR of a JSCC checkpoint against the digital chain.

For every SNR: the JSCC codec through :class:`phy.AnalogLink` on the chosen channel; each
separate system (JPEG2000, HEVC intra, AVIF or the learned ladder) over 5G LDPC at each MCS
(the "cliff" curves) and their envelope (best MCS per SNR, chosen on the mean PSNR) and with an
ideal capacity-achieving code (the separation bound); any image system of the
:mod:`jscc.systems` registry. All at the codec's channel bandwidth ratio.

:func:`evaluate_images` turns an :class:`EvalImagesConfig` and the images into an
:class:`EvalImagesResult` (per-image rows); :func:`run_eval_images`, the command, streams them
to ``per_image.csv`` and adds the report of :mod:`experiments.reporting.eval_images`
(``mean.csv``, ``psnr_vs_snr.png``, ``summary.md``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

import phy
from experiments.recipes.config import optional_positive_int, resolve_config
from experiments.reporting.eval_images import mean_rows, write_eval_images_report
from experiments.reporting.results import ResultsDir, read_csv_rows
from experiments.values import FloatGrid, IntGrid, Names, PositiveInt
from jscc.baselines import SOURCE_CODECS, SeparateCapacity, SeparateLDPC
from jscc.data import BuiltinPhotosDataset, ImageFolderDataset
from jscc.metrics import ms_ssim, psnr
from jscc.pretrained import codec_from_ref
from phy.memo import Memo
from phy.sweep import make_channel

__all__ = ["BASELINES", "CODEC_BASELINES", "DEFAULT_BASELINES", "EvalImagesConfig",
           "EvalImagesResult", "evaluate_images", "load_images", "run_eval_images"]

#: An image transmission system: ``fn(images, link, snr_db) -> received images``.
SystemFn = Callable[[torch.Tensor, phy.AnalogLink, float], torch.Tensor]

#: ``<source codec>+<channel code>``: every source codec of jscc.baselines.source (jpeg2000,
#: hevc, avif) and the learned ladder, over 5G LDPC at each MCS or an ideal capacity code.
BASELINES = tuple(f"{src}+{code}" for src in (*SOURCE_CODECS, "learned")
                  for code in ("ldpc", "capacity"))
#: Baselines run by ``--baselines all`` (the learned ones need a trained ladder, ``ladder=``).
DEFAULT_BASELINES = ("jpeg2000+ldpc", "jpeg2000+capacity")
#: ``--baselines all``: every baseline that needs no trained model.
CODEC_BASELINES = tuple(b for b in BASELINES if not b.startswith("learned+"))


def load_images(data: str, crop: int | None, max_images: int | None) -> torch.Tensor:
    """``"builtin"`` (held-out built-in photos) or an image folder → ``[N, 3, crop, crop]``."""
    if data == "builtin":
        ds = BuiltinPhotosDataset(crop=crop or 64, train=False)
    else:
        ds = ImageFolderDataset(data, crop=crop, train=False)
    n = len(ds) if max_images is None else min(len(ds), max_images)
    if n == 0:
        raise ValueError(f"data {data!r} has no image")
    return torch.stack([ds[i] for i in range(n)])


def expand_baselines(baselines: Names | str) -> Names:
    """The baselines named by ``baselines``: ``"all"`` is :data:`CODEC_BASELINES`, ``"none"``
    (or an empty list) none."""
    names = Names.parse(baselines)
    return Names(CODEC_BASELINES) if list(names) == ["all"] else names


def _previous_rows(resume: str | Path | None) -> list[dict]:
    if resume is None:
        return []
    prev = Path(resume) / "per_image.csv"
    if not prev.is_file():
        raise ValueError(f"resume folder {str(resume)!r} holds no per_image.csv")
    return read_csv_rows(prev)


def eval_channel(channel: str, csi_error_std: float = 0.0) -> phy.Channel:
    """The channel ``channel`` (a :func:`phy.make_channel` name), seen through an estimate of
    ``h`` with error ``csi_error_std`` (:class:`phy.ImperfectCSI`) when it is > 0."""
    ch = make_channel(channel)
    return phy.ImperfectCSI(ch, csi_error_std) if csi_error_std else ch


def _learned_ldpc(channel: phy.Channel, m: phy.MCS, cbr: float, models: Any) -> Any:
    from jscc.baselines.learned import LearnedLDPC

    return LearnedLDPC(channel, m, cbr, models)


def _learned_capacity(cbr: float, models: Any) -> Any:
    from jscc.baselines.learned import LearnedCapacity

    return LearnedCapacity(cbr, models)


class _RegistryRun:
    """One registry image system by spec, as a ``run(images, snr_db) -> (img_hat, status)``.

    A system whose factory takes ``snr_db`` (``jscc+cddm``: the stage-3 decoder nearest to it)
    and whose spec does not set it is built for each SNR; any other is built once. Building
    at construction checks the spec before any results folder exists."""

    def __init__(self, spec: str, channel: str, csi_error_std: float, cbr: float) -> None:
        import cddm  # noqa: F401  (registers the jscc+cddm image system)
        from jscc.systems import SYSTEMS, build_system

        name, _, options = SYSTEMS.parse(spec)
        per_snr = ("snr_db" not in options
                   and "snr_db" in inspect.signature(SYSTEMS.factory(name)).parameters)
        self._build = lambda **kw: build_system(
            spec, channel=eval_channel(channel, csi_error_std), cbr=cbr, **kw)
        self._once = None if per_snr else self._build()
        if per_snr:
            self._build()  # checked now; built again for each SNR
        self._per_snr: Memo[Any] = Memo(64)

    def __call__(self, images: torch.Tensor, snr_db: float) -> tuple[torch.Tensor, list[str]]:
        system = self._once or self._per_snr.get(snr_db, lambda: self._build(snr_db=snr_db))
        with torch.no_grad():
            r = system.transmit(images, snr_db)
        return r.img_hat, list(r.reason)


@dataclass(frozen=True)
class EvalImagesConfig:
    """What ``semcom eval-images`` evaluates (checked when built; the codec and the images
    load at run time).

    Attributes:
        checkpoint: JSCCModule checkpoint (.ckpt) or ``pretrained:<name>`` (a shipped codec,
            :func:`jscc.pretrained.available`); None: the baselines only (give ``cbr``).
        data: ``builtin`` or an image folder.
        crop: centre crop size in pixels (None: whole images).
        channel: channel spec (:data:`phy.CHANNELS`).
        snr_db: Es/N0 grid in dB (``start:stop:step`` or ``a,b,c``).
        baselines: ``<codec>+ldpc`` / ``<codec>+capacity`` with codec jpeg2000, hevc
            (BPG-class), avif or learned (needs ``ladder``); ``all`` (every codec but
            learned) or ``none``.
        mcs: MCS indices of the ``+ldpc`` curves.
        cbr: channel bandwidth ratio when no checkpoint is given.
        max_images: evaluate at most this many images.
        batch_size: images per batch.
        ladder: hyperprior ladder file for the learned baselines
            (``semcom train-hyperprior``).
        seed: seed of every (system, SNR) evaluation.
        systems: image systems of the :mod:`jscc.systems` registry, one curve each, e.g.
            ``jscc+cddm`` (the shipped ADJSCC + CDDM), ``hevc+ldpc:mcs=9``,
            ``avif+capacity``; a system whose factory takes ``snr_db`` (``jscc+cddm``: the
            stage-3 decoder nearest to it) is built for each SNR unless the spec sets it.
        csi_error_std: std of the receivers' channel-estimate error (0: perfect CSI;
            :class:`phy.ImperfectCSI` for every receiver, analog and digital).
    """

    checkpoint: str | None = None
    data: str = "builtin"
    crop: PositiveInt | None = 64
    channel: str = "awgn"
    snr_db: FloatGrid = FloatGrid((0, 5, 10, 15, 20))
    baselines: Names = Names(DEFAULT_BASELINES)
    mcs: IntGrid = IntGrid((0, 5, 9, 13, 17, 22))
    cbr: float | None = None
    max_images: PositiveInt | None = None
    batch_size: int = 16
    ladder: str | None = None
    seed: int = 0
    systems: Names = field(default_factory=Names)
    csi_error_std: float = 0.0

    def __post_init__(self) -> None:
        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        put("snr_db", FloatGrid.parse(self.snr_db))
        put("mcs", IntGrid.parse(self.mcs))
        put("baselines", expand_baselines(self.baselines))
        put("systems", Names.parse(self.systems))
        for b in self.baselines:
            if b not in BASELINES:
                raise ValueError(f"baselines must be a subset of {list(BASELINES)}, got {b!r}")
        learned = [b for b in self.baselines if b.startswith("learned+")]
        if learned and (self.ladder is None or not Path(self.ladder).is_file()):
            raise ValueError(f"baselines {learned} need ladder= (a file written by "
                             f"semcom train-hyperprior), got {self.ladder!r}")
        eval_channel(self.channel, self.csi_error_std)  # a bad name or error fails here
        self.mcs_list  # noqa: B018 - every index exists
        snrs = [float(v) for v in self.snr_db]
        if not snrs or not all(phy.SNR_DB_MIN <= v <= phy.SNR_DB_MAX for v in snrs):
            raise ValueError(f"snr_db must be non-empty values in [{phy.SNR_DB_MIN:g}, "
                             f"{phy.SNR_DB_MAX:g}] dB, got {snrs}")
        for name in ("crop", "max_images", "batch_size"):
            put(name, optional_positive_int(name, getattr(self, name)))
        if self.checkpoint is None and self.cbr is None:
            raise ValueError("cbr must be given when no checkpoint is evaluated")

    @property
    def mcs_list(self) -> list[phy.MCS]:
        return [phy.MCS.from_index(int(i)) for i in self.mcs]


@dataclass
class EvalImagesResult:
    """The evaluation of an :class:`EvalImagesConfig`.

    Attributes:
        config: what was evaluated.
        cbr: the channel bandwidth ratio (the codec's, or the config's).
        num_images, height, width: the image set (pixels).
        rows: one per (method, SNR, image): ``psnr`` (dB), ``msssim``, ``status`` (``ok`` or
            why the image was not delivered).
    """

    config: EvalImagesConfig
    cbr: float
    num_images: int
    height: int
    width: int
    rows: list[dict] = field(default_factory=list)

    def mean_rows(self) -> list[dict]:
        """:func:`experiments.reporting.eval_images.mean_rows` of :attr:`rows`."""
        return mean_rows(self.rows)


def _separate_runs(cfg: EvalImagesConfig, cbr: float, models: Any
                   ) -> list[tuple[str, Any]]:
    """``(method, baseline)`` of every separate system of ``cfg`` in curve order."""
    out = []
    for src in (*SOURCE_CODECS, "learned"):
        if src == "learned" and models is None:
            continue
        if f"{src}+ldpc" in cfg.baselines:
            for m in cfg.mcs_list:
                ch = eval_channel(cfg.channel, cfg.csi_error_std)
                bl = (SeparateLDPC(ch, m, cbr, source=src)
                      if src != "learned" else _learned_ldpc(ch, m, cbr, models))
                out.append((f"{src}+ldpc/MCS{m.index}", bl))
        if f"{src}+capacity" in cfg.baselines:
            bl = (SeparateCapacity(cbr, source=src) if src != "learned"
                  else _learned_capacity(cbr, models))
            out.append((f"{src}+capacity", bl))
    return out


def evaluate_images(cfg: EvalImagesConfig, images: torch.Tensor, *, codec: Any = None,
                    cbr: float | None = None,
                    analog_systems: Mapping[str, SystemFn] | None = None,
                    previous: Sequence[dict] = (),
                    on_rows: Callable[[list[dict]], Any] | None = None,
                    registry_runs: Mapping[str, Any] | None = None,
                    progress: bool = True) -> EvalImagesResult:
    """Evaluate every system of ``cfg`` at every SNR on ``images`` (``[N, 3, H, W]`` in
    [0, 1]).

    Each (system, SNR) is seeded from ``(seed, system, SNR)``, so its numbers do not depend on
    the others (a resumed run equals an uninterrupted one).

    Args:
        cfg: what to evaluate.
        images: the images.
        codec: the JSCC codec of ``cfg.checkpoint`` when already loaded.
        cbr: the codec's channel bandwidth ratio (default ``cfg.cbr``).
        analog_systems: more ``fn(images, link, snr_db) -> images`` systems, evaluated like
            the codec (one curve each; for recipes built on this one).
        previous: per-image rows of an earlier run; their (method, SNR) are copied.
        on_rows: called with the rows so far after each (system, SNR).
        registry_runs: ``spec -> run`` of ``cfg.systems`` when already built (building one
            loads its models).
        progress: show a progress bar.
    """
    if codec is None and cfg.checkpoint is not None:
        codec, cbr = codec_from_ref(cfg.checkpoint)
    cbr = float(cfg.cbr if cbr is None else cbr)
    models = None
    if any(b.startswith("learned+") for b in cfg.baselines):
        from jscc.baselines.learned import load_ladder

        models = load_ladder(cfg.ladder)
    n_img = int(images.shape[0])
    result = EvalImagesResult(cfg, cbr, n_img, int(images.shape[-2]), int(images.shape[-1]))
    rows = result.rows
    done = {(r["method"], float(r["snr_db"])) for r in previous}
    link = phy.AnalogLink(eval_channel(cfg.channel, cfg.csi_error_std))
    bs = cfg.batch_size

    def analog(fn: SystemFn) -> Callable[[float], tuple[torch.Tensor, None]]:
        def run(s: float) -> tuple[torch.Tensor, None]:
            with torch.no_grad():
                outs = [fn(images[i:i + bs], link, s) for i in range(0, n_img, bs)]
            return torch.cat(outs).clamp(0, 1), None
        return run

    def separate(bl: Any) -> Callable[[float], tuple[torch.Tensor, list[str]]]:
        def run(s: float) -> tuple[torch.Tensor, list[str]]:
            r = bl.transmit(images, s)
            return r.img_hat, list(r.reason)
        return run

    # (method, run(snr) -> (img_hat, status or None)) in the order of the curves
    runs: list[tuple[str, Callable[[float], tuple[torch.Tensor, list[str] | None]]]] = []
    if codec is not None:
        runs.append(("jscc", analog(codec)))
    runs += [(n, analog(fn)) for n, fn in (analog_systems or {}).items()]
    if registry_runs is None:
        registry_runs = _registry_runs(cfg, cbr)
    runs += [(spec, lambda s, reg=reg: reg(images, s)) for spec, reg in registry_runs.items()]
    runs += [(method, separate(bl)) for method, bl in _separate_runs(cfg, cbr, models)]
    snrs = [float(v) for v in cfg.snr_db]
    bar = tqdm(total=n_img * len(runs) * len(snrs), desc="eval-images", unit="image",
               disable=not progress)
    with bar:
        for s in snrs:
            for method, run in runs:
                if (method, s) in done:
                    rows += [_numbers(r) for r in previous
                             if r["method"] == method and float(r["snr_db"]) == s]
                else:
                    phy.set_seed(phy.derived_seed(cfg.seed, method, s))
                    img_hat, status = run(s)
                    p, m = psnr(img_hat, images).tolist(), ms_ssim(img_hat, images).tolist()
                    rows += [{"method": method, "snr_db": s, "image": i, "psnr": pi,
                              "msssim": mi, "status": status[i] if status else "ok"}
                             for i, (pi, mi) in enumerate(zip(p, m, strict=True))]
                    if on_rows is not None:
                        on_rows(rows)
                bar.update(n_img)
    return result


def _registry_runs(cfg: EvalImagesConfig, cbr: float) -> dict[str, _RegistryRun]:
    """``spec -> run`` of every registry image system of ``cfg`` (built, so checked)."""
    return {spec: _RegistryRun(spec, cfg.channel, cfg.csi_error_std, cbr)
            for spec in cfg.systems}


def _numbers(r: dict) -> dict:
    """A per-image row read back from a CSV, with its numbers parsed."""
    return dict(r, snr_db=float(r["snr_db"]), image=int(r["image"]), psnr=float(r["psnr"]),
                msssim=float(r["msssim"]))


def run_eval_images(cfg: EvalImagesConfig | None = None, *, out: str | Path = "results",
                    resume: str | Path | None = None, progress: bool = True,
                    analog_systems: Mapping[str, SystemFn] | None = None,
                    name: str = "eval_images",
                    extra: Callable[[ResultsDir, torch.Tensor], str] | None = None,
                    config_extra: Mapping[str, object] | None = None,
                    **settings: Any) -> ResultsDir:
    """``semcom eval-images``: :func:`evaluate_images` into a results folder.

    Rows go to ``per_image.csv`` after every (system, SNR); ``resume`` (an earlier folder of
    this command) keeps its finished (system, SNR) rows and evaluates only the rest in that
    folder; its settings other than SNRs, baselines and MCSs must match.

    Args:
        cfg: what to evaluate; or give its fields as keywords (``settings``).
        out: root folder of the results.
        resume: an earlier results folder of this command: keep its rows, evaluate the rest.
        progress: show a progress bar.
        analog_systems, name, extra, config_extra: for recipes built on this one: more analog
            systems (:func:`evaluate_images`), the results folder name, ``extra(res, images)``
            run inside the folder before it closes (its markdown is appended to the summary),
            more ``config.yaml`` entries.
    """
    cfg = resolve_config(EvalImagesConfig, cfg, settings)
    codec, cbr = None, cfg.cbr
    if cfg.checkpoint is not None:
        # A Lightning checkpoint holds its hyperparameters as Python objects: load it fully
        # (only open checkpoints you trust); a wrong file gets one clear CheckpointError.
        codec, cbr = codec_from_ref(cfg.checkpoint)
    registry_runs = _registry_runs(cfg, cbr)  # a bad spec fails before any folder
    images = load_images(cfg.data, cfg.crop, cfg.max_images)
    if codec is not None:  # image sizes the codec cannot take fail here, before any folder
        with torch.no_grad():
            codec(images[:1], phy.AnalogLink(eval_channel(cfg.channel, cfg.csi_error_std)),
                  float(cfg.snr_db[0]))
    config = {"checkpoint": cfg.checkpoint, "data": cfg.data, "crop": cfg.crop,
              "channel": cfg.channel, "snr_db": [float(s) for s in cfg.snr_db],
              "baselines": list(cfg.baselines), "mcs": [m.index for m in cfg.mcs_list],
              "cbr": float(cbr), "num_images": int(images.shape[0]),
              "csi_error_std": float(cfg.csi_error_std),
              **({"systems": list(cfg.systems)} if cfg.systems else {}),
              **dict(config_extra or {})}
    previous = _previous_rows(resume)
    if resume is not None:  # continue in place; only the grid may change
        res = ResultsDir.resume(resume, name, config, cfg.seed,
                                extendable=("snr_db", "baselines", "mcs"))
    else:
        res = ResultsDir.create(name, config, cfg.seed, root=out)
    with res:
        result = evaluate_images(  # streamed, row set by row set
            cfg, images, codec=codec, cbr=cbr, analog_systems=analog_systems,
            previous=previous, progress=progress, registry_runs=registry_runs,
            on_rows=lambda rows: res.write_csv("per_image.csv", rows))
        summary = write_eval_images_report(
            result, res, extra_methods=[*(analog_systems or {}), *cfg.systems])
        if extra is not None:
            summary += "\n" + extra(res, images)
        res.write_summary(summary)
    return res
