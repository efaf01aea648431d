"""jscc.evaluation: padding of whole images, metrics on the original pixels, channel uses."""

from __future__ import annotations

import math

import pytest
import torch

import phy
from jscc import build_codec
from jscc.data import ImageDataModule
from jscc.evaluation import evaluate_codec, pad_to_multiple


def test_pad_to_multiple_reflects_and_keeps_the_original() -> None:
    x = torch.rand(1, 3, 321, 481)
    xp, (h, w) = pad_to_multiple(x, 4)
    assert xp.shape == (1, 3, 324, 484) and (h, w) == (321, 481)
    assert torch.equal(xp[..., :321, :481], x)
    assert torch.equal(xp[..., 321, :481], x[..., 319, :])  # reflection about the last row
    same, _ = pad_to_multiple(x[..., :320, :480], 4)
    assert same.shape == (1, 3, 320, 480)


def test_metrics_use_original_pixels_and_uses_count_the_padding() -> None:
    """A system that adds noise of std 0.01 everywhere scores 40 dB (± 0.1) on whole images of
    two sizes; channel uses follow the padded size at CBR 1/12."""
    link = phy.AnalogLink(phy.AWGN())

    def noisy(img: torch.Tensor, link: phy.AnalogLink, snr: float):
        r = link.send(torch.zeros(img.shape[0], 8, img.shape[2] // 4, img.shape[3] // 4), snr)
        return (img + 0.01 * torch.randn_like(img)).clamp(0, 1), r

    imgs = [torch.rand(3, 321, 481) * 0.8 + 0.1, torch.rand(3, 64, 64) * 0.8 + 0.1]
    (score,) = evaluate_codec(noisy, imgs, link, [10.0])
    assert abs(score.psnr - 40.0) < 0.1
    uses = (8 * 81 * 121 / 2 + 8 * 16 * 16 / 2) / 2
    assert math.isclose(score.channel_uses, uses)
    assert score.num_images == 2


def test_evaluate_codec_is_seeded_and_checks_its_input() -> None:
    codec = build_codec("deepjscc", cbr=1 / 12, num_filters=8).eval()
    imgs = torch.rand(3, 3, 32, 32)
    link = phy.AnalogLink(phy.AWGN())
    a = evaluate_codec(codec.transmit, imgs, link, [5.0], seed=3)
    b = evaluate_codec(codec.transmit, imgs, link, [5.0], seed=3)
    assert a == b
    with pytest.raises(ValueError, match="images must be"):
        evaluate_codec(codec.transmit, torch.rand(3, 32, 32), link, [5.0])


def test_data_module_mixes_builtin_photos_and_validates_on_a_fixed_subset(tmp_path) -> None:
    from PIL import Image

    for i in range(3):
        Image.fromarray((torch.rand(80, 90, 3) * 255).byte().numpy()).save(tmp_path / f"{i}.png")
    dm = ImageDataModule(source="folder", train_dir=str(tmp_path), builtin_train=True,
                         val_source="builtin", val_crop=64, val_max_images=5, crop=32,
                         batch_size=4, crops_per_image=2)
    loader = dm.train_dataloader()
    assert len(loader.images) == 3 + 9  # the folder + the nine built-in training photos
    assert len(loader) == -(-12 * 2 // 4)
    dm.setup("fit")
    assert len(dm.val_dataset) == 5 and dm.val_dataset[0].shape == (3, 64, 64)
    with pytest.raises(ValueError, match="builtin_train adds the built-in photos"):
        ImageDataModule(source="builtin", builtin_train=True)
    with pytest.raises(ValueError, match="val_max_images must be a positive int"):
        ImageDataModule(source="builtin", val_max_images=0)
