"""Shipped models: weight store round trip and errors, offline loading, and their quality."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import pytest
import torch

import phy
from jscc import build_codec, pretrained
from jscc.data import BuiltinPhotosDataset
from jscc.evaluation import evaluate_codec
from jscc.pretrained import WeightStore


def test_weight_store_round_trip_and_integrity(tmp_path: Path) -> None:
    store = WeightStore(tmp_path, kind="jscc")
    sd = {"a.weight": torch.randn(3, 4), "b": torch.arange(5.0)}
    store.save("m", sd, {"codec": "deepjscc", "cbr": 1 / 12, "channel": "awgn"})
    assert store.names() == ["m"]
    card = store.card("m")
    assert card["kind"] == "jscc" and card["name"] == "m" and len(card["sha256"]) == 64
    got = store.state_dict("m")
    assert set(got) == set(sd) and all(torch.equal(got[k], sd[k]) for k in sd)
    # a changed weights file no longer matches its card
    raw = bytearray(store.weights_path("m").read_bytes())
    raw[-1] ^= 0xFF
    store.weights_path("m").write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="does not match its model card"):
        store.state_dict("m")
    with pytest.raises(ValueError, match="no pretrained jscc model named 'x'"):
        store.card("x")
    other = WeightStore(tmp_path, kind="cddm")
    with pytest.raises(ValueError, match="of kind 'jscc', expected 'cddm'"):
        other.card("m")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="not readable JSON"):
        store.card("bad")


def test_weight_store_float16_parameters_and_float32_buffers(tmp_path: Path) -> None:
    """``half`` keys are stored as float16 (half the bytes), read back as float32 within
    float16 rounding (relative 2^-11); other keys, e.g. a 2^-36 pedestal that float16 would
    flush to zero, stay float32 bit for bit."""
    store = WeightStore(tmp_path, kind="jscc")
    w = torch.randn(64, 64)
    pedestal = torch.tensor(2.0**-36)
    store.save("h", {"w": w, "pedestal": pedestal}, {"codec": "x"}, half=["w"])
    store.save("f", {"w": w, "pedestal": pedestal}, {"codec": "x"})
    got = store.state_dict("h")
    assert got["w"].dtype == torch.float32 and got["pedestal"].dtype == torch.float32
    assert torch.allclose(got["w"], w, rtol=2.0**-11, atol=0) and not torch.equal(got["w"], w)
    assert torch.equal(got["pedestal"], pedestal)
    assert store.card("h")["float16_tensors"] == 1 and store.card("f")["float16_tensors"] == 0
    size_h, size_f = (store.weights_path(n).stat().st_size for n in ("h", "f"))
    assert size_h < 0.55 * size_f
    with pytest.raises(ValueError, match="overflows float16"):
        store.save("o", {"w": torch.tensor([1e6])}, {}, half=["w"])
    with pytest.raises(ValueError, match="not in the state dict"):
        store.save("o", {"w": w}, {}, half=["v"])


def test_find_prefers_the_default_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = WeightStore(tmp_path, kind="jscc")
    base = {"codec": "adjscc", "cbr": 1 / 12, "channel": "awgn"}
    store.save("a_first", {"w": torch.zeros(1)}, base)
    store.save("b_default", {"w": torch.zeros(1)}, {**base, "default": True})
    monkeypatch.setattr(pretrained, "store", store)
    assert pretrained.find("adjscc", 1 / 12, "awgn") == "b_default"
    (tmp_path / "b_default.json").unlink()
    assert pretrained.find("adjscc", 1 / 12, "awgn") == "a_first"


def test_every_shipped_codec_has_a_complete_card_and_loads() -> None:
    cards = pretrained.available()
    assert {"adjscc_awgn_cbr1-12", "adjscc_awgn_cbr1-6"} <= set(cards)
    total = 0
    for name, c in cards.items():
        for key in ("codec", "cbr", "channel", "training", "results", "sha256"):
            assert key in c, (name, key)
        for key in ("data", "config", "command", "steps", "cpu_hours"):
            assert c["training"].get(key) is not None, (name, key)
        assert Path(c["training"]["config"]).name.endswith(".yaml")
        codec = pretrained.load_codec(name)
        assert not codec.training
        total += pretrained.store.weights_path(name).stat().st_size
    import cddm.pretrained as cp

    for store in (cp.store, cp.decoders):
        for name in store.names():
            total += store.weights_path(name).stat().st_size
    assert total <= 30 * 2**20  # all shipped weights


def test_build_codec_pretrained_picks_by_cbr_and_channel() -> None:
    a = build_codec("adjscc", cbr=1 / 12, pretrained=True, channel="awgn")
    b = build_codec("adjscc", cbr=1 / 6, pretrained=True, channel="awgn")
    assert a.latent_channels == 8 and b.latent_channels == 16
    with pytest.raises(ValueError, match=r"no pretrained 'adjscc' at cbr=0\.04167"):
        build_codec("adjscc", cbr=1 / 24, pretrained=True)
    with pytest.raises(ValueError, match="architecture from the model card"):
        build_codec("adjscc", cbr=1 / 12, pretrained=True, num_filters=32)


@pytest.fixture(scope="module")
def heldout() -> torch.Tensor:
    ds = BuiltinPhotosDataset(crop=128, train=False)  # the card's set: every grid crop
    return torch.stack([ds[i] for i in range(len(ds))])


def test_shipped_adjscc_quality_on_heldout_photos(heldout: torch.Tensor) -> None:
    """The CBR 1/12 model on held-out built-in crops (never trained on): PSNR rises with the
    SNR over 0-20 dB and matches its card's table (same crops, same seed) within 0.05 dB."""
    codec = build_codec("adjscc", cbr=1 / 12, pretrained=True)
    snrs = [0.0, 4.0, 10.0, 16.0, 20.0]  # on the grid of the card
    scores = [r.psnr for r in evaluate_codec(codec.transmit, heldout,
                                             phy.AnalogLink(phy.AWGN()), snrs)]
    assert all(b > a for a, b in itertools.pairwise(scores)), scores
    assert scores[2] > 25.0, scores
    card = pretrained.card("adjscc_awgn_cbr1-12")["results"]["builtin_heldout_128"]
    assert card["num_images"] == heldout.shape[0]
    table = dict(zip(card["snr_db"], card["psnr"], strict=True))
    for s, p in zip(snrs, scores, strict=True):
        assert abs(table[s] - p) < 0.05, (s, table[s], p)


def test_from_pretrained_cddm_denoises_the_latent_and_picks_the_nearest_decoder(
        heldout: torch.Tensor) -> None:
    """The shipped CDDM lowers the channel MSE of the codec's latent below the MMSE equalizer's
    (by > 1.5 dB at 10 dB on held-out crops; its card measured 2.4-2.9 dB on CBSD68), the MMSE
    figure matches the AWGN closed form N0/(1+N0) within 0.2 dB, and the pipeline's PSNR stays
    within 0.5 dB of the plain codec's (see the README for why it does not gain)."""
    from cddm.metrics import channel_mse
    from cddm.pipeline import JSCCWithCDDM

    system = JSCCWithCDDM.from_pretrained("adjscc", cbr=1 / 12, channel="awgn", snr_db=9.0)
    assert system.decoder_snr_db == 10.0
    assert JSCCWithCDDM.from_pretrained("adjscc", cbr=1 / 12, snr_db=40.0).decoder_snr_db == 15.0
    link = phy.AnalogLink(phy.AWGN())
    imgs = heldout[:8]
    with torch.no_grad():
        z = system.codec.encode(imgs, 10.0)
    m = channel_mse(z, link, system.sampler, 10.0, True)
    assert abs(m["mmse"] - 10 * math.log10(0.1 / 1.1)) < 0.2, m
    assert m["cddm"] < m["mmse"] - 1.5, m
    plain = evaluate_codec(system.codec.transmit, imgs, link, [10.0])[0].psnr
    cddm = evaluate_codec(system.transmit, imgs, link, [10.0])[0].psnr
    assert abs(cddm - plain) < 0.5, (plain, cddm)
    with pytest.raises(ValueError, match="no pretrained 'adjscc' at cbr"):
        JSCCWithCDDM.from_pretrained("adjscc", cbr=1 / 24)


def test_cards_are_json_with_psnr_tables() -> None:
    for name, c in pretrained.available().items():
        for key, table in c["results"].items():
            assert len(table["snr_db"]) == len(table["psnr"]) >= 6, (name, key)
            json.dumps(table)


def test_pretrained_curves_envelope_and_step_plot(heldout: torch.Tensor) -> None:
    """The quickstart's curves: the envelope is the per-SNR maximum over the MCS curves, the
    digital curves are drawn as steps, and at 0 dB (below every MCS's threshold but the lowest)
    the shipped ADJSCC beats the digital envelope on held-out crops."""
    import matplotlib

    from experiments.recipes.pretrained_curves import plot_curves, pretrained_curves

    pts = pretrained_curves(heldout[:2], snr_db=[0.0, 10.0], cddm_snr_db=[10.0], mcs=[5, 13])
    by = {(p.method, p.snr_db): p for p in pts}
    for s in (0.0, 10.0):
        best = by[("jpeg2000+ldpc/best-mcs", s)]
        assert best.psnr == max(by[(f"jpeg2000+ldpc/MCS{m}", s)].psnr for m in (5, 13))
        assert by[("jpeg2000+capacity", s)].psnr >= best.psnr - 1e-6
    assert by[("jscc", 0.0)].psnr > by[("jpeg2000+ldpc/best-mcs", 0.0)].psnr
    assert ("jscc+cddm", 10.0) in by and ("jscc+cddm", 0.0) not in by
    fig = plot_curves(pts, "test")
    steps = [ln for ln in fig.axes[0].get_lines() if ln.get_drawstyle().startswith("steps")]
    assert len(steps) == 3  # two MCS curves and the envelope
    matplotlib.pyplot.close(fig)


def test_card_tables_pad_whole_images_to_the_codecs_latent_grid(tmp_path: Path) -> None:
    """A /16 codec gets its card's whole-image table too: odd-size photos are padded to
    multiples of 16, not of the default backbone's 4."""
    import numpy as np
    from PIL import Image

    from experiments.tools.export_pretrained import card_results

    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate(((260, 270), (258, 300))):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(
            tmp_path / f"p{i}.png")
    codec = build_codec("adjscc", cbr=1 / 12, num_filters=8, num_blocks=0,
                        downsampling_stages=4).eval()
    out = card_results(codec, "awgn", str(tmp_path), snrs=[10.0])
    whole = out[f"{tmp_path.name}_whole"]
    assert whole["num_images"] == 2 and "multiples of 16" in whole["images"]
    assert math.isfinite(whole["psnr"][0]) and whole["psnr"][0] > 0


def test_export_pretrained_config_refuses_bad_settings_before_any_work(tmp_path: Path,
                                                                       monkeypatch) -> None:
    """A bad setting of ``semcom export-pretrained`` names its field when the config is built:
    nothing is loaded, measured or stored."""
    import experiments.tools.export_pretrained as tool

    monkeypatch.setattr(tool, "jscc_store", WeightStore(tmp_path / "store", kind="jscc"))
    ck = tmp_path / "last.ckpt"
    ck.write_bytes(b"")  # never read: every case fails before loading it
    good = {"entry": "mine", "checkpoint": str(ck), "train_config": "c.yaml"}
    assert tool.ExportPretrainedConfig(**good, earlier=f"{ck}=a.yaml").stages() == \
        [(ck, "a.yaml")]
    for field, bad, message in (("entry", "../x", "entry must be a name"),
                                ("checkpoint", str(tmp_path / "no.ckpt"), "no.ckpt does not"),
                                ("test_dir", str(tmp_path / "none"), "test_dir .* not a folder"),
                                ("threads", 0, "threads must be None or an int >= 1"),
                                ("earlier", str(ck), "earlier takes CHECKPOINT=CONFIG"),
                                ("earlier", "gone.ckpt=a.yaml", "earlier: checkpoint gone")):
        with pytest.raises(ValueError, match=message):
            tool.export_pretrained(**{**good, field: bad})
    assert not (tmp_path / "store").exists()
