"""The hidden-state CDDM plug-in of the analog transport, and ``semcom wdmoe``."""

from __future__ import annotations

import csv

import pytest
import torch

import phy
from cddm import MLPDenoiser
from wdmoe_link import AnalogTransport, load_hidden_cddm, parse_transport, save_hidden_cddm
from wdmoe_link.tiny import TINY_DIR

D = 32
SETTINGS = {"convention": "consistent", "floor_db": None}


@pytest.fixture
def untrained_cddm_dir(tmp_path):
    torch.manual_seed(0)
    net = MLPDenoiser(D, latent_shape=(D,))  # near-zero output at initialization
    save_hidden_cddm(tmp_path, net, SETTINGS, {"note": "untrained"})
    return tmp_path


def test_untrained_cddm_returns_the_unbiased_signal(untrained_cddm_dir):
    """ε ≈ 0, consistent convention, no floor: the chain returns its start state, the raw
    (unequalized) AWGN signal = MMSE output × (1 + no), with or without the link result."""
    den = load_hidden_cddm(untrained_cddm_dir)
    x = torch.randn(64, D) * 3.0
    link = phy.AnalogLink(phy.AWGN())
    phy.set_seed(0)
    r = link.send(x, 10.0)
    expect = r.z_hat * 1.1
    torch.testing.assert_close(den.denoise_result(r, 10.0), expect, rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(den(r.z_hat, 10.0), expect, rtol=1e-3, atol=1e-3)
    # through the transport (which hands over the link result)
    t = AnalogTransport(denoiser=den)
    phy.set_seed(0)
    d = t.send(x, 10.0, 1e6)
    torch.testing.assert_close(d.x_hat, expect, rtol=1e-3, atol=1e-3)
    assert t.name == "analog+cddm"


def test_parse_transport_loads_a_cddm_from_a_path(untrained_cddm_dir):
    t = parse_transport(f"analog+cddm:path={untrained_cddm_dir}")
    assert isinstance(t, AnalogTransport) and t.denoiser.hidden_size == D


def test_hidden_cddm_errors(tmp_path, untrained_cddm_dir):
    with pytest.raises(ValueError, match="no hidden-state CDDM"):
        load_hidden_cddm(tmp_path / "empty")
    den = load_hidden_cddm(untrained_cddm_dir)
    with pytest.raises(ValueError, match="hidden states of size 32"):
        den(torch.randn(4, D + 2), 10.0)


needs_tiny = pytest.mark.skipif(not (TINY_DIR / "config.json").is_file(),
                                reason="shipped tiny model not built")


@needs_tiny
def test_semcom_wdmoe_writes_results(tmp_path, capsys):
    from experiments.cli import main

    rc = main(["wdmoe", "--policy", "topk,wlr:0.6", "--transport", "ideal,analog",
               "--snr-db", "10,30", "--limit", "4", "--devices", "4", "--out", str(tmp_path),
               "--no-progress"])
    assert rc == 0
    run = next((tmp_path / "wdmoe").iterdir())
    rows = list(csv.DictReader(open(run / "results.csv")))
    assert len(rows) == 2 * 2 * 2
    for name in ("latency_vs_accuracy.png", "accuracy_vs_snr.png", "summary.md"):
        assert (run / name).is_file()
    for r in rows:
        assert 0.0 <= float(r["accuracy"]) <= 1.0
        assert float(r["latency_per_token_mean_s"]) > 0
        assert int(r["nan_guard"]) == 0
        if r["policy_spec"] == "wlr:0.6":  # theta > 0.5 keeps exactly one expert per token
            assert float(r["experts_per_token_mean"]) == pytest.approx(1.0)
        if r["transport_spec"] == "ideal":
            assert float(r["bits_dl_per_token"]) > 0
    # resuming from the finished folder runs nothing new and keeps the rows
    rc = main(["wdmoe", "--policy", "topk,wlr:0.6", "--transport", "ideal,analog",
               "--snr-db", "10,30", "--limit", "4", "--devices", "4", "--out",
               str(tmp_path / "again"), "--resume", str(run), "--no-progress"])
    assert rc == 0
    assert not (tmp_path / "again").exists()  # the resumed run writes into its own folder
    assert list(csv.DictReader(open(run / "results.csv"))) == rows
    # other settings than the grid are refused with the keys named (exit code 2)
    rc = main(["wdmoe", "--policy", "topk", "--transport", "ideal", "--snr-db", "10",
               "--limit", "5", "--devices", "4", "--bandwidth-mhz", "10", "--resume", str(run),
               "--no-progress"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "limit: 4 -> 5" in err and "bandwidth_mhz: 100.0 -> 10.0" in err


def test_semcom_wdmoe_bad_input(tmp_path, capsys):
    from experiments.cli import main

    assert main(["wdmoe", "--policy", "fastest", "--out", str(tmp_path)]) == 2
    assert "policy" in capsys.readouterr().err
    assert main(["wdmoe", "--transport", "carrier-pigeon", "--out", str(tmp_path)]) == 2
    assert "transport" in capsys.readouterr().err
    assert main(["wdmoe", "--bandwidth-mhz", "0", "--out", str(tmp_path)]) == 2
    assert "bandwidth_mhz" in capsys.readouterr().err
    assert main(["wdmoe", "--model", str(tmp_path / "nothing"), "--out", str(tmp_path)]) == 2
    assert "nothing" in capsys.readouterr().err


def test_semcom_wdmoe_runs_a_local_checkpoint(tmp_path):
    """Any local HF MoE folder runs through the same evaluation (here a random tiny Mixtral:
    the accuracy is whatever it is, the pipeline and its accounting must work)."""
    from experiments.cli import main
    from wdmoe_link import build_tiny_model

    build_tiny_model(seed=1).save_pretrained(tmp_path / "ckpt")
    rc = main(["wdmoe", "--model", str(tmp_path / "ckpt"), "--policy", "wlr:0.2",
               "--limit", "2", "--digits", "2", "--devices", "2", "--out", str(tmp_path),
               "--no-progress"])
    assert rc == 0
    run = next((tmp_path / "wdmoe").iterdir())
    (row,) = list(csv.DictReader(open(run / "results.csv")))
    assert int(row["num_examples"]) == 2 and int(row["num_decode_steps"]) > 0


def test_train_hidden_cddm_subcommand_writes_a_loadable_denoiser(tmp_path, capsys):
    """semcom train-hidden-cddm records the tiny model's expert rows, trains a few steps and
    saves what analog+cddm loads; bad settings are refused before any work."""
    from experiments.cli import main
    from wdmoe_link.denoise import load_hidden_cddm

    out = tmp_path / "hc"
    assert main(["train-hidden-cddm", "--examples", "6", "--steps", "3", "--batch-size", "32",
                 "--width", "16", "--out", str(out)]) == 0
    den = load_hidden_cddm(out)
    assert den.hidden_size == 64
    capsys.readouterr()
    assert main(["train-hidden-cddm", "--steps", "0", "--out", str(tmp_path / "x")]) == 2
    assert "steps" in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_train_hidden_cddm_config_refuses_bad_settings_before_any_work(tmp_path):
    """A bad setting of the hidden-state CDDM names its field when the config is built; the
    command then writes nothing."""
    import pytest

    from experiments.tools.train_hidden_cddm import TrainHiddenCDDMConfig, train_hidden_cddm

    for field, bad, message in (("lr", 0.0, "lr must be > 0"),
                                ("lr", float("nan"), "lr must be > 0"),
                                ("width", 0, "width must be an int >= 1"),
                                ("batch_size", 2.5, "batch_size must be an int >= 1"),
                                ("model", str(tmp_path / "none"), "model must be 'tiny'")):
        with pytest.raises(ValueError, match=message):
            TrainHiddenCDDMConfig(**{field: bad})
        with pytest.raises(ValueError, match=message):
            train_hidden_cddm(**{field: bad}, out=str(tmp_path / "x"))
    assert not (tmp_path / "x").exists()
