"""``semcom edge-batching``: the results folder, resuming, and refused arguments."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from experiments.cli import main


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def test_edge_batching_writes_csv_plots_and_summary(tmp_path: Path, capsys) -> None:
    argv = ["edge-batching", "--users", "6,12", "--nodes", "1,2", "--instances", "1",
            "--scheduler", "ot-gah,gah-sweep,edf,brute-force", "--bandwidth-mhz", "20,0.2",
            "--search-sizes", "4,6", "--out", str(tmp_path), "--no-progress"]
    assert main(argv) == 0
    (folder,) = (tmp_path / "edge_batching").iterdir()
    rows = _rows(folder / "results.csv")
    assert len(rows) == 2 * 2 * 2 * 2 * 4  # users x nodes x bandwidths x links x schedulers
    by = {(r["users"], r["nodes"], r["bandwidth_mhz"], r["link"], r["scheduler"]): r
          for r in rows}
    for key, r in by.items():
        best = float(by[(*key[:4], "brute-force")]["served"])
        assert float(r["served"]) <= best  # nothing beats the optimum
        if key[4] in ("ot-gah", "gah-sweep") and key[1] == "1":
            assert float(r["served"]) == best  # one node: exact
        if key[4] in ("ot-gah", "gah-sweep"):
            assert float(r["served"]) >= best / 2
    search = _rows(folder / "search.csv")
    assert {r["n"] for r in search} == {"4", "6"}
    for r in search:
        assert r["ot_paper_served"] == r["brute_force_served"] == r["sweep_served"]
        assert int(r["ot_paper_nodes"]) < int(r["brute_force_nodes"])
    for name in ("throughput_vs_users.png", "search_nodes_vs_users.png", "summary.md",
                 "config.yaml", "manifest.json"):
        assert (folder / name).is_file()
    assert "Served requests" in (folder / "summary.md").read_text()
    # resume: every row is there already, nothing is recomputed, the rows are kept
    capsys.readouterr()
    assert main([*argv, "--resume", str(folder)]) == 0
    new = Path(capsys.readouterr().out.split("results: ")[1].strip())
    assert new == folder and _rows(new / "results.csv") == rows
    assert json.loads((folder / "manifest.json").read_text())["status"] == "finished"
    # another setting than the grids is refused, with the key named, and nothing is written
    before = (folder / "results.csv").read_text()
    assert main([*argv, "--resume", str(folder), "--deadline-s", "1,2"]) == 2
    assert "deadline_s" in capsys.readouterr().err
    assert (folder / "results.csv").read_text() == before
    # a larger grid is fine: only the new rows run
    assert main([*argv[:2], "4,6,12", *argv[3:], "--resume", str(folder)]) == 0
    assert len(_rows(folder / "results.csv")) == len(rows) * 3 // 2


@pytest.mark.parametrize("args,message", [
    (["--scheduler", "lifo"], "unknown scheduler 'lifo'"),
    (["--users", "10:5:1"], "--users: expected integers as 'start:stop:step'"),
    (["--links", "ideal"], "links must be among"),
    (["--bandwidth-mhz", "-1"], "bandwidth_mhz must be finite and > 0"),
    (["--deadline-s", "5"], "deadline_s must be two numbers low,high"),
    (["--search-sizes", "30"], "search_sizes must be <= 20"),
])
def test_bad_arguments_exit_2_and_leave_no_folder(tmp_path: Path, capsys, args: list[str],
                                                  message: str) -> None:
    assert main(["edge-batching", "--users", "5", "--out", str(tmp_path), "--no-progress",
                 *args]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "edge_batching").exists()


def test_same_config_and_seed_give_identical_csvs(tmp_path: Path) -> None:
    from experiments.recipes.edge_batching import run_edge_batching

    kw = {"users": [5, 9], "nodes": [1, 2], "schedulers": ["ot-gah", "gah-sweep", "random"],
          "bandwidth_mhz": [1.0], "links": ["phy"], "instances": 1, "search_sizes": [5],
          "progress": False}
    a = Path(run_edge_batching(out=tmp_path / "a", **kw).path)
    b = Path(run_edge_batching(out=tmp_path / "b", **kw).path)
    for name in ("results.csv", "search.csv"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    assert (a / "timings.csv").is_file()
    c = Path(run_edge_batching(out=tmp_path / "c", seed=1, **kw).path)
    assert (a / "results.csv").read_bytes() != (c / "results.csv").read_bytes()
