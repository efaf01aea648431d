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


def test_confidence_stop_matches_the_closed_form_and_ends_points_early() -> None:
    """With zero errors the one-sided 95 % Clopper-Pearson bound is 1 - 0.05^(1/n) (closed
    form, 1e-9); a point far above threshold stops once that bound reaches the stop BLER (2995
    clean blocks for 1e-3) instead of running to ``max_blocks``."""
    import phy
    from experiments.tools.make_bler_table import bler_upper_bound, simulate_point
    from phy.mcs import MCS
    from phy.sweep import make_channel

    for n in (1, 10, 2995, 100_000):
        assert abs(bler_upper_bound(0, n) - (1 - 0.05 ** (1 / n))) < 1e-9
    assert bler_upper_bound(0, 2994) > 1e-3 >= bler_upper_bound(0, 2995)
    assert bler_upper_bound(3, 3) == 1.0 and bler_upper_bound(0, 0) == 1.0
    link = phy.DigitalLink(make_channel("awgn"), MCS.custom(2, 0.5), block_bits=64)
    phy.set_seed(1)
    p = simulate_point(link, 64, 8.0, target_errors=100, max_blocks=100_000, stop_bler=1e-3)
    assert p.block_errors == 0 and 2995 <= p.num_blocks < 10_000
    q = simulate_point(link, 64, 8.0, target_errors=100, max_blocks=5000)  # no stop: the limit
    assert q.num_blocks == 5000


def test_bler_table_config_and_curves_without_files(tmp_path: Path) -> None:
    """A bad setting names its field when the config is built, before any file (the partial
    one too); the computation returns the curves and the points it simulated and writes
    nothing; a write-only pass over those points rebuilds the same rows."""
    import pytest

    from experiments.tools.make_bler_table import (
        BLERTableConfig,
        bler_table_text,
        make_bler_table,
        simulate_bler_curves,
    )

    for field, bad, message in (("block_bits", [0], "block_bits must lie in 1 .. 8424"),
                                ("channels", "awgn,tdl-a", "channels: 'tdl-a' has no SNR"),
                                ("min_bler", 0.0, "min_bler must lie in"),
                                ("max_blocks", 0, "max_blocks must be an int >= 1"),
                                ("target_block_errors", 2.5, "target_block_errors must be"),
                                ("decoder", "nope", "decoder must be one of")):
        with pytest.raises(ValueError, match=message):
            make_bler_table(**{field: bad}, out=str(tmp_path / "sub" / "x.csv"))
    assert list(tmp_path.iterdir()) == []
    cfg = BLERTableConfig(channels="awgn", block_bits="32", target_block_errors=3,
                          max_blocks=20, min_bler=0.5)
    assert cfg.channels == ("awgn",) and cfg.block_bits == (32,)
    points: list[dict] = []
    curves = simulate_bler_curves(cfg, on_point=points.append)
    assert curves.complete and curves.finished == {("awgn", 32): curves.num_pairs}
    assert len(points) == len(curves.done) > curves.num_pairs
    assert {r["mcs"] for r in curves.rows if r["table"] == "qam64"} == set(range(29))
    text, num_rows = bler_table_text(curves)
    assert num_rows == len(curves.rows) and "regenerated so far" not in text
    assert simulate_bler_curves(cfg, done=curves.done, write_only=True).rows == curves.rows
    nothing = simulate_bler_curves(cfg, write_only=True)
    assert nothing.rows == [] and not nothing.complete
    assert f"awgn k=32: 0 of {curves.num_pairs}" in bler_table_text(nothing)[0]
    assert list(tmp_path.iterdir()) == []


def test_confidence_stop_ships_shallow_points_and_a_plain_run_deepens_them(tmp_path: Path
                                                                           ) -> None:
    """--confidence_stop ends the last point of a curve after 299 clean blocks (BLER <= 0.01
    at 95 %) and the header counts such points; a run without it simulates exactly those
    points again to the limits (3 errors or 400 blocks), keeping every other point."""
    import csv
    import io

    small = ["--channels", "awgn", "--block-bits", "64", "--target-block-errors", "3",
             "--max-blocks", "400", "--min-bler", "0.01"]
    out = tmp_path / "t.csv"
    assert main(["make-bler-table", *small, "--confidence_stop", "--out", str(out)]) == 0
    text = out.read_text()
    first = list(csv.DictReader(io.StringIO("\n".join(_rows(out)))))

    def shallow(r: dict) -> bool:
        return round(float(r["bler"]) * int(r["num_blocks"])) < 3 and int(r["num_blocks"]) < 400

    n_shallow = sum(shallow(r) for r in first)
    assert n_shallow > 0 and f"# {n_shallow} points (each the last of its curve)" in text
    assert all(int(r["num_blocks"]) >= 299 for r in first if shallow(r))
    assert main(["make-bler-table", *small, "--out", str(out)]) == 0
    second = list(csv.DictReader(io.StringIO("\n".join(_rows(out)))))
    assert not any(shallow(r) for r in second) and "points (each the last" not in out.read_text()
    keep = {(r["table"], r["mcs"], r["snr_db"]): r for r in first if not shallow(r)}
    again = {(r["table"], r["mcs"], r["snr_db"]): r for r in second}
    assert all(again[key] == r for key, r in keep.items())  # deep points are reused as they are
