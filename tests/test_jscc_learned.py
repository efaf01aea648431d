"""Tests of the learned+ldpc baseline (scale-hyperprior rate ladder over phy.DigitalLink)."""

from __future__ import annotations

import pytest
import torch

import phy
from experiments.tools.train_hyperprior import make_datasets, train_ladder
from jscc.baselines.digital import JPEG2000LDPC
from jscc.baselines.learned import (
    ContainerError,
    LearnedCapacity,
    LearnedLDPC,
    Stream,
    load_ladder,
    pack_stream,
    save_ladder,
    unpack_stream,
)

LAMBDAS = (0.002, 0.05)


@pytest.fixture(scope="module")
def ladder():
    """Two tiny scale-hyperprior codecs (N = M = 16, 40 steps on 64x64 builtin crops)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train, _ = make_datasets("builtin", 64, num_crops=160, seed=0)
        models = train_ladder(LAMBDAS, train, batch_size=4, progress=False, N=16, M=16,
                              steps=40)
    finally:
        torch.set_num_threads(threads)
    return models


@pytest.fixture(scope="module")
def images():
    _, held = make_datasets("builtin", 64, eval_crops=4)
    return torch.stack([held[i] for i in range(4)])


def _reference(model, img):
    """The codec's own error-free compress -> decompress output of one image ``[3, H, W]``."""
    with torch.no_grad():
        enc = model.compress(img.unsqueeze(0))
        return model.decompress(enc["strings"], enc["shape"])["x_hat"][0]


@pytest.mark.parametrize("stream", [
    Stream(0, (1, 1), b"", b""),
    Stream(3, (2, 5), bytes(range(200)), b"\x00\xff\x80"),
    Stream(200, (300, 17), b"\x01" * 130, bytes(range(256)) * 2),
])
def test_container_round_trip(stream):
    data = pack_stream(stream)
    assert unpack_stream(data) == stream
    assert unpack_stream(data + bytes(37)) == stream  # zero padding after the container
    with pytest.raises(ContainerError):
        unpack_stream(data[:-1] if stream.y or stream.z else data[:2])


def test_container_rejects_garbage():
    with pytest.raises(ContainerError):
        unpack_stream(b"")
    with pytest.raises(ContainerError):
        unpack_stream(bytes(64))  # zH = zW = 0
    with pytest.raises(ContainerError):
        unpack_stream(b"\xff" * 16)


def test_higher_lambda_more_bits(ladder, images):
    bl = LearnedLDPC(phy.AWGN(), 27, 1 / 6, ladder)
    low = sum(len(bl.encode(img, 0)) for img in images)
    high = sum(len(bl.encode(img, 1)) for img in images)
    assert high > low


def test_high_snr_bit_exact(ladder, images):
    bl = LearnedLDPC(phy.AWGN(), 27, 1 / 6, ladder, fallback_image=torch.tensor([0.2, 0.4, 0.6]))
    plan = bl.budget(64, 64)
    assert plan == JPEG2000LDPC(phy.AWGN(), 27, 1 / 6).budget(64, 64)
    r = bl.transmit(images[:3], 30.0)
    assert r.reason == ["ok"] * 3
    assert bool(r.ok.all()) and not bool(r.fallback.any())
    assert bool((r.bits_used <= r.bits_budget).all())
    assert bool((r.bits_budget == plan.info_bits).all())
    assert r.channel_uses == 2048 and r.channel_uses_spent == plan.channel_uses_spent
    for i in range(3):
        data = bl.encode_to_budget(images[i], plan.budget_bytes)
        model = unpack_stream(data).model
        assert model == len(ladder) - 1  # the budget holds the top rung
        assert 8 * len(data) == int(r.bits_used[i])
        assert torch.equal(r.img_hat[i], _reference(ladder[model], images[i]))


def test_rate_control_picks_rung_that_fits(ladder, images):
    bl = LearnedLDPC(phy.AWGN(), 27, 1 / 6, ladder)
    img = images[0]
    sizes = [len(bl.encode(img, k)) for k in range(len(ladder))]
    assert sizes[0] < sizes[1]
    between = bl.encode_to_budget(img, sizes[1] - 1)
    assert between is not None and unpack_stream(between).model == 0
    assert len(between) <= sizes[1] - 1
    assert bl.encode_to_budget(img, sizes[0] - 1) is None
    # streams never exceed the budget, for any budget
    for budget in range(0, sizes[1] + 20, 7):
        s = bl.encode_to_budget(img, budget)
        assert s is None or len(s) <= budget


def test_low_snr_all_lost(ladder, images):
    bl = LearnedLDPC(phy.AWGN(), 27, 1 / 6, ladder, fallback_image=torch.tensor([0.2, 0.4, 0.6]))
    r = bl.transmit(images[:2], -10.0)
    assert r.reason == ["lost"] * 2
    assert bool(r.fallback.all()) and r.num_fallback == 2
    expected = torch.tensor([0.2, 0.4, 0.6]).reshape(3, 1, 1).expand(2, 3, 64, 64)
    assert torch.equal(r.img_hat, expected)
    assert bool((r.bits_used > 0).all())


def test_budget_too_small(ladder, images):
    bl = LearnedLDPC(phy.AWGN(), 0, 1 / 48, ladder)  # 256 uses: less than one 1024-bit block
    r = bl.transmit(images[:2], 30.0)
    assert r.reason == ["budget_too_small"] * 2
    assert bool((r.bits_used == 0).all())
    assert torch.equal(r.img_hat, torch.full((2, 3, 64, 64), 0.5))


def test_undecodable(ladder, images, monkeypatch):
    bl = LearnedLDPC(phy.AWGN(), 27, 1 / 6, ladder)
    monkeypatch.setattr(bl, "decode", lambda data, size: (_ for _ in ()).throw(
        ContainerError("boom")))
    r = bl.transmit(images[:1], 30.0)
    assert r.reason == ["undecodable"]


def test_decode_rejects_wrong_model_or_shape(ladder, images):
    bl = LearnedLDPC(phy.AWGN(), 27, 1 / 6, ladder)
    s = unpack_stream(bl.encode(images[0], 0))
    with pytest.raises(ContainerError):
        bl.decode(pack_stream(s._replace(model=5)), (64, 64))
    with pytest.raises(ContainerError):
        bl.decode(pack_stream(s), (128, 64))


def test_non_multiple_of_64_is_padded(ladder, images):
    bl = LearnedCapacity(1 / 6, ladder)
    img = images[:1, :, :48, :40]
    r = bl.transmit(img, 20.0)
    assert r.reason == ["ok"] and r.img_hat.shape == (1, 3, 48, 40)


def test_capacity(ladder, images):
    bl = LearnedCapacity(1 / 6, ladder)
    r = bl.transmit(images, torch.tensor([20.0, 20.0, -20.0, 20.0]))
    assert r.reason == ["ok", "ok", "budget_too_small", "ok"]
    assert bool((r.bits_used <= r.bits_budget).all())
    assert torch.equal(r.img_hat[0], _reference(ladder[-1], images[0]))


def test_save_load_round_trip(ladder, images, tmp_path):
    path = tmp_path / "sub" / "ladder.pt"
    save_ladder(list(reversed(ladder)), path)
    assert [p.name for p in path.parent.iterdir()] == ["ladder.pt"]  # no temporary left
    loaded = load_ladder(path)
    assert [m.lmbda for m in loaded] == list(LAMBDAS)
    payload = torch.load(path, weights_only=True)
    assert [e["N"] for e in payload["models"]] == [16, 16]
    a = LearnedLDPC(phy.AWGN(), 27, 1 / 6, ladder)
    b = LearnedLDPC(phy.AWGN(), 27, 1 / 6, loaded)
    for k in range(len(ladder)):
        data = a.encode(images[0], k)
        assert b.encode(images[0], k) == data
        assert torch.equal(b.decode(data, (64, 64)), a.decode(data, (64, 64)))


def test_rejects_bad_models():
    with pytest.raises(ValueError):
        LearnedLDPC(phy.AWGN(), 27, 1 / 6, [])
    with pytest.raises(TypeError):
        LearnedLDPC(phy.AWGN(), 27, 1 / 6, [torch.nn.Linear(2, 2)])


def test_train_hyperprior_subcommand_writes_a_loadable_ladder(tmp_path, capsys) -> None:
    from experiments.cli import main
    from jscc.baselines.learned import load_ladder

    out = tmp_path / "ladder.pt"
    assert main(["train-hyperprior", "--steps", "2", "--lambdas", "0.01,0.05", "--N", "16",
                 "--M", "24", "--eval-crops", "2", "--no-progress", "--out", str(out)]) == 0
    models = load_ladder(out)
    assert [m.lmbda for m in models] == [0.01, 0.05]
    capsys.readouterr()
    assert main(["train-hyperprior", "--crop", "32", "--out", str(tmp_path / "x.pt")]) == 2
    assert "crop must be a positive multiple of 64" in capsys.readouterr().err
    assert not (tmp_path / "x.pt").exists()


def test_train_hyperprior_config_refuses_bad_settings_before_any_work(tmp_path) -> None:
    """A bad setting of the ladder names its field when the config is built, and the command
    writes nothing; the config holds the λ as numbers."""
    from experiments.tools.train_hyperprior import TrainHyperpriorConfig, train_hyperprior

    assert TrainHyperpriorConfig(lambdas="0.01,0.05").lambdas == (0.01, 0.05)
    out = tmp_path / "x.pt"
    for field, bad, message in (("lambdas", "0.01,-1", "lambdas must be positive"),
                                ("lr", 0.0, "lr must be > 0"),
                                ("N", 0, "N must be an int >= 1"),
                                ("steps", 1.5, "steps must be an int >= 1"),
                                ("data", str(tmp_path / "none"), "data must be 'builtin'")):
        with pytest.raises(ValueError, match=message):
            train_hyperprior(**{field: bad}, out=str(out))
    with pytest.raises(ValueError, match="threads must be an int >= 1"):
        train_hyperprior(threads=0, out=str(out))
    assert not out.exists()
