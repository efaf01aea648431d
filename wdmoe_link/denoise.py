"""A 1-D CDDM that denoises MoE hidden states received over the analog link.

The network and sampler are :mod:`cddm`'s (:class:`cddm.nets.MLPDenoiser`,
:class:`cddm.sampler.CDDMSampler`); this module only stores a trained predictor for one model's
hidden states and plugs it into :class:`~wdmoe_link.transports.AnalogTransport` as
``"analog+cddm"``. The predictor is trained by
``semcom train-hidden-cddm`` on the expert inputs and outputs the model
itself produces (both directions of the link), per row power-normalized exactly as
:class:`phy.AnalogLink` sends them.

File format: ``<dir>/cddm.safetensors`` (the EMA weights) and ``<dir>/cddm.json`` (the
network's ``config`` and the sampler settings). The shipped tiny model's predictor lives in
``wdmoe_link/data/tiny_moe/``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import save_file

import phy
from phy.channels import snr_db_to_no

from .transports import register_denoiser

if TYPE_CHECKING:  # cddm (and jscc below it) load only when a hidden-state CDDM does
    from cddm import CDDMSampler

__all__ = ["HiddenStateCDDM", "load_hidden_cddm", "save_hidden_cddm"]

WEIGHTS, META = "cddm.safetensors", "cddm.json"


class HiddenStateCDDM:
    """Callable denoiser for AnalogTransport: ``(x_hat [n, D], snr_db) -> x [n, D]``.

    When the transport hands over the link's result (:meth:`denoise_result`) the sampler
    works in the power-normalized domain it was trained in, with the per-row scale the
    receiver knows as side information.
    """

    name = "cddm"

    def __init__(self, sampler: CDDMSampler, hidden_size: int) -> None:
        self.sampler = sampler
        self.hidden_size = int(hidden_size)

    def _check(self, x: torch.Tensor) -> None:
        if x.dim() != 2 or x.shape[1] != self.hidden_size:
            raise ValueError(f"this CDDM was trained on hidden states of size {self.hidden_size}"
                             f", got rows of shape {tuple(x.shape)}")

    def denoise_result(self, r: phy.AnalogResult, snr_db: float) -> torch.Tensor:
        """Denoise an AnalogLink result (rows in their own scale)."""
        self._check(r.z_hat)
        if r.z_hat.shape[0] == 0:
            return r.z_hat
        return self.sampler.denoise_result(r, snr_db).to(r.z_hat.dtype)

    def __call__(self, x_hat: torch.Tensor, snr_db: float) -> torch.Tensor:
        """Without the link result: normalize each row by its own received power."""
        self._check(x_hat)
        if x_hat.shape[0] == 0:
            return x_hat
        no = float(snr_db_to_no(float(snr_db)))
        # AWGN + MMSE: a unit-energy symbol arrives with E|x_hat|^2 = 1 / (1 + no), i.e. a
        # mean square of scale^2 / (2 (1 + no)) per real element.
        ms = x_hat.float().square().mean(dim=1, keepdim=True)
        scale = (2.0 * (1.0 + no) * ms).sqrt().clamp_min(1e-12)
        out = self.sampler.denoise(x_hat.float() / scale, None, snr_db)
        return (out * scale).to(x_hat.dtype)


def save_hidden_cddm(directory: str | Path, net: torch.nn.Module,
                     sampler_settings: dict[str, Any], info: dict[str, Any] | None = None) -> None:
    """Write ``cddm.safetensors`` and ``cddm.json`` into ``directory``."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in net.state_dict().items()}
    tmp = d / (WEIGHTS + ".tmp")
    save_file(state, str(tmp))
    tmp.replace(d / WEIGHTS)
    meta = {"net": net.config, "sampler": sampler_settings, "info": info or {}}
    tmp = d / (META + ".tmp")
    tmp.write_text(json.dumps(meta, indent=2))
    tmp.replace(d / META)


def load_hidden_cddm(directory: str | Path | None = None, **sampler_overrides: Any
                     ) -> HiddenStateCDDM:
    """Load a hidden-state CDDM (default: the shipped tiny model's)."""
    if directory is None:
        from .tiny import TINY_DIR

        directory = TINY_DIR
    d = Path(directory)
    if not (d / WEIGHTS).is_file() or not (d / META).is_file():
        raise ValueError(f"no hidden-state CDDM in {str(d)!r} (needs {WEIGHTS} and {META}; "
                         f"train one with semcom train-hidden-cddm)")
    from cddm import CDDMSampler, CDDMSchedule, net_from_config
    from jscc.checkpoints import read_safetensors

    try:
        meta = json.loads((d / META).read_text())
        net = net_from_config(meta["net"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{d / META} is not a hidden-state CDDM description ({e}); expected "
                         f"the JSON written by save_hidden_cddm") from None
    state = read_safetensors(d / WEIGHTS, "the weights of a hidden-state CDDM")
    try:
        net.load_state_dict(state, strict=False)
    except RuntimeError as e:
        raise ValueError(f"{d / WEIGHTS} does not fit the network in {d / META}: "
                         f"{str(e)[:300]}") from None
    net.eval()
    settings = dict(meta.get("sampler", {}))
    settings.update(sampler_overrides)
    schedule = CDDMSchedule(T=int(meta["net"].get("T", 1000)))
    sampler = CDDMSampler(net, schedule, **settings)
    return HiddenStateCDDM(sampler, hidden_size=int(meta["net"]["dim"]))


def _factory(path: str | None = None, **overrides: Any) -> HiddenStateCDDM:
    return load_hidden_cddm(path, **overrides)


register_denoiser("cddm", _factory, overwrite=True)
