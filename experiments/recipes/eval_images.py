"""``semcom eval-images``: PSNR/MS-SSIM vs SNR of a JSCC checkpoint against the digital chain.

For every SNR: the JSCC codec through :class:`phy.AnalogLink` on the chosen channel; JPEG2000 +
5G LDPC at each MCS (the "cliff" curves) and their envelope (best MCS per SNR, chosen on the
mean PSNR); JPEG2000 with an ideal capacity-achieving code (the separation bound). All at the
codec's channel bandwidth ratio. Writes ``per_image.csv``, ``mean.csv``, ``psnr_vs_snr.png`` and
``summary.md`` into a results folder.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
from tqdm.auto import tqdm

import phy
from experiments.reporting.plots import finish_axes
from experiments.reporting.results import ResultsDir, read_csv_rows
from experiments.values import FloatGrid, IntGrid, Names, PositiveInt
from jscc.baselines import SOURCE_CODECS, SeparateCapacity, SeparateLDPC, best_mcs_envelope
from jscc.data import BuiltinPhotosDataset, ImageFolderDataset
from jscc.metrics import ms_ssim, psnr
from jscc.pretrained import codec_from_ref
from phy.memo import Memo
from phy.sweep import make_channel

__all__ = ["BASELINES", "CODEC_BASELINES", "DEFAULT_BASELINES", "load_images", "run_eval_images"]

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


def _metrics(img_hat: torch.Tensor, img: torch.Tensor) -> tuple[list[float], list[float]]:
    return psnr(img_hat, img).tolist(), ms_ssim(img_hat, img).tolist()


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


def run_eval_images(*, checkpoint: str | None = None, data: str = "builtin",
                    crop: PositiveInt | None = 64, channel: str = "awgn",
                    snr_db: FloatGrid = FloatGrid((0, 5, 10, 15, 20)),
                    baselines: Names = Names(DEFAULT_BASELINES),
                    mcs: IntGrid = IntGrid((0, 5, 9, 13, 17, 22)),
                    cbr: float | None = None, max_images: PositiveInt | None = None,
                    batch_size: int = 16,
                    ladder: str | None = None,
                    seed: int = 0, out: str | Path = "results", progress: bool = True,
                    systems: Names = Names(),
                    analog_systems: Mapping[str, SystemFn] | None = None,
                    name: str = "eval_images",
                    extra: Callable[[ResultsDir, torch.Tensor], str] | None = None,
                    config_extra: Mapping[str, object] | None = None,
                    resume: str | Path | None = None,
                    csi_error_std: float = 0.0) -> ResultsDir:
    """Evaluate and write the results folder (see the module docstring).

    ``analog_systems`` adds image transmission systems evaluated like the JSCC checkpoint
    (``fn(images, link, snr_db) -> images``, one curve each); ``extra(res, images)`` runs inside
    the results folder before it is closed and returns markdown appended to the summary.
    Rows go to ``per_image.csv`` after every (system, SNR); ``resume`` (an earlier folder of
    this command) keeps its finished (system, SNR) rows and evaluates only the rest in that
    folder, each seeded from ``(seed, system, SNR)`` so the numbers are those of one
    uninterrupted run; its settings other than SNRs, baselines and MCSs must match.
    ``csi_error_std`` > 0 gives every receiver (analog and digital) an estimate of ``h`` with
    that error (:class:`phy.ImperfectCSI`).

    Args:
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
        out: root folder of the results.
        progress: show a progress bar.
        systems: image systems of the :mod:`jscc.systems` registry, one curve each, e.g.
            ``jscc+cddm`` (the shipped ADJSCC + CDDM), ``hevc+ldpc:mcs=9``,
            ``avif+capacity``; a system whose factory takes ``snr_db`` (``jscc+cddm``: the
            stage-3 decoder nearest to it) is built for each SNR unless the spec sets it.
        analog_systems, name, extra, config_extra: for other recipes built on this one.
        resume: an earlier results folder of this command: keep its rows, evaluate the rest.
        csi_error_std: std of the receivers' channel-estimate error (0: perfect CSI).
    """
    snr_db, mcs = FloatGrid.parse(snr_db), IntGrid.parse(mcs)
    baselines = expand_baselines(baselines)
    for b in baselines:
        if b not in BASELINES:
            raise ValueError(f"baselines must be a subset of {list(BASELINES)}, got {b!r}")
    codec = None
    if checkpoint is not None:
        # A Lightning checkpoint holds its hyperparameters as Python objects: load it fully
        # (only open checkpoints you trust); a wrong file gets one clear CheckpointError.
        codec, cbr = codec_from_ref(checkpoint)
    if cbr is None:
        raise ValueError("cbr must be given when no checkpoint is evaluated")
    learned = [b for b in baselines if b.startswith("learned+")]
    models = None
    if learned:
        if ladder is None or not Path(ladder).is_file():
            raise ValueError(f"baselines {learned} need ladder= (a file written by "
                             f"semcom train-hyperprior), got {ladder!r}")
        from jscc.baselines.learned import load_ladder

        models = load_ladder(ladder)
    eval_channel(channel, csi_error_std)  # fail fast on a bad name or error
    systems = list(Names.parse(systems))
    registry_runs = [(spec, _RegistryRun(spec, channel, csi_error_std, cbr))  # fail fast too
                     for spec in systems]
    mcs_list = [phy.MCS.from_index(int(i)) for i in mcs]
    images = load_images(data, crop, max_images)
    config = {"checkpoint": checkpoint, "data": data, "crop": crop, "channel": channel,
              "snr_db": [float(s) for s in snr_db], "baselines": list(baselines),
              "mcs": [m.index for m in mcs_list], "cbr": float(cbr),
              "num_images": int(images.shape[0]), "csi_error_std": float(csi_error_std),
              **({"systems": systems} if systems else {}), **dict(config_extra or {})}
    previous = _previous_rows(resume)
    snrs = [float(v) for v in snr_db]
    if not snrs or not all(phy.SNR_DB_MIN <= v <= phy.SNR_DB_MAX for v in snrs):
        raise ValueError(f"snr_db must be non-empty values in [{phy.SNR_DB_MIN:g}, "
                         f"{phy.SNR_DB_MAX:g}] dB, got {snrs}")
    if codec is not None:  # image sizes the codec cannot take fail here, before any folder
        with torch.no_grad():
            codec(images[:1], phy.AnalogLink(eval_channel(channel, csi_error_std)), snrs[0])
    if resume is not None:  # continue in place; only the grid may change
        res = ResultsDir.resume(resume, name, config, seed,
                                extendable=("snr_db", "baselines", "mcs"))
    else:
        res = ResultsDir.create(name, config, seed, root=out)
    rows: list[dict] = []
    done = {(r["method"], float(r["snr_db"])) for r in previous}
    n_img = int(images.shape[0])

    def add(method: str, s: float, p: list[float], m: list[float], extra: list[str] | None = None):
        for i, (pi, mi) in enumerate(zip(p, m, strict=True)):
            rows.append({"method": method, "snr_db": s, "image": i, "psnr": pi, "msssim": mi,
                         "status": extra[i] if extra else "ok"})

    with res:
        link = phy.AnalogLink(eval_channel(channel, csi_error_std))
        # (method, run(snr) -> (img_hat, status or None)) in the order of the curves
        runs: list[tuple[str, Callable[[float], tuple[torch.Tensor, list[str] | None]]]] = []

        def analog(fn: SystemFn) -> Callable[[float], tuple[torch.Tensor, None]]:
            def run(s: float) -> tuple[torch.Tensor, None]:
                with torch.no_grad():
                    outs = [fn(images[i:i + batch_size], link, s)
                            for i in range(0, n_img, batch_size)]
                return torch.cat(outs).clamp(0, 1), None
            return run

        def separate(bl: Any) -> Callable[[float], tuple[torch.Tensor, list[str]]]:
            def run(s: float) -> tuple[torch.Tensor, list[str]]:
                r = bl.transmit(images, s)
                return r.img_hat, list(r.reason)
            return run

        if codec is not None:
            runs.append(("jscc", analog(codec)))
        runs += [(n, analog(fn)) for n, fn in (analog_systems or {}).items()]
        runs += [(spec, lambda s, run=run: run(images, s)) for spec, run in registry_runs]
        sources = [*SOURCE_CODECS, "learned"]
        for src in sources:
            if f"{src}+ldpc" in baselines and (src != "learned" or models is not None):
                for m in mcs_list:
                    ch = eval_channel(channel, csi_error_std)
                    bl = (SeparateLDPC(ch, m, cbr, source=src)
                          if src != "learned" else _learned_ldpc(ch, m, cbr, models))
                    runs.append((f"{src}+ldpc/MCS{m.index}", separate(bl)))
            if f"{src}+capacity" in baselines and (src != "learned" or models is not None):
                bl = (SeparateCapacity(cbr, source=src) if src != "learned"
                      else _learned_capacity(cbr, models))
                runs.append((f"{src}+capacity", separate(bl)))
        bar = tqdm(total=n_img * len(runs) * len(snrs), desc="eval-images", unit="image",
                   disable=not progress)
        with bar:
            for s in snrs:
                for method, run in runs:
                    if (method, s) in done:
                        rows += [r for r in previous
                                 if r["method"] == method and float(r["snr_db"]) == s]
                    else:
                        # each (method, SNR) draws its own noise: a resumed run gives the
                        # numbers of an uninterrupted one
                        phy.set_seed(phy.derived_seed(seed, method, s))
                        img_hat, status = run(s)
                        add(method, s, *_metrics(img_hat, images), status)
                        res.write_csv("per_image.csv", rows)  # streamed, row set by row set
                    bar.update(n_img)
        for r in rows:  # resumed rows are text
            r.update(snr_db=float(r["snr_db"]), image=int(r["image"]), psnr=float(r["psnr"]),
                     msssim=float(r["msssim"]))
        res.write_csv("per_image.csv", rows)
        mean_rows = _means(rows)
        res.write_csv("mean.csv", mean_rows)
        fig = _plot(mean_rows, f"{channel}, CBR {cbr:.4f}, {images.shape[0]} images "
                    f"{images.shape[-2]}x{images.shape[-1]}")
        res.save_figure(fig, "psnr_vs_snr.png")
        plt.close(fig)
        summary = _summary(mean_rows, config,
                           extra_methods=[*(analog_systems or {}), *systems])
        if extra is not None:
            summary += "\n" + extra(res, images)
        res.write_summary(summary)
    return res


def _means(rows: list[dict]) -> list[dict]:
    groups: dict[tuple[str, float], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["method"], r["snr_db"]), []).append(r)
    out = []
    for (method, s), g in groups.items():
        out.append({"method": method, "snr_db": s,
                    "psnr": sum(r["psnr"] for r in g) / len(g),
                    "msssim": sum(r["msssim"] for r in g) / len(g),
                    "delivered": sum(r["status"] == "ok" for r in g) / len(g)})
    # envelope over MCSs: best mean PSNR per SNR, per source codec
    for family in sorted({r["method"].split("/")[0] for r in out if "+ldpc/" in r["method"]}):
        for s in sorted({r["snr_db"] for r in out}):
            cands = [r for r in out if r["snr_db"] == s and r["method"].startswith(family + "/")
                     and r["method"] != family + "/best-mcs"]
            if cands:
                choice = best_mcs_envelope({r["method"]: r["psnr"] for r in cands})
                best = next(r for r in cands if r["method"] == choice.key)
                out.append({"method": f"{family}/best-mcs", "snr_db": s, "psnr": best["psnr"],
                            "msssim": best["msssim"], "delivered": best["delivered"],
                            "best": best["method"].split("/")[1]})
    return out


#: Colour and marker of each source codec's curves, and its name in legends.
_SOURCE_STYLE = {"jpeg2000": ("k", "s"), "hevc": ("C0", "o"), "avif": ("C1", "D"),
                 "learned": ("C2", "^")}
_SOURCE_LABEL = {"jpeg2000": "JPEG2000", "hevc": "HEVC (BPG-class)", "avif": "AVIF",
                 "learned": "hyperprior"}


def _plot(mean_rows: list[dict], title: str) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    methods = list(dict.fromkeys(r["method"] for r in mean_rows))
    for m in methods:
        sel = sorted((r for r in mean_rows if r["method"] == m), key=lambda r: r["snr_db"])
        x = [r["snr_db"] for r in sel]
        y = [r["psnr"] for r in sel]
        if m == "jscc":
            ax.plot(x, y, "o-", lw=2.2, color="C3", label="JSCC (analog)")
        elif m.startswith("jscc+"):
            label = m.replace("jscc+", "JSCC + ").replace("cddm", "CDDM")
            ax.plot(x, y, "D-", lw=1.8, label=label.replace("+redecoder", ", re-trained decoder"))
        elif m.endswith("+ldpc/best-mcs") or m.endswith("+capacity"):
            src = m.split("+")[0]
            color, marker = _SOURCE_STYLE.get(src, ("C4", "v"))
            name = _SOURCE_LABEL.get(src, src)
            if m.endswith("/best-mcs"):
                ax.step(x, y, where="post", lw=2, color=color, label=f"{name}+LDPC, best MCS")
                ax.plot(x, y, marker, color=color, ms=4)
            else:
                ax.plot(x, y, ":", lw=1.5, color=color, label=f"{name} + capacity")
        else:
            ax.step(x, y, "--", where="post", lw=0.9, alpha=0.7, label=m)
    finish_axes(ax, "SNR $E_s/N_0$ (dB)", "PSNR (dB)", title, title_size=9,
                legend={"fontsize": 7, "ncol": 2})
    fig.tight_layout()
    return fig


def _summary(mean_rows: list[dict], config: dict, extra_methods: Sequence[str] = ()) -> str:
    snrs = sorted({r["snr_db"] for r in mean_rows})
    sources = [*SOURCE_CODECS, "learned"]
    separate = [m for src in sources for m in (f"{src}+ldpc/best-mcs", f"{src}+capacity")]
    methods = [m for m in ("jscc", *extra_methods, *separate)
               if any(r["method"] == m for r in mean_rows)]
    lines = ["# Image transmission: mean PSNR (dB)", "",
             f"channel `{config['channel']}`, CBR {config['cbr']:.4f}, "
             f"{config['num_images']} images from `{config['data']}`", "",
             "| SNR (dB) | " + " | ".join(methods) + " |", "|---" * (len(methods) + 1) + "|"]
    for s in snrs:
        vals = []
        for m in methods:
            r = next((r for r in mean_rows if r["method"] == m and r["snr_db"] == s), None)
            v = "n/a" if r is None or not math.isfinite(r["psnr"]) else f"{r['psnr']:.2f}"
            if m.endswith("/best-mcs") and r is not None:
                v += f" ({r['best']})"
            vals.append(v)
        lines.append(f"| {s:g} | " + " | ".join(vals) + " |")
    return "\n".join(lines) + "\n"
