"""JSCC + CDDM as one codec: encoder → :class:`phy.AnalogLink` → MMSE → CDDM → decoder."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

import phy
from jscc.models.base import JSCCCodec
from phy.channels import snr_db_to_no

from .sampler import CDDMSampler, expand_symbols
from .weights import equalizer_weights

__all__ = ["JSCCWithCDDM"]


class JSCCWithCDDM(JSCCCodec):
    """A JSCC codec whose received latent is denoised by CDDM before decoding.

    Evaluated like any codec: ``system(img, link, snr_db)`` or ``system.transmit(...)``.

    Args:
        codec: the stage-1 codec (its encoder; also its decoder unless ``decoder`` is given).
        sampler: a :class:`cddm.sampler.CDDMSampler` over the stage-2 network.
        decoder: a codec whose ``decode`` is used (the stage-3 re-trained decoder); default
            ``codec``.
        match_mmse: scale CDDM's output by ``W_s(true) / W_s(out)`` per symbol so that it has
            the mean of the MMSE output the stage-1 decoder was trained on (``W_s(out)`` is 1 on
            AWGN and the design-SNR ``W_s`` on fading channels). False feeds the published
            output (an estimate of ``W_s x``) unchanged, for a decoder re-trained on it.
    """

    def __init__(self, codec: JSCCCodec, sampler: CDDMSampler, decoder: JSCCCodec | None = None,
                 match_mmse: bool = True) -> None:
        super().__init__()
        self.codec = codec
        self.decoder = decoder if decoder is not None else codec
        self.sampler = sampler
        if isinstance(sampler.net, nn.Module):
            self.denoiser = sampler.net  # registered so .to(device) moves it too
        self.match_mmse = bool(match_mmse)
        #: SNR (dB) the stage-3 decoder was trained at (set by :meth:`from_pretrained`).
        self.decoder_snr_db: float | None = None
        self.pretrained_name: str | None = None
        self.snr_adaptive = bool(getattr(codec, "snr_adaptive", False))

    @classmethod
    def from_pretrained(cls, codec: str = "adjscc", cbr: float = 1 / 12, channel: str = "awgn",
                        snr_db: float = 10.0, **sampler_overrides: Any) -> JSCCWithCDDM:
        """The shipped pipeline: the pretrained ``codec`` at ``cbr`` (its encoder), its stage-2
        CDDM and the stage-3 decoder trained at the SNR nearest to ``snr_db`` (dB), all loaded
        offline from the package (see :mod:`cddm.pretrained`). ``decoder_snr_db`` on the result
        says which decoder was picked."""
        from jscc import pretrained as jscc_pretrained

        from . import pretrained

        name = pretrained.find(codec, cbr, channel)
        card = pretrained.store.card(name)
        enc = jscc_pretrained.load_codec(card["jscc"])
        dec, dec_snr = pretrained.load_decoder(name, snr_db)
        system = cls(enc, pretrained.load_sampler(name, **sampler_overrides), decoder=dec,
                     match_mmse=bool(card.get("match_mmse", True))).eval()
        system.decoder_snr_db = dec_snr
        system.pretrained_name = name
        return system

    def encode(self, img: torch.Tensor, snr_db: float | torch.Tensor | None = None) -> torch.Tensor:
        return self.codec.encode(img, snr_db)

    def decode(self, z_hat: torch.Tensor, snr_db: float | torch.Tensor | None = None,
               result: phy.AnalogResult | None = None) -> torch.Tensor:
        """Decode a (denoised) latent; ``result`` supplies the CSI for codecs that use it."""
        if getattr(self.decoder, "use_csi", False) and result is not None:
            csi = self.decoder.csi_from_h(result.h.to(z_hat.device))
            return self.decoder.decode(z_hat, snr_db, csi=csi)
        return self.decoder.decode(z_hat, snr_db)

    @torch.no_grad()
    def denoised_latent(self, img: torch.Tensor, link: phy.AnalogLink,
                        snr_db: float | torch.Tensor) -> tuple[torch.Tensor, phy.AnalogResult]:
        """Encoder → link → CDDM; returns the denoised latent (latent scale) and the link result."""
        z = self.encode(img, snr_db)
        r = link.send(z, snr_db)
        z_d = self.denoise(r, snr_db).to(img.device)
        return z_d, r

    @torch.no_grad()
    def denoise(self, r: phy.AnalogResult, snr_db: float | torch.Tensor) -> torch.Tensor:
        """CDDM on a link result, in the latent's scale (with the optional MMSE-mean match)."""
        z_d = self.sampler.denoise_result(r, snr_db)
        if not self.match_mmse:
            return z_d
        snr = torch.as_tensor(snr_db, dtype=torch.float32).flatten()
        snr = snr.expand(r.h.shape[0]) if snr.numel() == 1 else snr
        no = snr_db_to_no(snr).to(r.h.device)[:, None]
        w_true, _ = equalizer_weights(r.h, no)
        if self.sampler._is_awgn(r.h) and self.sampler.awgn_identity:
            w_out = torch.ones_like(w_true)
        else:
            s_d = snr + self.sampler.design_snr_offset_db
            w_out, _ = equalizer_weights(r.h, snr_db_to_no(s_d).to(r.h.device)[:, None])
        ratio = expand_symbols(w_true / w_out, z_d.to(w_true.device))
        return z_d * ratio.to(z_d.device)

    def transmit(self, img: torch.Tensor, link: phy.AnalogLink,
                 snr_db: float | torch.Tensor) -> tuple[torch.Tensor, phy.AnalogResult]:
        z_d, r = self.denoised_latent(img, link, snr_db)
        return self.decode(z_d, snr_db, r), r
