"""Every recipe gives byte-identical CSVs for the same config and seed (and different ones for
another seed). edge-batching and eval-cddm are checked beside their own tests."""

from __future__ import annotations

import math
from pathlib import Path

import pytest


def _csvs(folder: Path) -> dict[str, bytes]:
    """Every CSV but ``timings.csv`` (wall times, kept apart for this reason)."""
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.csv"))
            if p.name != "timings.csv"}


def _twice_and_another_seed(run, tmp_path: Path, **kw) -> None:
    a = _csvs(Path(run(out=tmp_path / "a", seed=3, **kw).path))
    b = _csvs(Path(run(out=tmp_path / "b", seed=3, **kw).path))
    c = _csvs(Path(run(out=tmp_path / "c", seed=4, **kw).path))
    assert a and a == b, sorted(a)
    assert any(a[name] != c[name] for name in a)


def test_link_curves_is_byte_reproducible(tmp_path: Path) -> None:
    from experiments.recipes.link_curves import run_link_curves

    _twice_and_another_seed(run_link_curves, tmp_path, mcs=[4], snr_db=[-2.0, 0.0],
                            block_bits=256, batch_size=20, max_batches=2, progress=False)


def test_eval_images_is_byte_reproducible(tmp_path: Path) -> None:
    from experiments.recipes.eval_images import run_eval_images

    _twice_and_another_seed(run_eval_images, tmp_path,
                            checkpoint="pretrained:adjscc_awgn_cbr1-12", data="builtin",
                            crop=32, snr_db=[0.0, 8.0], baselines=["jpeg2000+ldpc"], mcs=[2],
                            max_images=2, progress=False)


@pytest.mark.parametrize("transport", ["digital:int4", "analog"])
def test_wdmoe_is_byte_reproducible(tmp_path: Path, transport: str) -> None:
    from experiments.recipes.wdmoe import run_wdmoe

    _twice_and_another_seed(run_wdmoe, tmp_path, model="tiny", policies=["topk", "wlr:0.3"],
                            transports=[transport], snr_db=[0.0], limit=3, progress=False)


def test_digital_envelope_and_rate_distortion_run_and_repeat(tmp_path: Path, capsys) -> None:
    """The two image-set recipes run as semcom subcommands (and their python -m entry
    points), write their tables, and repeat byte for byte (JPEG2000 is deterministic; the
    envelope's link noise is seeded)."""
    from experiments.cli import main
    from experiments.recipes.digital_envelope import main as envelope_main

    env = ["--data", "builtin", "--crop", "64", "--snr-db", "15", "--window", "1",
           "--max-images", "2"]
    assert main(["digital-envelope", *env, "--out", str(tmp_path / "e1")]) == 0
    assert envelope_main([*env, "--out", str(tmp_path / "e2")]) == 0
    rd = ["--crop", "64", "--max-images", "2", "--codecs", "jpeg2000", "--bpp", "0.5,1",
          "--no-progress"]
    assert main(["rate-distortion", *rd, "--out", str(tmp_path / "r1")]) == 0
    assert main(["rate-distortion", *rd, "--out", str(tmp_path / "r2")]) == 0
    for kind in ("e", "r"):
        name = "digital_envelope" if kind == "e" else "rate_distortion"
        a, b = (_csvs(next((tmp_path / f"{kind}{i}" / name).iterdir())) for i in (1, 2))
        assert a and a == b
    env_rows = next((tmp_path / "e1" / "digital_envelope").iterdir()) / "envelope.csv"
    assert len(env_rows.read_text().splitlines()) == 1 + 3  # MCSs within 1 of the choice
    capsys.readouterr()
    assert main(["digital-envelope", "--window", "-1", "--out", str(tmp_path / "bad")]) == 2
    assert "window must be an int >= 0" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_check_bler_table_runs_as_a_subcommand_and_repeats(tmp_path: Path, capsys) -> None:
    from experiments.cli import main
    from experiments.tools.check_bler_table import main as tool_main

    assert main(["check-bler-table", "--out", str(tmp_path / "a")]) == 0
    assert tool_main(["--out", str(tmp_path / "b")]) == 0  # python -m: the same command
    a, b = (_csvs(next((tmp_path / d / "check_bler_table").iterdir())) for d in "ab")
    assert a and a == b
    capsys.readouterr()
    assert main(["check-bler-table", "--target", "1.5", "--out", str(tmp_path / "c")]) == 2
    assert "target must lie in (0, 1)" in capsys.readouterr().err
    assert main(["check-bler-table", "--channel", "nope", "--out", str(tmp_path / "c")]) == 2
    assert "channel must be one of" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()


def test_check_bler_table_returns_the_comparison_without_files(tmp_path: Path) -> None:
    """The computation behind check-bler-table returns the rows and the gaps per (category,
    CBS) and writes nothing; a bad setting fails when the config is built."""
    from experiments.tools.check_bler_table import (
        CheckBLERTableConfig,
        check_bler_table,
        run_check_bler_table,
    )

    check = check_bler_table(CheckBLERTableConfig(target=0.1))
    assert check.rows and {g["category"] for g in check.gap_rows()} <= {"PDSCH", "PUSCH"}
    assert sum(g["n"] for g in check.gap_rows()) == sum(
        math.isfinite(r["diff_db"]) for r in check.rows)
    assert list(tmp_path.iterdir()) == []
    for bad in (0.0, 1.0, float("nan")):
        with pytest.raises(ValueError, match="target must lie in"):
            run_check_bler_table(target=bad, out=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_image_set_recipes_return_data_without_files(tmp_path: Path) -> None:
    """The computations behind digital-envelope and rate-distortion return their numbers
    and write nothing: every stream within its budget, PSNR rising with the rate, and the
    envelope's best MCS among those decoded."""
    from experiments.recipes.digital_envelope import DigitalEnvelopeConfig, find_digital_envelope
    from experiments.recipes.eval_images import load_images
    from experiments.recipes.rate_distortion import RateDistortionConfig, measure_rate_distortion

    images = load_images("builtin", 64, 2)
    rd = measure_rate_distortion(RateDistortionConfig(codecs=["jpeg2000"], bpp=[0.5, 2.0]),
                                 images, progress=False)
    assert all(r["bytes"] <= r["budget_bytes"] for r in rd.rows)
    low, high = rd.mean_rows()
    assert high["psnr"] > low["psnr"] + 1.0 and 0.9 <= high["fill"] <= 1.0
    env = find_digital_envelope(DigitalEnvelopeConfig(snr_db=[15.0], window=1), images,
                                progress=False)
    (best,) = env.envelope
    decoded = {r["mcs"]: r["psnr"] for r in env.rows}
    assert best["mcs"] in decoded and best["psnr"] == max(decoded.values())
    assert best["capacity_psnr"] >= best["psnr"]
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="window"):
        DigitalEnvelopeConfig(window=-1)
    with pytest.raises(ValueError, match="bpp"):
        RateDistortionConfig(bpp=[0.0])
