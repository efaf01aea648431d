"""SwinJSCC: geometry, CBR, shifted-window masking, SNR adaptation and end-to-end training."""

from __future__ import annotations

import pytest
import torch

import phy
from jscc.models import build_codec
from jscc.models.swinjscc import (
    MASK_VALUE,
    SWIN_CONFIGS,
    SwinBlock,
    SwinJSCC,
    relative_position_index,
    shifted_window_mask,
    stage_window,
)


@pytest.fixture(scope="module")
def small() -> SwinJSCC:
    torch.manual_seed(0)
    return SwinJSCC(cbr=1 / 12, config="small").eval()


@pytest.mark.parametrize("size", [(32, 32), (64, 64), (32, 64)])
def test_small_shapes_and_cbr(small: SwinJSCC, size: tuple[int, int]) -> None:
    h, w = size
    img = torch.rand(2, 3, h, w)
    with torch.no_grad():
        z = small.encode(img, 10.0)
        out = small.decode(z, 10.0)
    assert small.latent_channels == 8
    assert z.shape == (2, 8, h // 4, w // 4)
    assert z.dtype == torch.float32
    assert out.shape == img.shape
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    assert small.cbr(size) == pytest.approx(1 / 12, abs=0.0)
    assert small.latent_shape(size) == tuple(z.shape[1:])


def test_registry_and_cbr_values() -> None:
    codec = build_codec("swinjscc", cbr=1 / 6, config="small")
    assert isinstance(codec, SwinJSCC) and codec.latent_channels == 16 and codec.snr_adaptive
    assert codec.cbr((32, 32)) == 1 / 6
    c36 = SwinJSCC(cbr=None, latent_channels=36, config="small", snr_adaptive=False)
    assert c36.cbr((64, 64)) == pytest.approx(36 / 96)
    assert not c36.snr_adaptive
    # The high-resolution configs have i = 4 downsamplings: C = 1536 * cbr.
    assert SWIN_CONFIGS["base"].num_downsamplings == 4
    assert SWIN_CONFIGS["cifar"].num_downsamplings == 2


@pytest.mark.parametrize("cbr", [0.1, 1 / 200, 0.0, -1 / 12, float("nan")])
def test_bad_cbr(cbr: float) -> None:
    with pytest.raises(ValueError, match="k/96"):
        SwinJSCC(cbr=cbr, config="small")


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="latent_channels"):
        SwinJSCC(cbr=1 / 12, latent_channels=16, config="small")
    with pytest.raises(ValueError, match="config"):
        SwinJSCC(cbr=1 / 12, config="huge")
    with pytest.raises(ValueError, match="heads"):
        SwinJSCC(cbr=1 / 12, config="small", num_heads=(3, 4))


def test_bad_image_sizes(small: SwinJSCC) -> None:
    # 30: not a multiple of 2^i = 4; 36: first stage 16x18 tokens, 18 not a multiple of the
    # window 4; 40: second stage 10x10 tokens.
    for size in [(30, 32), (32, 36), (40, 40), (48, 40)]:
        with pytest.raises(ValueError, match="image size"):
            small.encode(torch.rand(1, 3, *size), 10.0)
        with pytest.raises(ValueError, match="image size"):
            small.cbr(size)
    assert small.latent_shape((48, 32)) == (8, 12, 8)  # not square, but fits
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        small.encode(torch.rand(1, 1, 32, 32), 10.0)
    with pytest.raises(ValueError, match="z_hat"):
        small.decode(torch.rand(1, 7, 8, 8), 10.0)
    with pytest.raises(ValueError, match="snr_db"):
        small.encode(torch.rand(2, 3, 32, 32), None)
    with pytest.raises(ValueError, match="snr_db"):
        small.encode(torch.rand(2, 3, 32, 32), torch.tensor([1.0, 2.0, 3.0]))


def test_window_clipping() -> None:
    assert stage_window(16, 16, 4) == (4, True)
    assert stage_window(4, 4, 4) == (4, False)
    assert stage_window(4, 8, 8) == (4, False)
    # Window 8 at 32 px: stage 0 (16x16 tokens) shifts by 4, stage 1 (8x8) is one unshifted window.
    codec = SwinJSCC(cbr=1 / 12, config="small", window_size=8)
    with torch.no_grad():
        out = codec.decode(codec.encode(torch.rand(1, 3, 32, 32), 5.0), 5.0)
    assert out.shape == (1, 3, 32, 32)


def test_relative_position_index() -> None:
    m = 4
    idx = relative_position_index(m, m)
    assert idx.shape == (16, 16)
    assert int(idx.min()) == 0 and int(idx.max()) == (2 * m - 1) ** 2 - 1
    # Same offset → same entry; the diagonal is the centre of the table.
    assert bool((idx.diagonal() == (m - 1) * (2 * m - 1) + (m - 1)).all())
    # Token 0 = (0, 0), token 5 = (1, 1); pair (5, 0) has offset (+1, +1); (10, 5) too.
    assert idx[5, 0] == idx[10, 5] == m * (2 * m - 1) + m
    # A clipped window reads the central part of a larger table and agrees on offsets.
    small = relative_position_index(2, m)
    assert small[3, 0] == idx[5, 0] and small[0, 0] == idx[0, 0]
    with pytest.raises(ValueError):
        relative_position_index(5, 4)


def test_shifted_window_mask_regions() -> None:
    h, w, ws, s = 8, 12, 4, 2
    mask = shifted_window_mask(h, w, ws, s)
    assert mask.shape == ((h // ws) * (w // ws), ws * ws, ws * ws)
    assert set(mask.unique().tolist()) == {0.0, MASK_VALUE}
    # Independent rule: a token at shifted position p came from (p + s) mod size; two tokens of
    # one window may attend iff on each axis both or neither wrapped around the border.
    for wi in range(h // ws):
        for wj in range(w // ws):
            win = wi * (w // ws) + wj
            for a in range(ws * ws):
                for b in range(ws * ws):
                    ya, xa = wi * ws + a // ws, wj * ws + a % ws
                    yb, xb = wi * ws + b // ws, wj * ws + b % ws
                    same = ((ya + s >= h) == (yb + s >= h)) and ((xa + s >= w) == (xb + s >= w))
                    assert mask[win, a, b] == (0.0 if same else MASK_VALUE)
    # Interior windows are unmasked; the bottom-right window splits into four regions.
    assert bool((mask[0] == 0).all())
    assert int((mask[-1] == 0).sum()) == 4 * (ws * ws // 4) ** 2


def test_shifted_block_does_not_leak_across_wrap() -> None:
    """Changing the top-left token must not change the bottom-right token's output.

    After the cyclic shift both share the bottom-right window; the mask keeps them apart.
    """
    torch.manual_seed(0)
    h = w = 8
    blk = SwinBlock(16, 2, 4, shifted=True).eval()
    x = torch.randn(1, h * w, 16)
    x2 = x.clone()
    x2[0, 0] = torch.randn(16)  # (a constant offset would vanish in the LayerNorm)
    with torch.no_grad():
        y, y2 = blk(x, h, w), blk(x2, h, w)
        d = (y - y2).abs().amax(-1)[0].reshape(h, w)
    assert float(d[-1, -1]) == 0.0  # same shifted window, different region: no leak
    assert float(d[0, 1]) > 1e-4  # same shifted window and region: interacts
    assert float(d[3, 3]) == 0.0  # other window
    # Without the mask the wrapped token would leak: the mask is what prevents it.
    ws, sh = 4, 2
    y_nomask = []
    for inp in (x, x2):
        t = blk.norm1(inp).reshape(1, h, w, 16).roll((-sh, -sh), (1, 2))
        from jscc.models.swinjscc import _window_partition
        y_nomask.append(blk.attn(_window_partition(t, ws), ws, None).detach())
    assert float((y_nomask[0] - y_nomask[1])[0, -1, -1].abs().max()) > 1e-4


def test_snr_dependence(small: SwinJSCC) -> None:
    img = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        z0, z20 = small.encode(img, 0.0), small.encode(img, 20.0)
        assert not torch.allclose(z0, z20)
        assert not torch.allclose(small.decode(z0, 0.0), small.decode(z0, 20.0))
        # A [B] tensor of SNRs acts per example.
        snr = torch.tensor([0.0, 20.0, 7.0])
        zb = small.encode(img, snr)
        torch.testing.assert_close(zb[0], z0[0])
        torch.testing.assert_close(zb[1], z20[1])
        torch.testing.assert_close(small.decode(zb, snr)[2],
                                   small.decode(small.encode(img, 7.0), 7.0)[2])
    plain = SwinJSCC(cbr=1 / 12, config="small", snr_adaptive=False).eval()
    with torch.no_grad():
        z = plain.encode(img)
        torch.testing.assert_close(plain.decode(z, 0.0), plain.decode(z, 20.0))


def _smooth_images(n: int, size: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    low = torch.rand(n, 3, size // 8, size // 8, generator=g)
    return torch.nn.functional.interpolate(low, size=(size, size), mode="bilinear")


def test_end_to_end_training_through_awgn() -> None:
    phy.set_seed(7)
    codec = SwinJSCC(cbr=1 / 6, config="small")
    link = phy.AnalogLink(phy.AWGN())
    img = _smooth_images(4, 32)
    out = codec(img, link, 10.0)
    loss = torch.nn.functional.mse_loss(out, img)
    loss.backward()
    g = codec.patch_embed.weight.grad
    assert g is not None and float(g.abs().sum()) > 0
    assert codec.enc_stages[0].blocks[1].attn.bias_table.grad is not None
    assert codec.enc_gates[0].mlp[0].weight.grad is not None

    opt = torch.optim.Adam(codec.parameters(), lr=1e-3)
    losses = []
    for _ in range(20):  # ~1 s; a transformer first plateaus at the mean image
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(codec(img, link, 10.0), img)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.85 * losses[0]


def test_base_config_parameter_count() -> None:
    with torch.device("meta"):  # count only: no memory, no init time
        codec = SwinJSCC(cbr=32 / 1536, config="base")
    assert codec.latent_channels == 32
    n = sum(p.numel() for p in codec.parameters())
    assert 10_000_000 < n < 30_000_000
    assert codec.latent_shape((256, 256)) == (32, 16, 16)
    assert codec.cbr((256, 256)) == pytest.approx(1 / 48)
    with pytest.raises(ValueError, match="image size"):
        codec.latent_shape((96, 96))


def test_large_config_builds_on_meta() -> None:
    with torch.device("meta"):
        codec = SwinJSCC(cbr=1 / 16, config="large")
    assert codec.latent_channels == 96
    assert sum(p.numel() for p in codec.parameters()) > sum(
        p.numel() for p in SwinJSCC(cbr=1 / 16, config="small").parameters())
