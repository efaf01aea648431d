"""PSNR and size-dependent MS-SSIM."""

from __future__ import annotations

import itertools
import math

import pytest
import pytorch_msssim
import torch

from jscc.metrics import (
    PSNR_MAX_DB,
    batch_mean,
    ms_ssim,
    mse,
    msssim_method,
    psnr,
    psnr_from_mse,
)


@pytest.mark.parametrize("offset", [0.25, 0.1, 0.05, 0.01])
def test_psnr_constant_offset(offset):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 3, 20, 24, generator=g) * (1 - offset)
    p = psnr(x + offset, x)
    assert p.shape == (3,)
    torch.testing.assert_close(p, torch.full((3,), 20 * math.log10(1 / offset)), rtol=0,
                               atol=1e-4)


def test_psnr_per_image_range_and_cap():
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 0.8
    y = x.clone()
    y[1] += 0.1
    p = psnr(y, x)
    assert p[0].item() == PSNR_MAX_DB  # identical image: capped, finite
    assert p[1].item() == pytest.approx(20.0, abs=1e-4)
    p255 = psnr(y * 255, x * 255, data_range=255.0)
    assert p255[1].item() == pytest.approx(20.0, abs=1e-3)
    assert psnr(y[1], x[1]).shape == (1,)  # one [C, H, W] image
    torch.testing.assert_close(psnr_from_mse(mse(y, x)), p)
    assert batch_mean(p) == pytest.approx((PSNR_MAX_DB + 20.0) / 2, abs=1e-4)


@pytest.mark.parametrize("size, method", [(8, "ssim"), (16, "ssim"), (24, "ms_ssim_3"),
                                          (32, "ms_ssim_3"), (160, "ms_ssim_3"),
                                          (161, "ms_ssim_5"), (256, "ms_ssim_5")])
def test_msssim_method_by_size(size, method):
    assert msssim_method(size, size) == method
    assert msssim_method(size, 1000) == method  # the smaller side decides


@pytest.mark.parametrize("size", [16, 32, 256])
def test_ms_ssim_identical_and_decreasing(size):
    g = torch.Generator().manual_seed(2)
    b = 2 if size < 100 else 1  # pytorch_msssim is slow on a CPU
    x = torch.rand(b, 3, size, size, generator=g)
    ones = ms_ssim(x, x)
    assert ones.shape == (b,)
    torch.testing.assert_close(ones, torch.ones(b), rtol=0, atol=1e-5)
    noise = torch.randn(x.shape, generator=g)
    vals = [ms_ssim((x + s * noise).clamp(0, 1), x) for s in (0.03, 0.1, 0.3)]
    for a, b in itertools.pairwise(vals):
        assert (b < a).all()
    assert (vals[-1] < 0.9).all() and (vals[0] > 0.9).all()
    if size > 160:  # the standard 5-scale index, straight from pytorch_msssim
        y = (x + 0.1 * noise).clamp(0, 1)
        ref = pytorch_msssim.ms_ssim(y, x, data_range=1.0, size_average=False)
        torch.testing.assert_close(vals[1], ref)


def test_ms_ssim_is_differentiable():
    g = torch.Generator().manual_seed(4)
    x = torch.rand(2, 3, 32, 32, generator=g)
    y = torch.rand(2, 3, 32, 32, generator=g).requires_grad_(True)
    (1 - ms_ssim(y, x).mean()).backward()
    assert y.grad is not None and torch.isfinite(y.grad).all() and y.grad.abs().sum() > 0


def test_metric_input_errors():
    x = torch.rand(2, 3, 32, 32)
    with pytest.raises(ValueError, match="same shape"):
        psnr(x, x[:, :, :16])
    with pytest.raises(ValueError, match=r"\[B, C, H, W\]"):
        psnr(x[0, 0], x[0, 0])
    with pytest.raises(ValueError, match="float"):
        ms_ssim((x * 255).to(torch.uint8), (x * 255).to(torch.uint8))
    with pytest.raises(ValueError, match="ref values"):
        psnr(x, x * 2 + 0.5)
    with pytest.raises(ValueError, match="data_range"):
        psnr(x, x, data_range=0.0)
    with pytest.raises(ValueError, match="too small"):
        ms_ssim(x[:, :, :5], x[:, :, :5])
    with pytest.raises(TypeError):
        psnr(x.numpy(), x)  # type: ignore[arg-type]
