"""Result folders: layout, manifest, atomic writes, CSV/figure/summary output."""

from __future__ import annotations

import csv
import json
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import matplotlib
import pytest
import yaml

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from experiments.reporting import results
from experiments.reporting.results import ResultsDir, atomic_write_text

PINNED = datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=1)))


@pytest.fixture(autouse=True)
def _no_git(monkeypatch):
    # Keep the tests independent of the repository state (and of git being installed).
    monkeypatch.setattr(results, "_git_revision", lambda *a, **k: "0123abcd")


def _pin_time(monkeypatch):
    monkeypatch.setattr(results, "_now", lambda: PINNED)


def _no_temp_files(path):
    return [p.name for p in path.iterdir() if p.name.endswith(".tmp") or p.name.startswith(".")]


def test_layout_config_and_manifest(tmp_path, monkeypatch):
    _pin_time(monkeypatch)
    cfg = {"snr_db": [0.0, 5.0], "model": {"name": "deepjscc", "cbr": 1 / 6}, "out": tmp_path}
    rd = ResultsDir.create("bler_awgn", cfg, seed=7, root=tmp_path / "results", device="cpu")
    assert rd.path == tmp_path / "results" / "bler_awgn" / "20250102-030405"
    assert sorted(p.name for p in rd.path.iterdir()) == ["config.yaml", "manifest.json"]
    loaded = yaml.safe_load((rd.path / "config.yaml").read_text())
    assert loaded == {"snr_db": [0.0, 5.0], "model": {"name": "deepjscc", "cbr": 1 / 6},
                      "out": str(tmp_path)}
    m = json.loads((rd.path / "manifest.json").read_text())
    for key in ("name", "seed", "status", "start_time", "end_time", "duration_s", "command",
                "argv", "python", "platform", "packages", "git_revision", "device"):
        assert key in m, key
    assert m["name"] == "bler_awgn" and m["seed"] == 7 and m["status"] == "running"
    assert m["start_time"] == "2025-01-02T03:04:05+01:00"
    assert m["git_revision"] == "0123abcd" and m["device"] == "cpu"
    assert set(m["packages"]) == {"torch", "sionna-no-rt", "numpy", "scipy", "matplotlib",
                                  "semcom"}
    assert m["packages"]["numpy"]  # installed -> a version string
    assert all(v is None or isinstance(v, str) for v in m["packages"].values())
    assert m["end_time"] is None and m["duration_s"] is None


def test_same_second_gets_suffix(tmp_path, monkeypatch):
    _pin_time(monkeypatch)
    paths = [ResultsDir.create("x", {}, seed=0, root=tmp_path, device="cpu").path
             for _ in range(3)]
    assert [p.name for p in paths] == ["20250102-030405", "20250102-030405-1",
                                       "20250102-030405-2"]


def test_default_device_and_missing_package(tmp_path):
    rd = ResultsDir.create("x", {}, seed=0, root=tmp_path)
    assert rd.manifest["device"] == "cpu" or rd.manifest["device"].startswith("cuda:")
    versions = results._package_versions(("numpy", "no-such-package-xyz"))
    assert versions["no-such-package-xyz"] is None and versions["numpy"]


def test_csv_round_trip(tmp_path):
    rd = ResultsDir.create("x", {}, seed=0, root=tmp_path, device="cpu")
    rows = [{"snr_db": 0.1, "bler": 1 / 3, "mcs": "qam64/MCS10"},
            {"snr_db": 2.5, "bler": 1e-5, "mcs": "qam64/MCS11", "note": "extra, with comma"}]
    p = rd.write_csv("bler.csv", rows)
    assert p == rd.path / "bler.csv"
    with open(p, newline="") as f:
        back = list(csv.DictReader(f))
    assert list(back[0]) == ["snr_db", "bler", "mcs", "note"]
    assert float(back[0]["bler"]) == 1 / 3 and float(back[1]["bler"]) == 1e-5
    assert back[0]["note"] == "" and back[1]["note"] == "extra, with comma"
    assert not _no_temp_files(rd.path)
    rd.write_csv("empty.csv", [], fieldnames=["a", "b"])
    assert (rd.path / "empty.csv").read_text() == "a,b\n"


def test_figure_summary_and_finish(tmp_path):
    rd = ResultsDir.create("x", {"a": 1}, seed=3, root=tmp_path, device="cpu")
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [1, 0])
    p = rd.save_figure(fig, "curve.png", dpi=50)
    plt.close(fig)
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rd.write_summary("# Result\n\nAll good.")
    assert (rd.path / "summary.md").read_text() == "# Result\n\nAll good.\n"
    m = rd.finish()
    on_disk = json.loads((rd.path / "manifest.json").read_text())
    assert on_disk == m
    assert m["status"] == "finished" and m["end_time"] and m["duration_s"] >= 0
    assert m["files"] == ["config.yaml", "curve.png", "manifest.json", "summary.md"]
    assert not _no_temp_files(rd.path)
    with pytest.raises(RuntimeError, match="already finished"):
        rd.finish()


def test_context_manager_records_failure(tmp_path):
    with pytest.raises(ZeroDivisionError), \
            ResultsDir.create("x", {}, seed=0, root=tmp_path, device="cpu") as rd:
        1 / 0  # noqa: B018
    assert json.loads((rd.path / "manifest.json").read_text())["status"] == "failed"
    with ResultsDir.create("y", {}, seed=0, root=tmp_path, device="cpu") as rd2:
        pass
    assert rd2.finished and rd2.manifest["status"] == "finished"


def test_atomic_write_keeps_old_file_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "data.csv"
    atomic_write_text(target, "old\n")

    def broken_replace(src, dst):
        raise OSError("disk gone")

    monkeypatch.setattr(results.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk gone"):
        atomic_write_text(target, "new\n")
    assert target.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["data.csv"]  # temp file cleaned up


def test_interrupted_figure_leaves_nothing(tmp_path):
    rd = ResultsDir.create("x", {}, seed=0, root=tmp_path, device="cpu")

    class Boom:
        def savefig(self, *a, **k):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        rd.save_figure(Boom(), "fig.png")
    assert not (rd.path / "fig.png").exists() and not _no_temp_files(rd.path)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"name": "a/b"}, r"name must be a plain folder name"),
    ({"name": ""}, r"name must be a plain folder name"),
    ({"name": ".."}, r"name must be a plain folder name"),
    ({"config": [1, 2]}, r"config must be a dict, got list"),
    ({"config": {"x": {"y": object()}}}, r"config value config\['x'\]\['y'\]"),
    ({"seed": 1.5}, r"seed must be an int, got float 1.5"),
])
def test_create_errors(tmp_path, kwargs, match):
    args = {"name": "x", "config": {}, "seed": 0, "root": tmp_path, **kwargs}
    with pytest.raises(ValueError, match=match):
        ResultsDir.create(**args)
    assert not (tmp_path / "x").exists()  # a bad config leaves no empty folder


def test_write_errors(tmp_path):
    rd = ResultsDir.create("x", {}, seed=0, root=tmp_path, device="cpu")
    with pytest.raises(ValueError, match=r"must end with one of \['.csv'\]"):
        rd.write_csv("bler.txt", [{"a": 1}])
    with pytest.raises(ValueError, match="plain file name"):
        rd.write_csv("../bler.csv", [{"a": 1}])
    with pytest.raises(ValueError, match="at least one row"):
        rd.write_csv("bler.csv", [])
    with pytest.raises(ValueError, match=r"rows\[0\] has keys \['b'\]"):
        rd.write_csv("bler.csv", [{"b": 1}], fieldnames=["a"])
    with pytest.raises(ValueError, match="rows must be a list of dicts"):
        rd.write_csv("bler.csv", {"a": 1})
    with pytest.raises(ValueError, match=r"must end with one of \['.png', '.pdf', '.svg'\]"):
        rd.save_figure(None, "fig.jpg")
    with pytest.raises(ValueError, match="markdown_text must be a str"):
        rd.write_summary(3)


def test_sigterm_marks_the_run_interrupted(tmp_path: Path) -> None:
    """A run killed with SIGTERM records status "interrupted" and its end time."""
    import signal
    import subprocess
    import sys
    import time

    script = (
        "import time\n"
        "from experiments.reporting.results import ResultsDir\n"
        f"with ResultsDir.create('t', {{}}, 0, root={str(tmp_path)!r}) as rd:\n"
        "    print(rd.path, flush=True)\n"
        "    time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    folder = Path(proc.stdout.readline().strip())
    time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["status"] == "interrupted" and manifest["end_time"] is not None
    assert proc.returncode != 0


def test_quiet_libraries_hides_torchs_notes_to_library_authors(
        caplog: pytest.LogCaptureFixture) -> None:
    """torchao's import makes torch log deprecation notes (W-level records of
    torch.utils._pytree) that a user cannot act on: hidden inside the block, restored after."""
    import logging

    from experiments.reporting.console import quiet_libraries

    log = logging.getLogger("torch.utils._pytree")
    before = log.level
    with caplog.at_level(logging.WARNING), quiet_libraries():
        log.warning("register_constant() on Enum subclasses is deprecated")
    assert not [r for r in caplog.records if r.name == "torch.utils._pytree"]
    assert log.level == before
    with caplog.at_level(logging.WARNING):
        log.warning("outside the block")
    assert [r for r in caplog.records if r.name == "torch.utils._pytree"]


def test_results_dir_holds_what_it_wrote_in_memory(tmp_path: Path) -> None:
    """A recipe's caller reads the rows and the summary from the returned ResultsDir: the
    values as written (numbers stay numbers, a later change of the caller's dicts does not
    leak in), equal to the CSV read back."""
    rows = [{"snr_db": 0.1, "bler": 0.25, "label": "a"}, {"snr_db": 2.0, "bler": "", "label": "b"}]
    with ResultsDir.create("mem", {"x": 1}, 0, root=tmp_path) as res:
        assert res.tables == {} and res.summary is None
        res.write_csv("curves.csv", rows)
        res.write_summary("# hello")
    rows[0]["bler"] = 9.0
    assert res.tables["curves.csv"][0] == {"snr_db": 0.1, "bler": 0.25, "label": "a"}
    with open(res.path / "curves.csv") as f:
        back = list(csv.DictReader(f))
    assert [float(r["snr_db"]) for r in back] == [r["snr_db"] for r in res.tables["curves.csv"]]
    assert res.summary == "# hello\n" == (res.path / "summary.md").read_text()
