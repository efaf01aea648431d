"""The CDDMs shipped with the package, each for one shipped JSCC codec, and their stage-3
decoders.

Files (safetensors + JSON card, see :class:`jscc.pretrained.WeightStore`):

* ``cddm/pretrained_weights/<name>``: the stage-2 noise predictor (EMA weights). Its card
  names the JSCC entry it belongs to (``"jscc"``), the network (``"net"``, ``"net_kwargs"``),
  the schedule (``"T"``), the sampler settings and the stage-3 decoders (``"decoders"``: SNR
  in dB → entry).
* ``cddm/pretrained_weights/decoders/<name>``: the codec's decoder re-trained with that CDDM
  in the loop at one SNR (``"snr_db"``); only the ``decoder.*`` weights are stored.

:meth:`cddm.pipeline.JSCCWithCDDM.from_pretrained` assembles encoder + CDDM + the stage-3
decoder nearest to the SNR. Nothing is downloaded.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

from torch import nn

from jscc import pretrained as jscc_pretrained
from jscc.pretrained import WeightStore

from .nets import build_net
from .sampler import CDDMSampler
from .schedule import CDDMSchedule

__all__ = ["available", "decoders", "find", "load_decoder", "load_sampler",
           "nearest_decoder_snr", "store"]

_ROOT = Path(__file__).parent / "pretrained_weights"
#: Stage-2 CDDM entries.
store = WeightStore(_ROOT, kind="cddm")
#: Stage-3 decoder entries.
decoders = WeightStore(_ROOT / "decoders", kind="cddm-decoder")


def available() -> dict[str, dict[str, Any]]:
    """Every shipped CDDM: name → model card."""
    return store.available()


def find(codec: str, cbr: float, channel: str = "awgn") -> str:
    """The CDDM entry for the shipped ``codec`` at ``cbr`` on ``channel``."""
    jscc_name = jscc_pretrained.find(codec, cbr, channel)
    for name, c in available().items():
        if c.get("jscc") == jscc_name and c.get("channel") == channel:
            return name
    raise ValueError(f"no pretrained CDDM for {jscc_name!r} on channel={channel!r}; shipped: "
                     f"{[(n, c.get('jscc'), c.get('channel')) for n, c in available().items()]}")


def load_sampler(name: str, **overrides: Any) -> CDDMSampler:
    """The sampler of CDDM entry ``name`` (network in eval mode; ``overrides`` change the
    sampler settings of the card)."""
    c = store.card(name)
    net = build_net(c["net"], tuple(c["latent_shape"]), T=int(c["T"]), **c.get("net_kwargs", {}))
    sd = store.state_dict(name)
    net.load_state_dict(sd)
    settings = dict(c.get("sampler", {}))
    settings.update(overrides)
    return CDDMSampler(net.eval(), CDDMSchedule(T=int(c["T"])), **settings)


def nearest_decoder_snr(name: str, snr_db: float) -> float:
    """The SNR (dB) of the stage-3 decoder of CDDM entry ``name`` nearest to ``snr_db``
    (ties go to the lower SNR)."""
    snrs = [float(k) for k in store.card(name).get("decoders", {})]
    if not snrs:
        raise ValueError(f"pretrained CDDM {name!r} ships no stage-3 decoder")
    if not math.isfinite(float(snr_db)):
        raise ValueError(f"snr_db must be finite, got {snr_db!r}")
    return min(snrs, key=lambda s: (abs(s - float(snr_db)), s))


def load_decoder(name: str, snr_db: float) -> tuple[nn.Module, float]:
    """The stage-3 decoder of CDDM entry ``name`` nearest to ``snr_db``: a copy of the codec
    with the re-trained decoder weights, and the SNR (dB) it was trained at."""
    c = store.card(name)
    table = {float(k): v for k, v in c.get("decoders", {}).items()}
    nearest = nearest_decoder_snr(name, snr_db)
    codec = copy.deepcopy(jscc_pretrained.load_codec(c["jscc"]))
    sd = decoders.state_dict(table[nearest])
    missing, unexpected = codec.load_state_dict(sd, strict=False)
    if unexpected or any(k.startswith("decoder.") for k in missing):
        raise ValueError(f"decoder entry {table[nearest]!r} does not fit {c['jscc']!r}")
    return codec.eval(), nearest
