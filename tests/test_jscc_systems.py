"""jscc.systems: one interface and one registry for JSCC and separate image systems."""

from __future__ import annotations

from fractions import Fraction

import pytest
import torch

import phy
from jscc.baselines import image_channel_uses
from jscc.data import BuiltinPhotosDataset
from jscc.systems import (
    ImageSystem,
    JSCCSystem,
    SeparateSystem,
    available_systems,
    build_system,
)


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    ds = BuiltinPhotosDataset(crop=64, train=False)
    return torch.stack([ds[i] for i in range(2)])


def test_registry_names_every_codec_and_code() -> None:
    names = available_systems()
    for n in ("jscc", "jpeg2000+ldpc", "jpeg2000+capacity", "hevc+ldpc", "hevc+capacity",
              "avif+ldpc", "avif+capacity"):
        assert n in names
    with pytest.raises(ValueError, match="unknown image system"):
        build_system("bpg+turbo", cbr=1 / 12)
    with pytest.raises(ValueError, match="needs mcs="):
        build_system("hevc+ldpc", cbr=1 / 12)
    with pytest.raises(ValueError, match="needs codec="):
        build_system("jscc")
    with pytest.raises(ValueError, match="no MCS"):
        build_system("hevc+capacity", cbr=1 / 12, mcs=3)


def test_pretrained_jscc_and_separate_systems_share_one_contract(images) -> None:
    phy.set_seed(0)
    systems = [build_system("jscc", codec="pretrained:adjscc_awgn_cbr1-12"),
               build_system("hevc+ldpc", cbr=Fraction(1, 12), mcs=13),
               build_system("jpeg2000+capacity", cbr=Fraction(1, 12))]
    uses = image_channel_uses(Fraction(1, 12), 64, 64)
    for system in systems:
        assert isinstance(system, ImageSystem)
        lo, hi = system.transmit(images, 0.0), system.transmit(images, 20.0)
        for r in (lo, hi):
            assert r.img_hat.shape == images.shape and r.channel_uses == uses
            assert r.psnr.shape == r.msssim.shape == r.delivered.shape == (2,)
            assert len(r.reason) == 2
        assert hi.mean_psnr > lo.mean_psnr  # every system gains from 20 dB of SNR
    jscc, hevc, _ = systems
    assert isinstance(jscc, JSCCSystem) and isinstance(hevc, SeparateSystem)
    assert hevc.name == "hevc+ldpc/MCS13"
    r = hevc.transmit(images, 0.0)  # 16QAM R = 0.48 needs ~5 dB: lost, shows the fallback
    assert r.reason == ["lost", "lost"] and not bool(r.delivered.any())
    assert bool((hevc.transmit(images, 20.0).bits > 0).all())


def test_jscc_plus_cddm_registers_with_cddm(images) -> None:
    import cddm  # noqa: F401  (registers jscc+cddm)

    s = build_system("jscc+cddm", snr_db=10.0)
    assert s.name == "jscc+cddm"
    phy.set_seed(0)
    r = s.transmit(images, 10.0)
    assert r.img_hat.shape == images.shape and r.mean_psnr > 15.0
