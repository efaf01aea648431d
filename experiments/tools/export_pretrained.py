"""Turn a trained checkpoint into a shipped model: safetensors weights + a JSON model card.

JSCC codec (``jscc/pretrained/weights/``)::

    semcom export-pretrained --entry adjscc_awgn_cbr1-12 --checkpoint \\
        results/pretrained/adjscc_awgn_cbr1-12/lightning_logs/version_0/checkpoints/last.ckpt \\
        --train_config experiments/configs/pretrained/adjscc_awgn_cbr1-12.yaml \\
        --test_dir ../shared/datasets/cbsd68

(``python -m experiments.tools.export_pretrained`` is the same command; it took
``jscc NAME CHECKPOINT --config CONFIG`` before.)

The card records the training data, the config and the command that reproduces the run, the
optimizer steps, the CPU hours (wall time between the run's ``manifest.json`` and the checkpoint,
times the threads the run used) and a PSNR / MS-SSIM table measured here: on the test folder's
256×256 centre crops and whole images, and on the held-out built-in photos, AWGN or the card's
channel, SNR 0–20 dB. CDDM entries are exported by :mod:`experiments.tools.make_pretrained_cddm`.

:func:`measure_pretrained` turns an :class:`ExportPretrainedConfig` into the weights and card
(:class:`PretrainedExport`); :func:`export_pretrained`, the command, stores them.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

import phy
from experiments.cli import entry_point
from experiments.recipes.config import resolve_config
from experiments.values import Names
from jscc.data import BuiltinPhotosDataset, ImageFolderDataset
from jscc.evaluation import evaluate_codec
from jscc.pretrained import store as jscc_store
from phy.sweep import make_channel

__all__ = ["ExportPretrainedConfig", "PretrainedExport", "card_results", "export_pretrained",
           "main", "measure_pretrained", "run_facts"]

#: SNRs (dB) of the tables in the model cards.
CARD_SNRS_DB: tuple[float, ...] = (0.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 14.0, 16.0, 18.0, 20.0)


def run_facts(checkpoint: Path, threads: int | None = None) -> dict[str, Any]:
    """Steps, wall time and CPU hours of the Lightning run that wrote ``checkpoint``.

    The wall time runs from the run's ``manifest.json`` (written when ``fit`` starts) to the
    checkpoint file; CPU hours = wall hours × threads (the run's ``torch_num_threads`` from the
    manifest, or ``threads``). A resumed run writes a new manifest, so resumed runs count from
    their last start only: pass the full figure by hand then.
    """
    from jscc.checkpoints import read_checkpoint

    ck = read_checkpoint(checkpoint)
    run_dir = checkpoint.parent.parent
    manifest_path = run_dir / "manifest.json"
    facts: dict[str, Any] = {"steps": int(ck.get("global_step", 0)),
                             "epochs": int(ck.get("epoch", 0))}
    if manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text())
        wall_s = checkpoint.stat().st_mtime - manifest_path.stat().st_mtime
        n = threads or manifest.get("torch_num_threads")
        facts.update(wall_hours=round(wall_s / 3600, 3), threads=n,
                     cpu_hours=round(wall_s / 3600 * n, 3) if n else None,
                     versions=manifest.get("versions"), git_revision=manifest.get("git_revision"))
    return facts


def _whole_images(folder: str) -> list[torch.Tensor]:
    ds = ImageFolderDataset(folder, crop=None, train=False)
    return [ds[i] for i in range(len(ds))]


def card_results(codec: torch.nn.Module, channel: str, test_dir: str | None,
                 snrs: Sequence[float] = CARD_SNRS_DB, seed: int = 0,
                 transmit: Any = None, progress: bool = False) -> dict[str, Any]:
    """The PSNR tables of a model card (see the module docstring)."""
    link = phy.AnalogLink(make_channel(channel))
    fn = transmit or codec.transmit
    multiple = int(getattr(codec, "downsampling", 4))  # whole images padded to the latent grid
    sets: dict[str, Any] = {}
    builtin = BuiltinPhotosDataset(crop=128, train=False)
    sets["builtin_heldout_128"] = ("held-out built-in photos (astronaut, coffee, flower), "
                                   "128x128 grid crops",
                                   torch.stack([builtin[i] for i in range(len(builtin))]))
    if test_dir is not None:
        crops = ImageFolderDataset(test_dir, crop=256, train=False)
        name = Path(test_dir).name
        sets[f"{name}_256"] = (f"{name}, 256x256 centre crops",
                               torch.stack([crops[i] for i in range(len(crops))]))
        sets[f"{name}_whole"] = (f"{name}, whole images (reflect-padded to multiples of "
                                 f"{multiple})",
                                 _whole_images(test_dir))
    out: dict[str, Any] = {}
    for key, (desc, imgs) in sets.items():
        n = len(imgs)
        with tqdm(total=n * len(snrs), desc=key, leave=False, disable=not progress) as bar:
            scores = evaluate_codec(fn, imgs, link, snrs, seed=seed, multiple=multiple,
                                    progress=bar.update)
        out[key] = {"images": desc, "num_images": n, "channel": channel,
                    "snr_db": [s.snr_db for s in scores],
                    "psnr": [round(s.psnr, 3) for s in scores],
                    "msssim": [round(s.msssim, 4) for s in scores]}
    return out


def _training_facts(checkpoint: Path, config: str, threads: int | None,
                    earlier: list[tuple[Path, str]]) -> dict[str, Any]:
    """Facts of the final run, and of the earlier stages it was initialized from (their steps
    and CPU hours are added up; every stage's command is listed in order)."""
    stages = [(c, cfg) for c, cfg in earlier] + [(checkpoint, config)]
    facts = [dict(run_facts(c, threads), config=cfg) for c, cfg in stages]
    out = dict(facts[-1])
    if len(facts) > 1:
        out["steps"] = sum(f["steps"] for f in facts)
        hours = [f.get("cpu_hours") for f in facts]
        out["cpu_hours"] = round(sum(hours), 3) if None not in hours else None
        out["stages"] = facts
    out["command"] = " && ".join(f"semcom train-jscc --config {f['config']}" for f in facts)
    return out


#: The training data of the shipped codecs, as their cards say it.
DEFAULT_TRAIN_DATA = ("CSun_Hays80 (80 photos) + the 9 built-in training photos, random 64x64 "
                      "crops with horizontal flips")


@dataclass(frozen=True)
class ExportPretrainedConfig:
    """What ``semcom export-pretrained`` exports (checked when built).

    Attributes:
        entry: entry name, e.g. ``adjscc_awgn_cbr1-12``.
        checkpoint: the run's checkpoint (``last.ckpt``).
        train_config: the config the run was trained with.
        test_dir: test image folder of the card's tables (e.g. CBSD68).
        train_data: the training data, as the card says it.
        threads: threads of the training run, if its manifest does not say.
        earlier: earlier stages the run was initialized from, in order, each
            ``CHECKPOINT=CONFIG``.
        notes: free text for the card.
        half: store the trained parameters as float16 (buffers stay float32).
        default: the entry ``build_codec(..., pretrained=True)`` picks for its codec, CBR and
            channel.
    """

    entry: str
    checkpoint: str
    train_config: str
    test_dir: str | None = None
    train_data: str = DEFAULT_TRAIN_DATA
    threads: int | None = None
    earlier: Names = Names()
    notes: str = ""
    half: bool = False
    default: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.entry, str) or not re.fullmatch(r"[A-Za-z0-9][\w.+-]*",
                                                               self.entry):
            raise ValueError(f"entry must be a name of letters, digits and _.+- (a file name "
                             f"in the store), got {self.entry!r}")
        if not Path(self.checkpoint).is_file():
            raise ValueError(f"checkpoint {self.checkpoint} does not exist")
        if self.test_dir is not None and not Path(self.test_dir).is_dir():
            raise ValueError(f"test_dir {self.test_dir!r} is not a folder")
        if self.threads is not None and (isinstance(self.threads, bool)
                                         or not isinstance(self.threads, int)
                                         or self.threads < 1):
            raise ValueError(f"threads must be None or an int >= 1, got {self.threads!r}")
        earlier = Names.parse(self.earlier)
        object.__setattr__(self, "earlier", earlier)
        for spec in earlier:
            ck, sep, _ = spec.partition("=")
            if not sep:
                raise ValueError(f"earlier takes CHECKPOINT=CONFIG entries, got {spec!r}")
            if not Path(ck).is_file():
                raise ValueError(f"earlier: checkpoint {ck} does not exist")

    def stages(self) -> list[tuple[Path, str]]:
        """``(checkpoint, config)`` of the earlier stages, in order."""
        return [(Path(ck), cfg) for ck, _, cfg in (s.partition("=") for s in self.earlier)]


@dataclass
class PretrainedExport:
    """A :class:`ExportPretrainedConfig`'s entry, measured and ready to store.

    Attributes:
        config: what is exported.
        state_dict: the codec's weights (the trained parameters rounded to float16 with
            ``half``).
        card: the model card (training facts, the PSNR / MS-SSIM tables under ``results``).
        half_keys: the keys stored as float16.
    """

    config: ExportPretrainedConfig
    state_dict: dict[str, torch.Tensor]
    card: dict[str, Any]
    half_keys: list[str]

    @property
    def results(self) -> dict[str, Any]:
        return self.card["results"]


def measure_pretrained(cfg: ExportPretrainedConfig) -> PretrainedExport:
    """Load the :class:`jscc.lightning.JSCCModule` checkpoint of ``cfg``, measure the card's
    tables (with ``half``: with the weights as stored) and build the card (writes nothing)."""
    from jscc.checkpoints import load_jscc_module
    from jscc.models import CODECS

    checkpoint = Path(cfg.checkpoint)
    module = load_jscc_module(checkpoint)
    codec = module.codec.eval()
    half_keys = [k for k, _ in codec.named_parameters()] if cfg.half else []
    if cfg.half:  # measure what ships: the parameters rounded to float16
        with torch.no_grad():
            for p in codec.parameters():
                p.copy_(p.to(torch.float16).float())
    hp = dict(module.hparams)
    codec_name, codec_kwargs = CODECS.split(hp["codec"], hp.get("codec_kwargs"))
    t0 = time.time()
    results = card_results(codec, hp["channel"], cfg.test_dir)
    card = {
        "codec": codec_name, "cbr": float(hp["cbr"]), "channel": hp["channel"],
        "codec_kwargs": codec_kwargs,
        "snr_range_db": list(getattr(codec, "snr_range_db", ()) or []),
        "parameters": sum(p.numel() for p in codec.parameters()),
        "training": {"data": cfg.train_data,
                     "hparams": {k: v for k, v in hp.items() if k != "codec_kwargs"},
                     **_training_facts(checkpoint, cfg.train_config, cfg.threads,
                                       cfg.stages())},
        "results": results,
        "evaluation_seconds": round(time.time() - t0, 1),
        "exported": datetime.now(UTC).isoformat(timespec="seconds"),
        "notes": cfg.notes,
    }
    if cfg.default:
        card["default"] = True
    return PretrainedExport(cfg, codec.state_dict(), json.loads(json.dumps(card, default=str)),
                            half_keys)


def export_pretrained(cfg: ExportPretrainedConfig | None = None, **settings: Any) -> Path:
    """Export a trained JSCC checkpoint as the shipped entry ``entry`` (weights and card, in
    :data:`jscc.pretrained.store`); returns the weights' path and prints the card's PSNR
    tables.

    Args:
        cfg: what to export; or give its fields as keywords (``settings``).
    """
    cfg = resolve_config(ExportPretrainedConfig, cfg, settings)
    export = measure_pretrained(cfg)
    path = jscc_store.save(cfg.entry, export.state_dict, export.card, half=export.half_keys)
    card = jscc_store.card(cfg.entry)
    print(f"wrote {path} and its card")
    for key, r in card["results"].items():
        print(key, " ".join(f"{s:g}:{v:.2f}" for s, v in zip(r["snr_db"], r["psnr"],
                                                             strict=True)))
    return path


#: ``python -m experiments.tools.export_pretrained``: ``semcom export-pretrained``
main = entry_point("export-pretrained")


if __name__ == "__main__":
    raise SystemExit(main())
