"""CDDM training (stages 2 and 3) and the JSCC + CDDM pipeline.

The two statistical tests train small predictors for a few hundred steps (seeded):

* control (reference note §8 check 17): on i.i.d. Gaussian payloads the linear MMSE estimate is
  already the conditional mean, so no denoiser can beat it; CDDM's channel MSE must not be
  better than MMSE's by more than the Monte-Carlo noise (0.1 dB at 2e4 symbols).
* structure: payloads on a 2-D subspace of R^16 are far from Gaussian in R^16; a trained CDDM
  must beat MMSE clearly (> 5 dB at 10 dB SNR; about 11 dB measured).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

import phy
from cddm import CDDMSampler
from cddm.lightning import CDDMModule, DecoderStage3Module
from cddm.pipeline import JSCCWithCDDM
from jscc.lightning import JSCCModule

D = 16


def _trainer(tmp_path, steps: int) -> pl.Trainer:
    return pl.Trainer(max_steps=steps, accelerator="cpu", devices=1, logger=False,
                      enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, gradient_clip_val=1.0,
                      default_root_dir=tmp_path, num_sanity_val_steps=0, limit_val_batches=0)


def _fit_vectors(tmp_path, data: torch.Tensor, steps: int = 600) -> CDDMModule:
    pl.seed_everything(0, workers=True)
    m = CDDMModule(net="mlp", latent_shape=(D,), channel="awgn", lr=2e-3, ema_decay=0.98,
                   convention="consistent", floor_db=None, seed=0)
    dl = DataLoader(TensorDataset(data), batch_size=256, shuffle=True)
    _trainer(tmp_path, steps).fit(m, train_dataloaders=dl)
    return m.eval()


def _gain_db(m: CDDMModule, data: torch.Tensor, snr_db: float) -> float:
    m.build_link()
    phy.set_seed(7)
    out = m.channel_mse(data, snr_db)
    return out["mmse"] - out["cddm"]


def test_control_iid_gaussian_gives_no_gain(tmp_path):
    g = torch.Generator().manual_seed(0)
    data = torch.randn(4096, D, generator=g)
    m = _fit_vectors(tmp_path, data)
    gain = _gain_db(m, torch.randn(2500, D, generator=g), 10.0)
    print(f"control gain {gain:+.3f} dB")
    assert gain < 0.1, f"CDDM beat MMSE on i.i.d. Gaussian payloads by {gain:.2f} dB"


def test_structured_payload_gives_clear_gain(tmp_path):
    g = torch.Generator().manual_seed(1)
    basis = torch.linalg.qr(torch.randn(D, 2, generator=g))[0] * math.sqrt(D / 2)
    data = torch.randn(4096, 2, generator=g) @ basis.T
    m = _fit_vectors(tmp_path, data)
    test = torch.randn(2500, 2, generator=g) @ basis.T
    gain = _gain_db(m, test, 10.0)
    print(f"subspace gain {gain:+.3f} dB")
    assert gain > 5.0, f"CDDM gain on a 2-D subspace only {gain:.2f} dB"


def test_awgn_loss_does_not_depend_on_the_training_snr_but_rayleigh_does():
    """Reference note §8 check 11 (same draws of t, ε and the channel for both SNRs)."""
    z = torch.randn(64, D)
    losses = {}
    for ch in ("awgn", "rayleigh"):
        for snr in (5.0, 20.0):
            torch.manual_seed(0)
            m = CDDMModule(net="mlp", latent_shape=(D,), channel=ch, train_snr_db=snr,
                           reweight=False)
            m.build_link()
            phy.set_seed(3)
            torch.manual_seed(1)
            with torch.no_grad():
                losses[ch, snr] = float(m.diffusion_loss(z))
    assert losses["awgn", 5.0] == pytest.approx(losses["awgn", 20.0], rel=1e-6)
    assert abs(losses["rayleigh", 5.0] - losses["rayleigh", 20.0]) > 1e-3


def test_ema_weights_are_used_for_sampling(tmp_path):
    m = _fit_vectors(tmp_path, torch.randn(512, D), steps=20)
    assert m.sampler().net is m.ema.module
    diff = [float((a - b).abs().max()) for a, b in
            zip(m.net.parameters(), m.ema.module.parameters(), strict=True)]
    assert max(diff) > 0


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """A tiny Deep JSCC (CBR 1/48, latent 2x8x8 for 32x32 crops) and a CDDM on its latents."""
    root = tmp_path_factory.mktemp("cddm_ckpts")
    pl.seed_everything(0)
    jscc = JSCCModule(codec="deepjscc:num_filters=16", cbr=1 / 48,
                      train_snr_db=13.0)
    trainer = pl.Trainer(max_steps=1, accelerator="cpu", logger=False, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=root,
                         enable_checkpointing=False, limit_val_batches=0)
    trainer.fit(jscc, train_dataloaders=DataLoader(torch.rand(8, 3, 32, 32), batch_size=4))
    jscc_ckpt = str(root / "jscc.ckpt")
    trainer.save_checkpoint(jscc_ckpt)
    cddm = CDDMModule(net="unet-small", jscc_checkpoint=jscc_ckpt, image_size=32)
    t2 = _trainer(root, 2)
    t2.fit(cddm, train_dataloaders=DataLoader(torch.rand(8, 3, 32, 32), batch_size=4))
    cddm_ckpt = str(root / "cddm.ckpt")
    t2.save_checkpoint(cddm_ckpt)
    return jscc_ckpt, cddm_ckpt


def test_stage3_trains_only_the_decoder(checkpoints, tmp_path):
    jscc_ckpt, cddm_ckpt = checkpoints
    m = DecoderStage3Module(jscc_checkpoint=jscc_ckpt, cddm_checkpoint=cddm_ckpt, snr_db=15.0)
    enc0 = {k: v.clone() for k, v in m.system.codec.state_dict().items()}
    net0 = {k: v.clone() for k, v in m.system.sampler.net.state_dict().items()}
    dec0 = {k: v.clone() for k, v in m.system.decoder.state_dict().items()}
    _trainer(tmp_path, 3).fit(m, train_dataloaders=DataLoader(torch.rand(8, 3, 32, 32),
                                                               batch_size=4))
    for k, v in m.system.codec.state_dict().items():
        assert torch.equal(v, enc0[k]), k
    for k, v in m.system.sampler.net.state_dict().items():
        assert torch.equal(v, net0[k]), k
    changed = [k for k, v in m.system.decoder.state_dict().items()
               if "decoder" in k and not torch.equal(v, dec0[k])]
    assert changed
    unchanged_encoder = [k for k, v in m.system.decoder.state_dict().items()
                         if k.startswith("encoder") and torch.equal(v, dec0[k])]
    assert len(unchanged_encoder) == len([k for k in dec0 if k.startswith("encoder")])


class _ZeroNet(torch.nn.Module):
    def forward(self, x, t, h_abs):
        return torch.zeros_like(x)


@pytest.mark.parametrize("channel", [phy.AWGN, phy.RayleighFading])
def test_pipeline_with_an_identity_denoiser_equals_the_plain_codec(checkpoints, channel):
    """Zero ε under the consistent convention returns the (re-)equalized input; matched to the
    MMSE mean, the pipeline must then reproduce the plain codec bit for bit (same noise)."""
    from cddm.lightning import load_codec

    codec = load_codec(checkpoints[0])
    sampler = CDDMSampler(_ZeroNet(), convention="consistent", floor_db=None)
    system = JSCCWithCDDM(codec, sampler)
    img = torch.rand(3, 3, 32, 32)
    link = phy.AnalogLink(channel())
    phy.set_seed(5)
    ref, _ = codec.transmit(img, link, 12.0)
    phy.set_seed(5)
    out, _ = system.transmit(img, link, 12.0)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)


def test_cddm_for_other_latent_channels_is_rejected_any_image_size_runs(checkpoints):
    from cddm.lightning import load_codec
    from jscc import build_codec

    codec = load_codec(checkpoints[0])
    cddm = CDDMModule.load_from_checkpoint(checkpoints[1], map_location="cpu")
    system = JSCCWithCDDM(codec, cddm.sampler())
    # trained on the latents of 32x32 crops; the U-Net is fully convolutional
    out = system(torch.rand(1, 3, 64, 64), phy.AnalogLink(phy.AWGN()), 10.0)
    assert out.shape == (1, 3, 64, 64) and torch.isfinite(out).all()
    other = build_codec("deepjscc", cbr=codec.latent_channels / 96 / 2
                        if codec.latent_channels % 2 == 0 else 2 / 96)
    with pytest.raises(ValueError, match="built for latents of shape"):
        JSCCWithCDDM(other, cddm.sampler())(torch.rand(1, 3, 32, 32),
                                             phy.AnalogLink(phy.AWGN()), 10.0)
    with pytest.raises(ValueError, match="does not match the codec's latent"):
        CDDMModule(net="unet-small", jscc_checkpoint=checkpoints[0], image_size=32,
                   latent_shape=(4, 8, 8))


def test_bad_arguments():
    with pytest.raises(ValueError, match="channel must be"):
        CDDMModule(net="mlp", latent_shape=(D,), channel="tdl-a")
    with pytest.raises(ValueError, match="latent_shape is required"):
        CDDMModule(net="mlp")
    with pytest.raises(ValueError, match="ema_decay"):
        CDDMModule(net="mlp", latent_shape=(D,), ema_decay=1.0)
    m = CDDMModule(net="mlp", latent_shape=(D,))
    with pytest.raises(ValueError, match="built for"):
        m.latents(torch.randn(4, D + 1))


def test_eval_cddm_writes_mse_and_psnr(checkpoints, tmp_path):
    import csv

    from experiments.recipes.eval_cddm import run_eval_cddm

    res = run_eval_cddm(cddm_checkpoint=checkpoints[1], data="builtin", crop=32,
                        snr_db=(5.0, 15.0), baselines=(), max_images=4, out=tmp_path,
                        progress=False)
    for name in ("channel_mse.csv", "channel_mse.png", "mean.csv", "psnr_vs_snr.png",
                 "summary.md", "manifest.json", "config.yaml"):
        assert (res.path / name).is_file(), name
    rows = list(csv.DictReader(open(res.path / "channel_mse.csv")))
    assert [float(r["snr_db"]) for r in rows] == [5.0, 15.0]
    assert [int(r["steps"]) for r in rows] == [93, 52]
    for r in rows:  # the raw AWGN signal's MSE is 1/SNR: a check of the measurement itself
        assert float(r["mse_raw_db"]) == pytest.approx(float(r["theory_raw_db"]), abs=0.5)
    methods = {r["method"] for r in csv.DictReader(open(res.path / "mean.csv"))}
    assert methods == {"jscc", "jscc+cddm"}
    assert "MMSE + CDDM" in (res.path / "summary.md").read_text()
    again = run_eval_cddm(cddm_checkpoint=checkpoints[1], data="builtin", crop=32,
                          snr_db=(5.0, 15.0), baselines=(), max_images=4, out=tmp_path / "again",
                          progress=False)
    for name in ("channel_mse.csv", "mean.csv"):  # same config and seed: the same bytes
        assert (res.path / name).read_bytes() == (again.path / name).read_bytes(), name


def test_eval_cddm_cli_errors(tmp_path, capsys):
    from experiments.cli import main

    assert main(["eval-cddm", "--cddm", str(tmp_path / "missing.ckpt")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["eval-cddm", "--cddm", "x.ckpt", "--decoder", "ten=a.ckpt"]) == 2
    assert "SNR=CHECKPOINT" in capsys.readouterr().err


def test_stage3_on_precomputed_pairs_matches_the_online_loop(checkpoints):
    """Cached (image, denoised latent) pairs give the same loss as running the chain online
    with the same channel draw."""
    from cddm.lightning import denoised_pairs

    m = DecoderStage3Module(jscc_checkpoint=checkpoints[0], cddm_checkpoint=checkpoints[1],
                            snr_db=12.0)
    m.build_link()
    img = torch.rand(4, 3, 32, 32)
    phy.set_seed(11)
    pairs = denoised_pairs(m.system, img, m.link, 12.0, batch_size=2, progress=False)
    phy.set_seed(11)
    online = torch.cat([m.system.denoised_latent(img[i:i + 2], m.link, 12.0)[0]
                        for i in (0, 2)])
    torch.testing.assert_close(pairs.tensors[1], online)
    loss = m.training_step(list(pairs.tensors), 0)
    ref = torch.nn.functional.mse_loss(m.system.decode(online, 12.0), img)
    torch.testing.assert_close(loss, ref)


def test_train_cddm_cli_runs_the_shipped_configs(checkpoints, tmp_path):
    """``semcom train-cddm`` with the stage-2 and stage-3 CPU configs, shrunk to a few steps."""
    from experiments.cli import main

    jscc_ckpt, cddm_ckpt = checkpoints
    common = ["--trainer.max_steps", "2", "--trainer.max_epochs", "1",
              "--trainer.limit_val_batches", "1", "--trainer.num_sanity_val_steps", "0",
              "--trainer.enable_progress_bar", "false", "--data.init_args.crop", "32",
              "--data.init_args.batch_size", "4", "--data.init_args.crops_per_image", "1"]
    root2 = tmp_path / "stage2"
    assert main(["train-cddm", "--config", "experiments/configs/cddm/cddm_stage2_cpu.yaml",
                 "--model.init_args.jscc_checkpoint", jscc_ckpt,
                 "--model.init_args.image_size", "32",
                 "--model.init_args.val_snrs_db", "[20.0]",
                 "--trainer.default_root_dir", str(root2),
                 "--trainer.logger.init_args.save_dir", str(root2), *common]) == 0
    assert list(root2.rglob("last.ckpt")) and list(root2.rglob("manifest.json"))
    root3 = tmp_path / "stage3"
    assert main(["train-cddm", "--config", "experiments/configs/cddm/cddm_stage3_cpu.yaml",
                 "--model.init_args.jscc_checkpoint", jscc_ckpt,
                 "--model.init_args.cddm_checkpoint", cddm_ckpt,
                 "--model.init_args.snr_db", "20.0",
                 "--trainer.default_root_dir", str(root3),
                 "--trainer.logger.init_args.save_dir", str(root3), *common]) == 0
    assert list(root3.rglob("last.ckpt"))
    with pytest.raises(ValueError, match="cddm_checkpoint must be a checkpoint file"):
        DecoderStage3Module(jscc_checkpoint=jscc_ckpt, cddm_checkpoint=None)


def test_wrong_kind_garbage_and_truncated_checkpoints_get_one_clear_error(checkpoints, tmp_path):
    from cddm.lightning import load_cddm_module, load_codec
    from jscc.checkpoints import CheckpointError

    jscc_ckpt, cddm_ckpt = checkpoints
    with pytest.raises(CheckpointError, match=r"cddm\.ckpt is a CDDM stage-2 checkpoint.*"
                                              r"expected a JSCC codec checkpoint"):
        load_codec(cddm_ckpt)
    with pytest.raises(CheckpointError, match=r"is a JSCC codec checkpoint.*expected a CDDM"):
        load_cddm_module(jscc_ckpt)
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"this is not a checkpoint\n" * 10)
    truncated = tmp_path / "truncated.ckpt"
    data = open(jscc_ckpt, "rb").read()
    truncated.write_bytes(data[: len(data) // 2])
    for bad in (garbage, truncated):
        with pytest.raises(CheckpointError, match=f"{bad} is not readable.*"
                                                  "expected a JSCC codec checkpoint"):
            load_codec(str(bad))
    plain = tmp_path / "plain.ckpt"
    torch.save({"weights": torch.zeros(2)}, plain)
    with pytest.raises(CheckpointError, match="not a Lightning checkpoint"):
        load_codec(str(plain))


def test_stage2_finds_its_stage1_relative_to_itself_and_jscc_overrides(checkpoints, tmp_path,
                                                                       monkeypatch):
    """A stage-2 checkpoint records its stage-1 path as typed (relative to the directory the
    training ran in); loaded from elsewhere it is found relative to the folders above it."""
    import shutil

    from cddm.lightning import load_cddm_module
    from jscc.checkpoints import CheckpointError

    project = tmp_path / "project"
    (project / "runs" / "jscc").mkdir(parents=True)
    shutil.copy(checkpoints[0], project / "runs" / "jscc" / "last.ckpt")
    monkeypatch.chdir(project)
    cddm = CDDMModule(net="unet-small", jscc_checkpoint="runs/jscc/last.ckpt", image_size=32)
    trainer = _trainer(project, 1)
    trainer.fit(cddm, train_dataloaders=DataLoader(torch.rand(4, 3, 32, 32), batch_size=4))
    (project / "runs" / "cddm").mkdir()
    ckpt = project / "runs" / "cddm" / "stage2.ckpt"
    trainer.save_checkpoint(ckpt)
    monkeypatch.chdir(tmp_path)  # elsewhere: "runs/jscc/last.ckpt" does not exist here
    m = load_cddm_module(ckpt)
    assert Path(m.jscc_checkpoint) == project / "runs" / "jscc" / "last.ckpt"
    # the override wins; a missing stage 1 is named
    other = tmp_path / "other.ckpt"
    shutil.copy(checkpoints[0], other)
    assert load_cddm_module(ckpt, jscc_checkpoint=str(other)).jscc_checkpoint == str(other)
    (project / "runs" / "jscc" / "last.ckpt").unlink()
    with pytest.raises(CheckpointError, match=r"stage-1 JSCC checkpoint runs/jscc/last\.ckpt"
                                              r".*--jscc"):
        load_cddm_module(ckpt)
