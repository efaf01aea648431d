"""CNN JSCC codecs (DeepJSCC, ADJSCC): CBR bookkeeping, power constraint, SNR conditioning,
end-to-end gradients through phy.AnalogLink, registry and output range."""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction

import pytest
import torch
import torch.nn.functional as F

import phy
from jscc.models import available_codecs, build_codec
from jscc.models.adjscc import ADJSCC
from jscc.models.deepjscc import DeepJSCC, latent_channels_for_cbr

SMALL = {"num_filters": 16, "num_blocks": 1}


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """Tiny models: one intra-op thread is faster, and robust when the CPU is shared."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


class RecordingAWGN(phy.AWGN):
    """AWGN that keeps the last transmitted symbols ``x``."""

    def propagate(self, x: torch.Tensor, no: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.last_x = x.detach().clone()
        return super().propagate(x, no)


def _smooth_images(b: int, h: int, w: int) -> torch.Tensor:
    """Images in [0, 1] made of upsampled 2x2 random patterns (easy to fit)."""
    return F.interpolate(torch.rand(b, 3, 2, 2), size=(h, w), mode="bilinear",
                         align_corners=False)


# ---------------------------------------------------------------------------- CBR
@pytest.mark.parametrize("name", ["deepjscc", "adjscc"])
@pytest.mark.parametrize("cbr,channels", [(1 / 24, 4), (1 / 12, 8), (1 / 6, 16)])
@pytest.mark.parametrize("size", [(32, 32), (64, 48)])
def test_cbr_is_exact(name: str, cbr: float, channels: int, size: tuple[int, int]) -> None:
    codec = build_codec(name, cbr=cbr, **SMALL)
    h, w = size
    assert codec.latent_channels == channels
    assert codec.cbr((h, w)) == cbr
    with torch.no_grad():
        z = codec.encode(torch.rand(2, 3, h, w), 10.0)
    assert z.shape == (2, channels, h // 4, w // 4)
    assert tuple(z.shape[1:]) == codec.latent_shape((h, w))
    assert not z.is_complex()
    # By hand: numel/2 complex channel uses over 3HW source dimensions = C/96.
    assert Fraction(z[0].numel(), 2 * 3 * h * w) == Fraction(channels, 96)
    assert z[0].numel() / 2 / (3 * h * w) == cbr
    assert phy.AnalogLink.channel_uses_for(z.shape) == z[0].numel() // 2


@pytest.mark.parametrize("bad", [0.1, 0.0, -1 / 12, 1 / 200, float("nan")])
def test_invalid_cbr_names_allowed_values(bad: float) -> None:
    with pytest.raises(ValueError, match=r"k/96"):
        DeepJSCC(cbr=bad)
    with pytest.raises(ValueError, match=r"1/12 \(C=8\)"):
        ADJSCC(cbr=bad)


def test_cbr_to_channels() -> None:
    assert latent_channels_for_cbr(1 / 96) == 1
    assert latent_channels_for_cbr(1 / 16) == 6
    assert latent_channels_for_cbr(0.25) == 24
    assert DeepJSCC(cbr=1 / 6, **SMALL).nominal_cbr == 1 / 6


@pytest.mark.parametrize("name", ["deepjscc", "adjscc"])
def test_image_size_not_multiple_of_4(name: str) -> None:
    codec = build_codec(name, cbr=1 / 12, **SMALL)
    with pytest.raises(ValueError, match="multiples of 4"):
        codec.encode(torch.rand(1, 3, 30, 32), 10.0)
    with pytest.raises(ValueError, match="multiples of 4"):
        codec.encode(torch.rand(1, 3, 32, 34), 10.0)
    with pytest.raises(ValueError, match="multiples of 4"):
        codec.cbr((33, 32))
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        codec.encode(torch.rand(1, 1, 32, 32), 10.0)
    with pytest.raises(ValueError, match="z_hat"):
        codec.decode(torch.rand(1, 5, 8, 8), 10.0)


@pytest.mark.parametrize("name", ["deepjscc", "adjscc"])
@pytest.mark.parametrize("stages,cbr,channels", [(3, 1 / 12, 32), (4, 1 / 12, 128),
                                                 (4, 1 / 6, 256), (1, 1 / 12, 2)])
def test_downsampling_stages_set_the_latent_and_cbr(name: str, stages: int, cbr: float,
                                                    channels: int) -> None:
    """s stride-2 stages: latent [C, H/2^s, W/2^s] and CBR = C / (6 · 4^s), exactly."""
    codec = build_codec(name, cbr=cbr, num_filters=8, num_blocks=0, downsampling_stages=stages)
    f = 2**stages
    h, w = 2 * f, 3 * f
    img = torch.rand(2, 3, h, w)
    with torch.no_grad():
        z = codec.encode(img, 10.0)
        out = codec.decode(z, 10.0)
    assert z.shape == (2, channels, h // f, w // f) == (2, *codec.latent_shape((h, w)))
    assert out.shape == img.shape
    assert Fraction(z[0].numel(), 2 * 3 * h * w) == Fraction(channels, 6 * 4**stages)
    assert codec.cbr((h, w)) == codec.nominal_cbr == cbr
    # every stride-2 stage halves the size, the stride-1 ones keep it
    strides = [m.stride[0] for m in codec.encoder.modules() if isinstance(m, torch.nn.Conv2d)]
    assert strides == [2] * stages + [1]
    with pytest.raises(ValueError, match=f"multiples of {f}"):
        codec.encode(torch.rand(1, 3, f + f // 2 if f > 2 else 3, w), 10.0)


def test_bad_downsampling_stages_are_refused() -> None:
    for bad in (0, 7, 2.0, True):
        with pytest.raises((TypeError, ValueError),
                           match=r"downsampling_stages must be an int( in \[1, 6\])?"):
            ADJSCC(cbr=1 / 12, downsampling_stages=bad)
    with pytest.raises(ValueError, match=r"k/1536"):
        ADJSCC(cbr=1 / 1000, downsampling_stages=4)
    with pytest.raises(ValueError, match="at least 4"):
        DeepJSCC(num_filters=(8, 8, 8), downsampling_stages=4)


def test_backbone_options() -> None:
    paper = DeepJSCC(cbr=1 / 6, num_filters=(16, 32, 32, 32))  # Bourtsoulatze et al. widths
    img = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert paper.decode(paper.encode(img)).shape == img.shape
    k9 = DeepJSCC(cbr=1 / 12, num_filters=8, num_blocks=0, first_kernel_size=9)
    with torch.no_grad():
        assert k9.decode(k9.encode(img)).shape == img.shape
    with pytest.raises(ValueError, match="odd"):
        DeepJSCC(kernel_size=4)
    with pytest.raises(ValueError, match="num_blocks"):
        DeepJSCC(num_filters=(8, 8, 8), num_blocks=2)
    with pytest.raises(ValueError, match="snr_range_db"):
        ADJSCC(snr_range_db=(20.0, 0.0))


# ---------------------------------------------------------------------------- power constraint
@pytest.mark.parametrize("name", ["deepjscc", "adjscc"])
def test_link_power_constraint(name: str) -> None:
    codec = build_codec(name, cbr=1 / 12, **SMALL)
    channel = RecordingAWGN()
    link = phy.AnalogLink(channel)
    img = torch.rand(6, 3, 32, 32)
    snr = torch.linspace(0.0, 20.0, 6)
    with torch.no_grad():
        out, r = codec.transmit(img, link, snr)
        z = codec.encode(img, snr)
    x = channel.last_x
    assert x.shape == (6, r.channel_uses)
    assert r.channel_uses == z[0].numel() // 2
    energy = (x.real.square() + x.imag.square()).mean(dim=1)
    torch.testing.assert_close(energy, torch.ones(6), atol=1e-5, rtol=0)
    # The model itself does not normalize: latent energies differ between images.
    assert out.shape == img.shape


# ---------------------------------------------------------------------------- SNR conditioning
def test_adjscc_depends_on_snr_deepjscc_does_not() -> None:
    img = torch.rand(2, 3, 32, 32)
    ad = ADJSCC(cbr=1 / 12, **SMALL)
    assert ad.snr_adaptive
    with torch.no_grad():
        z0, z20 = ad.encode(img, 0.0), ad.encode(img, 20.0)
        assert (z0 - z20).abs().max() > 1e-6
        d0, d20 = ad.decode(z20, 0.0), ad.decode(z20, 20.0)
        assert (d0 - d20).abs().max() > 1e-6
        # Per-example SNR tensor: row i equals the scalar-SNR result.
        zb = ad.encode(img, torch.tensor([0.0, 20.0]))
        torch.testing.assert_close(zb[0], z0[0])
        torch.testing.assert_close(zb[1], z20[1])
    with pytest.raises(ValueError, match="snr_db"):
        ad.encode(img)
    with pytest.raises(ValueError, match="snr_db"):
        ad.encode(img, torch.zeros(3))

    dj = DeepJSCC(cbr=1 / 12, **SMALL)
    assert not dj.snr_adaptive
    with torch.no_grad():
        torch.testing.assert_close(dj.encode(img, 0.0), dj.encode(img, 20.0), rtol=0, atol=0)
        z = dj.encode(img)
        torch.testing.assert_close(dj.decode(z, 0.0), dj.decode(z, 20.0), rtol=0, atol=0)


def test_adjscc_csi() -> None:
    img = torch.rand(2, 3, 32, 32)
    ad = ADJSCC(cbr=1 / 12, use_csi=True, **SMALL)
    with torch.no_grad():
        z = ad.encode(img, 10.0)
        base = ad.decode(z, 10.0)  # base-class signature: csi defaults to 1
        torch.testing.assert_close(base, ad.decode(z, 10.0, csi=1.0))
        assert (ad.decode(z, 10.0, csi=torch.tensor([0.1, 3.0])) - base).abs().max() > 1e-6
        link = phy.AnalogLink(phy.RayleighFading("frame"))
        out, r = ad.transmit(img, link, 10.0)
    assert out.shape == img.shape
    csi = ADJSCC.csi_from_h(r.h)
    assert csi.shape == (2,)
    assert torch.all(csi > 0)
    with pytest.raises(ValueError, match="use_csi"):
        ADJSCC(cbr=1 / 12, **SMALL).decode(z, 10.0, csi=1.0)


# ---------------------------------------------------------------------------- training
@pytest.mark.parametrize("name", ["deepjscc", "adjscc"])
def test_gradients_and_overfitting(name: str) -> None:
    torch.manual_seed(0)
    codec = build_codec(name, cbr=1 / 6, num_filters=8, num_blocks=1)
    link = phy.AnalogLink(phy.AWGN())
    img = _smooth_images(4, 16, 16)

    def loss_fn() -> torch.Tensor:
        return F.mse_loss(codec(img, link, 20.0), img)

    loss = loss_fn()
    loss.backward()
    first = codec.encoder.stages[0].conv.weight.grad
    assert first is not None and first.abs().sum() > 0
    codec.zero_grad()

    phy.set_seed(7)
    with torch.no_grad():
        before = loss_fn().item()
    opt = torch.optim.Adam(codec.parameters(), lr=3e-3)
    for _ in range(25):
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        opt.step()
    phy.set_seed(7)
    with torch.no_grad():
        after = loss_fn().item()
    assert after < 0.85 * before, (before, after)


# ---------------------------------------------------------------------------- registry, range
def test_registry() -> None:
    assert {"deepjscc", "adjscc"} <= set(available_codecs())
    codec = build_codec("deepjscc", cbr=1 / 6)
    assert isinstance(codec, DeepJSCC)
    assert codec.latent_channels == 16 and codec.filters == [64, 64, 64, 64]
    ad = build_codec("adjscc", cbr=1 / 12, snr_range_db=(0.0, 10.0), num_filters=8)
    assert isinstance(ad, ADJSCC) and ad.snr_range_db == (0.0, 10.0)
    with pytest.raises(ValueError, match="unknown codec 'no-such-codec'"):
        build_codec("no-such-codec", cbr=1 / 6)
    spec = build_codec("adjscc:num_filters=8", cbr=1 / 12)  # a spec with options
    assert isinstance(spec, ADJSCC) and spec.filters[0] == 8
    with pytest.raises(ValueError, match="also passed directly"):
        build_codec("adjscc:num_filters=8", cbr=1 / 12, num_filters=16)


@pytest.mark.parametrize("name", ["deepjscc", "adjscc"])
@pytest.mark.parametrize("size", [(32, 32), (64, 48)])
def test_output_range_and_shape(name: str, size: tuple[int, int]) -> None:
    codec = build_codec(name, cbr=1 / 12, **SMALL)
    img = torch.rand(3, 3, *size)
    link = phy.AnalogLink(phy.AWGN())
    with torch.no_grad():
        out = codec(img, link, torch.tensor([0.0, 5.0, 20.0]))
        # Large latents far outside the training range still decode into [0, 1].
        wild = codec.decode(100.0 * torch.randn(3, 8, size[0] // 4, size[1] // 4), 10.0)
    for y in (out, wild):
        assert y.shape == img.shape
        assert torch.all(y >= 0) and torch.all(y <= 1)
        assert torch.isfinite(y).all()


@pytest.mark.parametrize("name", ["deepjscc", "adjscc", "swinjscc"])
def test_uint8_float64_and_bf16_images_are_converted_others_refused(name: str) -> None:
    from jscc import build_codec

    codec = build_codec(name, cbr=1 / 12 if name != "swinjscc" else 1 / 16).eval()
    img8 = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    ref = codec.encode(img8.float() / 255, 10.0)
    torch.testing.assert_close(codec.encode(img8, 10.0), ref)
    torch.testing.assert_close(codec.encode(img8.double() / 255, 10.0), ref)
    bf = (img8.float() / 255).bfloat16()
    torch.testing.assert_close(codec.encode(bf, 10.0), codec.encode(bf.float(), 10.0))
    with pytest.raises(ValueError, match=r"float images must lie in \[0, 1\]"):
        codec.encode(img8.float(), 10.0)  # 0-255 values in a float tensor
    with pytest.raises(ValueError, match=r"uint8 .* or float .* got dtype torch\.int32"):
        codec.encode(img8.int(), 10.0)
