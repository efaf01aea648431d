"""JPEG2000 rate control and the separate-coding baselines (LDPC and ideal capacity)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage import data

import phy
from jscc.baselines import (
    JPEG2000LDPC,
    REASONS,
    BaselineResult,
    J2KDecodeError,
    JPEG2000Capacity,
    best_mcs_envelope,
    decode,
    default_num_resolutions,
    encode_to_budget,
    encode_to_budget_info,
    image_channel_uses,
    min_stream_bytes,
)
from jscc.baselines.digital import bits_to_bytes, bytes_to_bits


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10.0 * torch.log10(1.0 / (a.double() - b.double()).pow(2).mean()))


@pytest.fixture(scope="module")
def photo256() -> torch.Tensor:
    """A real photograph: 256x256 crop of skimage's astronaut, [3, H, W] in [0, 1]."""
    a = data.astronaut()[:256, 128:384]
    return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1).float() / 255.0


@pytest.fixture(scope="module")
def photo64(photo256: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.avg_pool2d(photo256[None], 4)[0]


@pytest.fixture(scope="module")
def photo32(photo256: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.avg_pool2d(photo256[None], 8)[0]


@pytest.fixture(scope="module")
def mcs16_link() -> JPEG2000LDPC:
    """64x64 images at CBR 1/6 (2048 channel uses) with 16QAM R=0.64: 5 blocks of 1024 bits."""
    return JPEG2000LDPC(phy.AWGN(), 16, 1 / 6, fallback_image=torch.tensor([0.2, 0.4, 0.6]))


# ------------------------------------------------------------------------- JPEG2000 codec
@pytest.mark.parametrize("budget", [2048, 4096, 8192])
def test_j2k_fills_budget_from_below(photo256: torch.Tensor, budget: int) -> None:
    enc = encode_to_budget_info(photo256, budget)
    assert not enc.too_small and enc.stream is not None
    assert len(enc.stream) <= budget
    assert len(enc.stream) >= 0.95 * budget
    assert enc.encodes <= 20
    assert enc.stream == encode_to_budget(photo256, budget)  # deterministic
    x = decode(enc.stream, photo256.shape)
    assert x.shape == photo256.shape and x.dtype == torch.float32
    assert _psnr(x, photo256) > 25.0


def test_j2k_uint8_input_and_quality_grows(photo256: torch.Tensor) -> None:
    arr = (photo256 * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    small, big = encode_to_budget(arr, 1024), encode_to_budget(arr, 6000)
    assert small is not None and big is not None
    assert _psnr(decode(small, (256, 256)), photo256) < _psnr(decode(big, (256, 256)), photo256)


def test_j2k_tiny_budget_is_too_small(photo32: torch.Tensor) -> None:
    overhead = min_stream_bytes(photo32)
    assert 100 < overhead < 250  # headers of a 32x32 RGB codestream
    assert encode_to_budget(photo32, 100) is None
    assert encode_to_budget(photo32, 0) is None
    info = encode_to_budget_info(photo32, 100)
    assert info.too_small and info.stream is None and info.min_bytes == overhead
    ok = encode_to_budget(photo32, 256)
    assert ok is not None and len(ok) <= 256
    assert default_num_resolutions(32, 32) == 2 and default_num_resolutions(256, 256) == 5


def test_j2k_decode_error_paths(photo64: torch.Tensor) -> None:
    s = encode_to_budget(photo64, 600)
    assert s is not None
    ref = decode(s, (64, 64))
    assert torch.equal(decode(s + bytes(300), (3, 64, 64)), ref)  # zero padding is ignored
    with pytest.raises(J2KDecodeError):
        decode(s[: len(s) // 2], (64, 64))  # truncated
    with pytest.raises(J2KDecodeError):
        decode(bytes([s[0] ^ 0xFF]) + s[1:], (64, 64))  # SOC marker destroyed
    with pytest.raises(J2KDecodeError):
        decode(b"", (64, 64))
    with pytest.raises(J2KDecodeError):
        decode(bytes(500), (64, 64))
    with pytest.raises(J2KDecodeError, match="expected RGB 32x32"):
        decode(s, (32, 32))  # another image size
    # random flipped bytes: either a clean error or an image of the right shape, never a crash
    rng = np.random.default_rng(0)
    for _ in range(8):
        d = bytearray(s)
        for i in rng.integers(0, len(d), 4):
            d[i] ^= 0xFF
        try:
            x = decode(bytes(d), (64, 64))
        except J2KDecodeError:
            continue
        assert x.shape == (3, 64, 64) and bool(torch.isfinite(x).all())


def test_bits_roundtrip() -> None:
    b = bytes([0, 1, 0x80, 0xFF, 0x5A])
    bits = bytes_to_bits(b, 48)
    assert bits.shape == (48,) and bits[8:16].tolist() == [0] * 7 + [1]
    assert bits_to_bytes(bits) == b + bytes(1)
    with pytest.raises(ValueError):
        bytes_to_bits(b, 32)


# ------------------------------------------------------------------------- budgets
def test_channel_uses_of_an_image() -> None:
    assert image_channel_uses(1 / 12, 256, 256) == 16384
    assert image_channel_uses(1 / 6, 64, 64) == 2048
    assert image_channel_uses(1 / 6, 32, 32) == 512
    assert image_channel_uses(0.1, 10, 10) == 30


@pytest.mark.parametrize("mcs", [0, 9, 16, 28])
def test_ldpc_budget_matches_link_geometry(mcs: int) -> None:
    bl = JPEG2000LDPC(phy.AWGN(), mcs, 1 / 12)
    link = phy.DigitalLink(phy.AWGN(), mcs)
    per_block = link.channel_uses_per_block(1024)
    plan = bl.budget(256, 256)
    assert plan.channel_uses == 16384
    assert plan.block_bits == 1024 and plan.uses_per_block == per_block
    assert plan.num_blocks == 16384 // per_block
    assert plan.info_bits == plan.num_blocks * 1024
    assert plan.budget_bytes == plan.info_bits // 8
    assert plan.channel_uses_spent <= 16384 < plan.channel_uses_spent + per_block


def test_ldpc_budget_below_one_block() -> None:
    bl = JPEG2000LDPC(phy.AWGN(), 0, 1 / 12)  # 32x32: 256 uses, a 1024-bit block needs 4472
    plan = bl.budget(32, 32)
    assert plan.channel_uses == 256 and plan.num_blocks == 1
    k = plan.block_bits
    assert 0 < k < 1024
    assert bl.link.channel_uses_per_block(k) <= 256 < bl.link.channel_uses_per_block(k + 1)
    assert plan.info_bits == k
    assert JPEG2000LDPC(phy.AWGN(), 0, 1e-4).budget(32, 32).num_blocks == 0  # 0 uses


def test_ldpc_budget_too_small_gives_fallback(photo32: torch.Tensor) -> None:
    bl = JPEG2000LDPC(phy.AWGN(), 0, 1 / 12)
    r = bl.transmit(photo32[None], 30.0)
    assert r.reason == ["budget_too_small"]
    assert not bool(r.ok[0]) and bool(r.fallback[0]) and int(r.bits_used[0]) == 0
    assert torch.equal(r.img_hat[0], torch.full((3, 32, 32), 0.5))


# ------------------------------------------------------------------------- JPEG2000 + LDPC
def test_ldpc_high_snr_delivers_the_stream(mcs16_link: JPEG2000LDPC,
                                           photo64: torch.Tensor) -> None:
    r = mcs16_link.transmit(photo64[None], 30.0)
    assert isinstance(r, BaselineResult)
    assert r.reason == ["ok"] and bool(r.ok.all()) and r.num_fallback == 0
    assert r.channel_uses == 2048 and r.channel_uses_spent == 5 * 408
    assert int(r.bits_budget[0]) == 5 * 1024
    assert 0.9 * 5 * 1024 <= int(r.bits_used[0]) <= 5 * 1024
    # bit-exact delivery: the image equals the JPEG2000 decode of the stream that was sent
    sent = encode_to_budget(photo64, 5 * 1024 // 8)
    assert sent is not None and 8 * len(sent) == int(r.bits_used[0])
    assert torch.equal(r.img_hat[0], decode(sent, (64, 64)))
    assert float(r.psnr[0]) > 20.0
    assert float(r.psnr[0]) == pytest.approx(_psnr(r.img_hat[0], photo64), abs=1e-3)


def test_ldpc_very_low_snr_loses_everything(mcs16_link: JPEG2000LDPC,
                                            photo64: torch.Tensor) -> None:
    img = torch.stack([photo64, photo64.flip(-1)])
    r = mcs16_link.transmit(img, -10.0)
    assert r.reason == ["lost", "lost"]
    assert not bool(r.ok.any()) and int(r.fallback.sum()) == 2
    fallback = torch.tensor([0.2, 0.4, 0.6]).reshape(3, 1, 1).expand(3, 64, 64)
    assert torch.equal(r.img_hat, fallback.expand(2, 3, 64, 64))
    assert torch.allclose(r.psnr, torch.stack([torch.tensor(_psnr(fallback, x)) for x in img])
                          .float(), atol=1e-3)


def test_ldpc_corrupted_stream_that_passes_the_crc_is_undecodable(
        photo64: torch.Tensor) -> None:
    """A stream damaged before the link (so its CRC is right) must end in the fallback."""
    from jscc.baselines import SeparateLDPC, SourceCodec, source_codec

    j2k = source_codec("jpeg2000")
    calls = {"n": 0}

    def encode_then_damage_first(img, budget_bytes):
        stream = j2k.encode_to_budget(img, budget_bytes)
        calls["n"] += 1
        if calls["n"] == 1:  # destroy the SOC marker of image 0
            stream = bytes([stream[0] ^ 0xFF]) + stream[1:]
        return stream

    damaging = SourceCodec("damaging-jpeg2000", encode_then_damage_first, j2k.decode,
                           j2k.decode_errors, "JPEG2000, first stream damaged")
    bl = SeparateLDPC(phy.AWGN(), 16, 1 / 6, source=damaging)
    # two different images (streams are memoized per image and budget)
    r = bl.transmit(torch.stack([photo64, photo64.flip(-1)]), 40.0)  # error-free at 40 dB
    assert r.reason == ["undecodable", "ok"]
    assert r.ok.tolist() == [False, True] and r.fallback.tolist() == [True, False]
    assert torch.equal(r.img_hat[0], torch.full((3, 64, 64), 0.5))
    assert float(r.psnr[1]) > 20.0


def test_ldpc_failed_blocks_lose_only_their_image(photo64: torch.Tensor) -> None:
    """Per-image SNR on the real link: the image sent at -10 dB is lost, the others arrive."""
    bl = JPEG2000LDPC(phy.AWGN(), 16, 1 / 6)
    r = bl.transmit(torch.stack([photo64, photo64, photo64]), torch.tensor([30.0, -10.0, 30.0]))
    assert r.reason == ["ok", "lost", "ok"] and r.num_fallback == 1
    assert set(r.reason) <= set(REASONS)


def test_ldpc_argument_checks(photo64: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="max_transmissions"):
        JPEG2000LDPC(phy.AWGN(), 16, 1 / 6, max_transmissions=2)
    with pytest.raises(ValueError):
        JPEG2000LDPC(phy.AWGN(), 16, 0.0)
    bl = JPEG2000LDPC(phy.AWGN(), 16, 1 / 6, fallback_image=torch.zeros(3, 32, 32))
    with pytest.raises(ValueError, match="fallback_image"):
        bl.transmit(photo64[None], 10.0)
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        bl.transmit(photo64, 10.0)
    with pytest.raises(ValueError, match="one value per example"):
        bl.transmit(photo64[None], torch.tensor([1.0, 2.0]))


# ------------------------------------------------------------------------- capacity
def test_capacity_budget_and_psnr_grow_with_snr(photo64: torch.Tensor) -> None:
    cap = JPEG2000Capacity(1 / 6)
    psnrs = []
    for snr in (0.0, 10.0, 20.0):
        r = cap.transmit(photo64[None], snr)
        expected = math.floor(2048 * math.log2(1.0 + 10.0 ** (snr / 10.0)))
        assert int(r.bits_budget[0]) == expected
        assert int(r.bits_used[0]) <= expected and r.reason == ["ok"]
        assert r.channel_uses == r.channel_uses_spent == 2048
        psnrs.append(float(r.psnr[0]))
    assert psnrs[0] < psnrs[1] < psnrs[2]
    assert psnrs[0] > 18.0


def test_capacity_per_image_snr_and_too_small(photo64: torch.Tensor) -> None:
    cap = JPEG2000Capacity(1 / 6, fallback_image=0.25)
    r = cap.transmit(torch.stack([photo64, photo64]), torch.tensor([-10.0, 10.0]))
    assert r.reason == ["budget_too_small", "ok"]  # -10 dB: 281 bits < the J2K headers
    assert int(r.bits_budget[0]) == math.floor(2048 * math.log2(1.1))
    assert torch.equal(r.img_hat[0], torch.full((3, 64, 64), 0.25))
    assert r.fallback.tolist() == [True, False]


# ------------------------------------------------------------------------- envelope
def test_best_mcs_envelope() -> None:
    choice = best_mcs_envelope({0: 18.0, 9: torch.tensor([24.0, 26.0]), 16: 10.5})
    assert choice.key == 9 and choice.psnr == pytest.approx(25.0)
    assert best_mcs_envelope({"a": 3.0, "b": 3.0}).key == "a"
    with pytest.raises(ValueError):
        best_mcs_envelope({})
