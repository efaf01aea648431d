"""Trained models that ship inside the package: safetensors weights and a JSON model card.

Every entry is a pair of files in ``jscc/pretrained/weights/``: ``<name>.safetensors`` (the
weights: float32, or float16 for the parameters of entries exported with ``half``, which
halves the package's size; buffers such as GDN's pedestals stay float32, and every float16
tensor is returned as float32) and ``<name>.json`` (the model card). Loading never touches the
network.

The card says what the model is and how it was made::

    {"name": "adjscc_awgn_cbr1-12", "kind": "jscc",
     "codec": "adjscc", "cbr": 0.0833, "channel": "awgn", "codec_kwargs": {...},
     "training": {"data": ..., "config": ..., "steps": ..., "cpu_hours": ..., "command": ...},
     "results": {"cbsd68_256": {"snr_db": [...], "psnr": [...]}, ...},
     "sha256": "<of the safetensors file>"}

``available()`` lists every entry with its card; ``build_codec(name, cbr=..., pretrained=True,
channel=...)`` (:mod:`jscc.models.registry`) and :func:`load_codec` load one. Where several
entries share ``(codec, cbr, channel)``, the one whose card says ``"default": true`` is
the one :func:`find` returns; the others are loaded by name. Other packages
(``cddm``) keep their own entries with :class:`WeightStore`.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

__all__ = ["PRETRAINED_PREFIX", "WeightStore", "available", "card", "codec_from_ref", "find",
           "load_codec", "store"]

#: A codec reference of the form ``"pretrained:<name>"`` names a shipped entry; any other
#: reference is a :class:`jscc.lightning.JSCCModule` checkpoint path.
PRETRAINED_PREFIX = "pretrained:"

#: Format version of the cards written by ``semcom export-pretrained``.
CARD_VERSION = 1


class WeightStore:
    """A folder of ``<name>.safetensors`` + ``<name>.json`` pairs.

    Args:
        root: the folder.
        kind: the ``"kind"`` every card in it must have (``"jscc"``, ``"cddm"``, ...).
    """

    def __init__(self, root: str | Path, kind: str) -> None:
        self.root = Path(root)
        self.kind = kind

    def names(self) -> list[str]:
        """Entry names (the cards present), sorted."""
        if not self.root.is_dir():
            return []
        return sorted(p.stem for p in self.root.glob("*.json"))

    def card(self, name: str) -> dict[str, Any]:
        """The model card of ``name`` (a dict; ValueError for an unknown name)."""
        path = self.root / f"{name}.json"
        if not path.is_file():
            raise ValueError(f"no pretrained {self.kind} model named {name!r}; available: "
                             f"{self.names()}")
        try:
            c = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ValueError(f"model card {path} is not readable JSON: {e}") from e
        if c.get("kind") != self.kind:
            raise ValueError(f"model card {path} is of kind {c.get('kind')!r}, expected "
                             f"{self.kind!r}")
        return c

    def available(self) -> dict[str, dict[str, Any]]:
        """Every entry: name → model card."""
        return {n: self.card(n) for n in self.names()}

    def weights_path(self, name: str) -> Path:
        return self.root / f"{name}.safetensors"

    def state_dict(self, name: str, verify: bool = True) -> dict[str, torch.Tensor]:
        """The weights of ``name``; ``verify`` checks them against the card's SHA-256."""
        from ..checkpoints import read_safetensors

        c = self.card(name)
        path = self.weights_path(name)
        if not path.is_file():
            raise ValueError(f"pretrained {self.kind} model {name!r}: weights file {path} is "
                             "missing (the package was installed without its data files?)")
        if verify and "sha256" in c:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            if digest != c["sha256"]:
                raise ValueError(f"weights file {path} does not match its model card "
                                 f"(sha256 {digest[:12]}…, card says {c['sha256'][:12]}…)")
        sd = read_safetensors(path, f"the weights of pretrained {self.kind} model {name!r}")
        return {k: v.float() if v.dtype == torch.float16 else v for k, v in sd.items()}

    def save(self, name: str, state_dict: Mapping[str, torch.Tensor],
             card: Mapping[str, Any], half: Iterable[str] = ()) -> Path:
        """Write ``<name>.safetensors`` and ``<name>.json`` (card completed with name, kind,
        format version, the number of float16 tensors and SHA-256); both are written to
        temporary files first. ``half``: keys stored as float16 (trained parameters; keep
        buffers such as GDN's 2^-36 pedestal, which float16 flushes to 0, in float32)."""
        from safetensors.torch import save_file

        half = set(half)
        unknown = half - set(state_dict)
        if unknown:
            raise ValueError(f"half names keys that are not in the state dict: "
                             f"{sorted(unknown)[:3]}")
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.weights_path(name)
        tmp = path.with_suffix(".safetensors.tmp")
        tensors = {}
        for k, v in state_dict.items():
            v = v.detach().to("cpu").contiguous()
            if k in half:
                if not v.is_floating_point():
                    raise ValueError(f"half: {k!r} is {v.dtype}, not a float tensor")
                v = v.to(torch.float16)
                if not torch.isfinite(v).all():
                    raise ValueError(f"half: {k!r} overflows float16 (|x| > 65504)")
            tensors[k] = v
        save_file(tensors, str(tmp), metadata={"kind": self.kind, "name": name})
        tmp.chmod(0o644)  # readable by everyone, like the package's other data files
        tmp.replace(path)
        full = {"name": name, "kind": self.kind, "card_version": CARD_VERSION, **card,
                "float16_tensors": len(half),
                "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
        cpath = self.root / f"{name}.json"
        ctmp = cpath.with_suffix(".json.tmp")
        ctmp.write_text(json.dumps(full, indent=2) + "\n")
        ctmp.replace(cpath)
        return path


#: The JSCC codecs shipped with the package.
store = WeightStore(Path(__file__).parent / "weights", kind="jscc")


def available() -> dict[str, dict[str, Any]]:
    """Every shipped JSCC codec: name → model card (training data, config, steps, CPU hours,
    PSNR table, the command that reproduces it)."""
    return store.available()


def card(name: str) -> dict[str, Any]:
    """The model card of one shipped codec."""
    return store.card(name)


def find(codec: str, cbr: float, channel: str = "awgn") -> str:
    """The entry name of the shipped ``codec`` at ``cbr`` for ``channel``.

    Raises:
        ValueError: nothing matches; the message lists what is shipped.
    """
    cards = available()
    matches = [name for name, c in cards.items()
               if c.get("codec") == codec and c.get("channel") == channel
               and math.isclose(float(c.get("cbr", -1)), float(cbr), rel_tol=1e-6)]
    if matches:
        # the card marked default first, then by name
        return min(matches, key=lambda n: (not cards[n].get("default", False), n))
    shipped = [f"{c.get('codec')} cbr={c.get('cbr'):.4g} channel={c.get('channel')}"
               for c in cards.values()]
    raise ValueError(f"no pretrained {codec!r} at cbr={cbr:.4g} for channel={channel!r}; "
                     f"shipped: {shipped or 'none'}")


def load_codec(name: str) -> torch.nn.Module:
    """Build the codec of entry ``name`` and load its weights (eval mode, CPU)."""
    from ..models.registry import build_codec

    c = card(name)
    codec = build_codec(c["codec"], cbr=float(c["cbr"]), **c.get("codec_kwargs", {}))
    sd = store.state_dict(name)
    missing, unexpected = codec.load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise ValueError(f"pretrained {name!r} does not fit {c['codec']} with "
                         f"{c.get('codec_kwargs', {})}: missing {missing[:3]}, unexpected "
                         f"{unexpected[:3]}")
    return codec.eval()


def codec_from_ref(ref: str) -> tuple[torch.nn.Module, float]:
    """``(codec in eval mode, cbr)`` from ``"pretrained:<name>"`` or a JSCC checkpoint path."""
    ref = str(ref)
    if ref.startswith(PRETRAINED_PREFIX):
        name = ref[len(PRETRAINED_PREFIX):]
        return load_codec(name), float(card(name)["cbr"])
    from ..checkpoints import load_jscc_module

    module = load_jscc_module(ref)
    return module.codec.eval(), float(module.hparams.cbr)
