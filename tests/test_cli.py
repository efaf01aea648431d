"""The semcom command line: version, help, a small link-curves run, and its errors."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from experiments.cli import main
from experiments.recipes.link_curves import snr_at_bler
from phy.sweep import make_channel, parse_snr_range


def test_version_and_help(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert "semcom 0." in capsys.readouterr().out
    assert main([]) == 0
    assert "link-curves" in capsys.readouterr().out


def test_console_script_is_installed() -> None:
    out = subprocess.run([sys.executable, "-m", "experiments.cli", "--help"], check=True,
                         capture_output=True, text=True).stdout
    assert "quickstart" in out and "link-curves" in out


def test_link_curves_run_writes_results(tmp_path: Path) -> None:
    rc = main(["link-curves", "--channel", "awgn", "--mcs", "4", "--snr-db", "-4:2:2",
               "--block-bits", "256", "--batch-size", "40", "--max-batches", "2",
               "--target-block-errors", "10", "--out", str(tmp_path), "--no-progress"])
    assert rc == 0
    runs = list((tmp_path / "link_curves").iterdir())
    assert len(runs) == 1
    run = runs[0]
    for name in ("config.yaml", "manifest.json", "link_curves.csv", "link_curves.png",
                 "summary.md"):
        assert (run / name).is_file(), name
    assert (run / "link_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["seed"] == 0
    with open(run / "link_curves.csv") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["snr_db"]) for r in rows] == [-4.0, -2.0, 0.0, 2.0]
    blers = [float(r["bler"]) for r in rows if int(r["num_blocks"]) > 0]
    # points never simulated are missing, not error-free
    assert all(r["bler"] == "" and r["ber"] == "" for r in rows if int(r["num_blocks"]) == 0)
    # QPSK R=0.30 (Shannon limit -2.5 dB): fails at -4 dB, works at +2 dB
    assert blers[0] == 1.0 and blers[-1] < 0.1
    assert blers == sorted(blers, reverse=True)


def test_link_curves_resume_gives_the_uninterrupted_numbers(tmp_path: Path) -> None:
    """A sweep cut after its first MCS and resumed writes the same CSV as one full run."""
    common = ["link-curves", "--channel", "awgn", "--snr-db", "-4:2:2", "--block-bits", "256",
              "--batch-size", "40", "--max-batches", "2", "--target-block-errors", "10",
              "--no-progress"]
    assert main([*common, "--mcs", "4,10", "--out", str(tmp_path / "full")]) == 0
    assert main([*common, "--mcs", "4", "--out", str(tmp_path / "cut")]) == 0
    cut = next((tmp_path / "cut" / "link_curves").iterdir())
    assert main([*common, "--mcs", "4,10", "--out", str(tmp_path / "resumed"),
                 "--resume", str(cut)]) == 0

    def read(root: Path) -> list[dict]:
        with open(next((root / "link_curves").iterdir()) / "link_curves.csv") as f:
            return list(csv.DictReader(f))

    full, resumed = read(tmp_path / "full"), read(tmp_path / "cut")  # resumed in place
    assert len(full) == 8 and full == resumed
    assert not (tmp_path / "resumed").exists()
    assert "Resumed from" in (cut / "summary.md").read_text()
    # a setting outside the grid differs: refused, and the folder is left as it was
    assert main([*common, "--mcs", "4,10", "--block-bits", "512", "--resume", str(cut)]) == 2
    assert read(tmp_path / "cut") == full
    with pytest.raises(ValueError, match=r"holds no link_curves\.csv"):
        from experiments.recipes.link_curves import run_link_curves

        run_link_curves(mcs=[4], snr_db=[0.0], resume=tmp_path, out=tmp_path, progress=False)


def test_link_curves_abstraction_writes_bler_only(tmp_path: Path) -> None:
    assert main(["link-curves", "--mcs", "10", "--snr-db", "0:6:2", "--abstraction",
                 "--batch-size", "200", "--max-batches", "1", "--out", str(tmp_path),
                 "--no-progress"]) == 0
    run = next((tmp_path / "link_curves").iterdir())
    with open(run / "link_curves.csv") as f:
        rows = list(csv.DictReader(f))
    assert all(r["ber"] == "" for r in rows)
    blers = [float(r["bler"]) for r in rows if r["bler"]]
    # 16QAM R = 0.33 needs about 2.5 dB (k = 1024): fails at 0 dB, passes at 6 dB
    assert blers[0] > 0.9 and blers[-1] < 0.05
    assert "abstraction" in (run / "summary.md").read_text()


def test_link_curves_errors(capsys) -> None:
    assert main(["link-curves", "--mcs", "29", "--out", "/nonexistent"]) == 2
    assert "index" in capsys.readouterr().err
    assert main(["link-curves", "--channel", "tdl-z", "--out", "/nonexistent"]) == 2
    capsys.readouterr()
    assert main(["link-curves", "--snr-db", "5:1:1"]) == 2  # refused while parsing
    err = capsys.readouterr().err
    assert "snr_db" in err and "start:stop:step" in err


def test_helpers() -> None:
    assert parse_snr_range("-5:5:2.5") == [-5.0, -2.5, 0.0, 2.5, 5.0]
    assert parse_snr_range("1,2, 4") == [1.0, 2.0, 4.0]
    with pytest.raises(ValueError, match="start:stop:step"):
        parse_snr_range("1:2")
    with pytest.raises(ValueError, match="unknown channel"):
        make_channel("rician")
    rows = [{"snr_db": 0.0, "bler": 1.0, "num_blocks": 10},
            {"snr_db": 1.0, "bler": 0.01, "num_blocks": 10}]
    assert snr_at_bler(rows, 0.1) == pytest.approx(0.5)


@pytest.mark.parametrize("command", ["eval-images", "eval-cddm"])
@pytest.mark.parametrize("option", ["--crop", "--max-images"])
def test_zero_crop_and_max_images_are_refused(command: str, option: str, capsys) -> None:
    from experiments.cli import main

    extra = ["--cddm", "x.ckpt"] if command == "eval-cddm" else []
    assert main([command, *extra, option, "0"]) == 2
    err = capsys.readouterr().err
    assert option[2:].replace("-", "_") in err and "must be a positive integer (>= 1)" in err


def test_recipe_options_come_from_the_function_and_a_config_file(tmp_path: Path,
                                                                 capsys) -> None:
    """Every recipe subcommand is built from its function's signature: --print_config shows
    the function's defaults, a YAML --config sets options (command-line options override it),
    the resolved configuration is printed, and earlier spellings still parse."""
    import yaml

    from experiments.cli import RECIPES, build_parser, normalize_argv
    from experiments.recipes.link_curves import LinkCurvesConfig, run_link_curves

    for command in RECIPES:  # each parser builds, and knows --config
        assert "--config" in build_parser(command).format_help()
    with pytest.raises(SystemExit) as e:
        main(["link-curves", "--print_config"])
    assert e.value.code == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    defaults = LinkCurvesConfig()  # the options are the config's fields
    assert printed["block_bits"] == defaults.block_bits == 1024
    assert printed["snr_db"] == [float(s) for s in defaults.snr_db]
    cfg = tmp_path / "lc.yaml"
    cfg.write_text(yaml.safe_dump({"mcs": [4], "snr_db": "0:2:2", "block_bits": 256,
                                   "batch_size": 20, "max_batches": 1, "progress": False,
                                   "out": str(tmp_path / "from_file")}))
    assert main(["link-curves", "--config", str(cfg), "--block-bits", "512"]) == 0
    out = capsys.readouterr().out
    assert "resolved configuration" in out and "block_bits: 512" in out
    run = next((tmp_path / "from_file" / "link_curves").iterdir())
    written = yaml.safe_load((run / "config.yaml").read_text())
    assert written["block_bits"] == 512 and written["mcs"] == [4]
    fn = run_link_curves
    assert normalize_argv("link-curves", ["--snr-db", "-5:0:5", "--abstraction",
                                          "--no-progress"], fn) == \
        ["--snr_db=-5:0:5", "--abstraction=true", "--progress=false"]
    from experiments.recipes.eval_cddm import run_eval_cddm
    from experiments.recipes.wdmoe import run_wdmoe

    assert normalize_argv("wdmoe", ["--policy", "topk,wlr:0.2", "--transport=ideal"],
                          run_wdmoe) == ["--policies=topk,wlr:0.2", "--transports=ideal"]
    assert normalize_argv("eval-cddm", ["--cddm", "c.ckpt", "--decoder", "10=a.ckpt",
                                        "--decoder", "15=b.ckpt"], run_eval_cddm) == \
        ["--cddm_checkpoint=c.ckpt", "--decoders=10=a.ckpt,15=b.ckpt"]
    assert main(["link-curves", "--no-such-option", "1"]) == 2
    assert "unrecognized" in capsys.readouterr().err


def test_bench_wdmoe_is_a_semcom_command(tmp_path: Path) -> None:
    """``semcom bench-wdmoe`` on a tiny model (the earlier dashed spellings too): the three
    systems timed, the bits on air per token equal to 2 directions x top-k x 16 D bits (bf16,
    ideal links) per decoded token; a bad setting is refused before any folder exists."""
    tiny = ["--hidden", "32", "--layers", "1", "--experts", "4", "--top-k", "2",
            "--expert-ffn", "16", "--vocab", "64", "--devices", "2", "--prompt", "3",
            "--new-tokens", "2", "--reps", "1", "--threads", "1", "--progress", "false"]
    assert main(["bench-wdmoe", *tiny, "--out", str(tmp_path)]) == 0
    (run,) = (tmp_path / "bench_wdmoe").iterdir()
    with open(run / "bench_wdmoe.csv") as f:
        rows = {r["system"]: r for r in csv.DictReader(f)}
    assert list(rows) == ["unsplit", "split/ideal", "split/digital:bf16"]
    assert float(rows["split/ideal"]["bits_on_air_per_token"]) == 2 * 2 * 16 * 32
    assert float(rows["split/ideal"]["ratio_to_unsplit"]) > 0
    # the hooks see every decode step's MoE layers, a part of the step's time
    for r in rows.values():
        assert 0 < float(r["experts_s_per_token"]) < float(r["s_per_token_median"])
    assert float(rows["unsplit"]["added_ms_per_layer_call"]) == 0.0
    bad = tmp_path / "bad"
    assert main(["bench-wdmoe", *tiny, "--experts", "1", "--out", str(bad)]) == 2
    assert main(["bench-wdmoe", *tiny, "--hidden", "40", "--out", str(bad)]) == 2
    assert not bad.exists()


def test_bench_edge_is_a_semcom_command(tmp_path: Path) -> None:
    """``semcom bench-edge`` on small sizes (the earlier ``--sweep-sizes`` spelling too): OT
    with either pruning serves as many requests as brute force (both exact at N <= 16); a
    zero instance count is refused before any folder exists."""
    args = ["--sizes", "6,8", "--sweep-sizes", "20", "--instances", "2", "--progress", "false"]
    assert main(["bench-edge", *args, "--out", str(tmp_path)]) == 0
    (run,) = (tmp_path / "bench_edge").iterdir()
    with open(run / "bench_edge.csv") as f:
        rows = list(csv.DictReader(f))
    small = [r for r in rows if r["n"] in ("6", "8")]
    assert len(small) == 4 and len(rows) == 6
    for r in small:
        assert r["ot_paper_served"] == r["ot_tight_served"] == r["brute_force_served"]
    bad = tmp_path / "bad"
    assert main(["bench-edge", *args, "--instances", "0", "--out", str(bad)]) == 2
    assert not bad.exists()


def test_bench_train_is_a_semcom_command(tmp_path: Path) -> None:
    """``semcom bench-train`` with a few steps: both paths of both models timed with a
    positive throughput; warm-up steps that leave nothing to time are refused up front."""
    args = ["--steps", "3", "--warmup", "1", "--reps", "1", "--jscc-batch", "2",
            "--cddm-batch", "2", "--progress", "false"]
    assert main(["bench-train", *args, "--out", str(tmp_path)]) == 0
    (run,) = (tmp_path / "bench_train").iterdir()
    with open(run / "bench_train.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["path"] for r in rows] == ["jscc/bare", "jscc/lightning", "cddm/bare",
                                         "cddm/lightning"]
    assert all(float(r["items_per_s"]) > 0 and r["steps_timed"] == "2" for r in rows)
    bad = tmp_path / "bad"
    assert main(["bench-train", *args, "--warmup", "3", "--out", str(bad)]) == 2
    assert not bad.exists()


def test_bench_link_is_a_semcom_command(tmp_path: Path) -> None:
    """``semcom bench-link`` on small blocks (bare ``--skip-...`` flags as before): the CPU and
    Sionna decoders timed on the same LLRs and ``DigitalLink`` against bare Sionna; a block
    size beyond 5G's largest is refused before any folder exists."""
    args = ["--skip-demappers", "--skip-analog", "--skip-tensor", "--decoder_k", "256",
            "--decoder_threads", "1", "--batch", "4", "--repeats", "1", "--block_bits", "256"]
    assert main(["bench-link", *args, "--out", str(tmp_path)]) == 0
    (run,) = (tmp_path / "bench_link").iterdir()
    with open(run / "bench_link.csv") as f:
        rows = list(csv.DictReader(f))
    assert {r["section"] for r in rows} == {"decoder", "digital"}
    assert all(float(r["rate_median"]) > 0 for r in rows)
    bad = tmp_path / "bad"
    assert main(["bench-link", *args, "--decoder_k", "9000", "--out", str(bad)]) == 2
    assert main(["bench-link", *args, "--tensor_shape", "8", "--out", str(bad)]) == 2
    assert not bad.exists()


def test_artifact_tools_are_semcom_commands(tmp_path: Path, capsys) -> None:
    """``make-pretrained-cddm`` reads its earlier spellings (``--name``, ``--train-dir``);
    an unknown JSCC entry or a missing checkpoint is refused in one line, exit code 2, before
    any work folder exists."""
    with pytest.raises(SystemExit) as done:
        main(["make-pretrained-cddm", "--jscc", "adjscc_awgn_cbr1-12", "--train-dir",
              str(tmp_path), "--name", "mine", "--print_config"])
    assert done.value.code == 0
    printed = capsys.readouterr().out
    assert "entry: mine" in printed and f"train_dir: {tmp_path}" in printed
    work = tmp_path / "work"
    assert main(["make-pretrained-cddm", "--jscc", "nope", "--train_dir", str(tmp_path),
                 "--work", str(work)]) == 2
    assert "no pretrained jscc model named 'nope'" in capsys.readouterr().err
    assert not work.exists()
    assert main(["export-pretrained", "--entry", "x", "--checkpoint", str(tmp_path / "no.ckpt"),
                 "--train_config", "c.yaml"]) == 2
    assert "no.ckpt does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("folder,command", [("link", "link-curves"), ("wdmoe", "wdmoe"),
                                            ("edge", "edge-batching")])
def test_shipped_recipe_configs_parse(folder: str, command: str, capsys) -> None:
    """Every YAML in ``experiments/configs/<folder>/`` is a valid ``--config`` of its
    subcommand, and the resolved configuration carries the file's values."""
    import yaml

    files = sorted((Path(__file__).parents[1] / "experiments" / "configs" / folder).glob("*.yaml"))
    assert files
    for path in files:
        with pytest.raises(SystemExit) as done:
            main([command, "--config", str(path), "--print_config"])
        assert done.value.code == 0
        resolved = yaml.safe_load(capsys.readouterr().out)
        given = yaml.safe_load(path.read_text())
        assert set(given) <= set(resolved)
        for key, value in given.items():  # plain values as given; grids were expanded
            if not (isinstance(value, str) and ("," in value or ":" in value)):
                assert resolved[key] in (value, [value]), (path.name, key)


def test_link_curves_recipe_returns_data_and_reports_separately(tmp_path: Path) -> None:
    """simulate_link_curves returns rows of numbers and writes nothing; the command streams
    the same rows to its CSV; a bad setting fails when the config is built."""
    from experiments.recipes.link_curves import (
        LinkCurvesConfig,
        run_link_curves,
        simulate_link_curves,
    )

    cfg = LinkCurvesConfig(mcs=[4], snr_db=[-6.0, 6.0, 8.0], block_bits=256,
                           batch_size=40, max_batches=1, target_block_errors=10)
    result = simulate_link_curves(cfg, progress=False)
    assert list(tmp_path.iterdir()) == []
    assert [r["snr_db"] for r in result.rows] == [-6.0, 6.0, 8.0]
    # QPSK R = 0.3: every block fails at -6 dB, none at 6 dB, and 8 dB is then not simulated
    assert result.rows[0]["bler"] == 1.0 and result.rows[1]["bler"] == 0.0
    assert math.isnan(result.rows[2]["bler"]) and result.rows[2]["num_blocks"] == 0
    at = result.snr_at_bler(0.1)[cfg.mcs_list[0].name]
    assert at is not None and -6.0 < at <= 6.0
    res = run_link_curves(cfg, out=tmp_path, progress=False)
    with open(res.path / "link_curves.csv") as f:
        written = list(csv.DictReader(f))
    assert [r["bler"] for r in written] == ["1.0", "0.0", ""]  # same seeds, same points
    with pytest.raises(ValueError, match="max_batches"):
        LinkCurvesConfig(max_batches=0)
    with pytest.raises(TypeError, match="not both"):
        run_link_curves(cfg, mcs=[4], out=tmp_path)
