"""semcom make-bler-table: a small table simulated, resumed from its partial file without
simulating, and bad settings refused before any work."""

from __future__ import annotations

from pathlib import Path

from experiments.cli import main

SMALL = ["--channels", "awgn", "--block-bits", "64", "--target-block-errors", "3",
         "--max-blocks", "20", "--min-bler", "0.5", "--no-progress"]


def _rows(path: Path) -> list[str]:
    return [ln for ln in path.read_text().splitlines() if ln and not ln.startswith("#")]


def test_small_table_simulates_resumes_and_refuses_bad_settings(tmp_path: Path,
                                                                capsys) -> None:
    import csv
    import io

    out = tmp_path / "t.csv"
    small = [a for a in SMALL if a != "--no-progress"]
    assert main(["make-bler-table", *small, "--out", str(out)]) == 0
    text = out.read_text()
    assert "# regenerate: semcom make-bler-table --channels awgn --block_bits 64" in text
    rows = list(csv.DictReader(io.StringIO("\n".join(_rows(out)))))
    curves: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        curves.setdefault((r["table"], r["mcs"]), []).append(r)
    assert len(curves) == 29 + 28  # every MCS of the qam64 and qam256 tables
    for pts in curves.values():  # each curve walks up to its first BLER <= min_bler
        blers = [float(p["bler"]) for p in sorted(pts, key=lambda p: float(p["snr_db"]))]
        assert blers[-1] <= 0.5 and all(b > 0.5 for b in blers[:-1])
    # the partial file holds every point: a write-only run rebuilds the same table
    first = out.read_bytes()
    out.unlink()
    assert main(["make-bler-table", *small, "--write-only", "--out", str(out)]) == 0
    assert out.read_bytes() == first
    capsys.readouterr()
    for bad, message in ((["--block-bits", "9000"], "block_bits must lie in 1 .. 8424"),
                         (["--channels", "tdl-a"], "has no SNR grid"),
                         (["--min-bler", "1.5"], "min_bler must lie in (0, 1)")):
        assert main(["make-bler-table", *small, *bad, "--out", str(tmp_path / "x.csv")]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()


def test_artifact_tools_run_as_subcommands(tmp_path: Path, capsys) -> None:
    """make-lm-eval-tasks rebuilds the shipped task file byte for byte (its provenance);
    make-quant-table refuses bad settings before measuring or writing anything."""
    from wdmoe_link.harness import TASKS_DIR

    shipped = TASKS_DIR / "arith_test.jsonl"
    before = shipped.read_bytes()
    try:
        assert main(["make-lm-eval-tasks"]) == 0
        assert shipped.read_bytes() == before
    finally:
        shipped.write_bytes(before)
    capsys.readouterr()
    out = tmp_path / "levels.csv"
    assert main(["make-quant-table", "--threads", "0", "--out", str(out)]) == 2
    assert "threads" in capsys.readouterr().err and not out.exists()
    assert main(["make-lm-eval-tasks", "--size", "0"]) == 2
