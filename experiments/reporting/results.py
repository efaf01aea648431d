"""Result folders: ``results/<name>/<YYYYmmdd-HHMMSS>/`` with config, manifest, CSV, figures.

Every experiment writes its outputs through :class:`ResultsDir`::

    rd = ResultsDir.create("bler_awgn", config, seed=0)
    rd.write_csv("bler.csv", rows)            # rows: list of dicts
    rd.save_figure(fig, "bler.png")
    rd.write_summary("# BLER on AWGN\\n...")
    rd.finish()                               # end time and duration into manifest.json

or as a context manager (``finish`` runs on exit and records ``"failed"`` or
``"interrupted"`` if an exception escaped)::

    with ResultsDir.create("bler_awgn", config, seed=0) as rd:
        ...

Folder contents:

* ``config.yaml`` -- the experiment's config (written once, at creation).
* ``manifest.json`` -- name, seed, status, start/end time and duration, command line, Python
  version, platform, versions of the main packages (``null`` if not installed), git revision
  of the code (``null`` if unavailable) and the compute device.
* ``*.csv``, ``*.png`` / ``*.pdf`` / ``*.svg``, ``summary.md``.

Every file is written atomically: to a hidden temporary file in the same folder, flushed to disk
and then renamed over the target with :func:`os.replace`. A run interrupted at any moment leaves
either the previous complete file or the new complete file, never a truncated one (at worst a
stray ``.*.tmp`` file).
"""

from __future__ import annotations

import contextlib
import csv
import importlib.metadata
import io
import json
import math
import os
import platform
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

__all__ = ["MANIFEST_PACKAGES", "ResultsDir", "atomic_write_bytes", "atomic_write_text"]

#: Distributions whose versions go into the manifest (``null`` when not installed).
MANIFEST_PACKAGES: tuple[str, ...] = (
    "torch", "sionna-no-rt", "numpy", "scipy", "matplotlib", "semcom",
)

_FIGURE_FORMATS = ("png", "pdf", "svg")
_TIMESTAMP_FORMAT = "%Y%m%d-%H%M%S"
_PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _now() -> datetime:
    """Current local time with its UTC offset (a function so that tests can pin it)."""
    return datetime.now().astimezone()


# --------------------------------------------------------------------------------------------
# Atomic writes
# --------------------------------------------------------------------------------------------


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp file in the same folder + :func:`os.replace`).

    The file gets mode 0644. On any error the temporary file is removed and ``path`` is left as
    it was.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """:func:`atomic_write_bytes` for UTF-8 text."""
    return atomic_write_bytes(path, text.encode("utf-8"))


# --------------------------------------------------------------------------------------------
# Manifest helpers
# --------------------------------------------------------------------------------------------


def _package_versions(names: Sequence[str] = MANIFEST_PACKAGES) -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _git_revision(cwd: str | os.PathLike = _PROJECT_ROOT) -> str | None:
    """``git rev-parse HEAD`` of the code's working tree, or ``None`` if that fails."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    rev = out.stdout.strip()
    return rev if out.returncode == 0 and rev else None


def _default_device() -> str:
    """``"cuda:<i> (<GPU name>)"`` if torch sees a GPU, else ``"cpu"``."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return "cpu"
    if torch.cuda.is_available():
        i = torch.cuda.current_device()
        return f"cuda:{i} ({torch.cuda.get_device_name(i)})"
    return "cpu"


def _plain(value: Any, where: str) -> Any:
    """Turn a config into YAML/JSON-safe builtins; ``where`` locates bad values in errors."""
    if value is None or isinstance(value, bool):
        return value
    for kind in (int, float, str):  # subclasses (IntEnum, typed ints) as their base value
        if isinstance(value, kind):
            return kind(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, (str, int, float, bool)):
                raise ValueError(f"config key {where}[{k!r}] must be a str or a number, got "
                                 f"{type(k).__name__}")
            out[k] = _plain(v, f"{where}[{k!r}]")
        return out
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    item = getattr(value, "item", None)  # numpy / torch scalars
    if callable(item) and getattr(value, "ndim", None) == 0:
        return _plain(item(), where)
    raise ValueError(
        f"config value {where} = {value!r} of type {type(value).__name__} cannot be written to "
        "YAML; use numbers, strings, booleans, None, lists and dicts"
    )


def _check_filename(filename: str, suffixes: Sequence[str], what: str) -> str:
    if not isinstance(filename, str) or not filename or filename in (".", ".."):
        raise ValueError(f"{what} filename must be a non-empty file name, got {filename!r}")
    if "/" in filename or "\\" in filename or os.sep in filename:
        raise ValueError(f"{what} filename must be a plain file name inside the results folder "
                         f"(no directories), got {filename!r}")
    if filename.startswith("."):
        raise ValueError(f"{what} filename must not start with '.', got {filename!r}")
    if not any(filename.lower().endswith("." + s) for s in suffixes):
        raise ValueError(f"{what} filename must end with one of "
                         f"{['.' + s for s in suffixes]}, got {filename!r}")
    return filename


def _csv_cell(value: Any) -> Any:
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "ndim", None) == 0:
        value = item()
    return value


# --------------------------------------------------------------------------------------------
# ResultsDir
# --------------------------------------------------------------------------------------------


def read_csv_rows(path: str | os.PathLike) -> list[dict[str, str]]:
    """The rows of a results CSV as written (text cells, e.g. an earlier run's, to resume);
    no rows when the file does not exist."""
    import csv

    p = Path(path)
    if not p.is_file():
        return []
    with p.open() as f:
        return list(csv.DictReader(f))


def cell_float(value: Any) -> float:
    """A CSV cell as a number: ``nan`` for an empty or non-numeric cell."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


class ResumeMismatchError(ValueError):
    """``--resume`` named a folder whose run had other settings."""


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived while a :class:`ResultsDir` context was open."""


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated(f"terminated by signal {signum}")


class ResultsDir:
    """One run's result folder. Create it with :meth:`create`.

    A recipe returns its ResultsDir, which also holds in memory what was written: the rows of
    every CSV (:attr:`tables`, the values themselves, not their text) and the summary, so that
    a caller never reads the files back. (Recipes compose through their computations and
    result dataclasses, as the quickstart does, not through folders.)

    Attributes:
        path: the folder, ``<root>/<name>/<YYYYmmdd-HHMMSS>[-k]``.
        manifest: the manifest as last written to ``manifest.json``.
        tables: ``{csv filename: rows}`` as last written by :meth:`write_csv`.
        summary: the Markdown text last written by :meth:`write_summary` (``None`` before).
    """

    def __init__(self, path: Path, manifest: dict[str, Any], t0: float) -> None:
        self.path = Path(path)
        self.manifest = manifest
        self.tables: dict[str, list[dict[str, Any]]] = {}
        self.summary: str | None = None
        self._t0 = t0
        self._finished = False

    def __repr__(self) -> str:
        return f"ResultsDir({str(self.path)!r})"

    def __fspath__(self) -> str:
        return os.fspath(self.path)

    @classmethod
    def create(cls, name: str, config: Mapping[str, Any], seed: int,
               root: str | os.PathLike = "results", *, device: str | None = None) -> ResultsDir:
        """Make ``<root>/<name>/<YYYYmmdd-HHMMSS>/`` and write ``config.yaml`` and
        ``manifest.json``.

        If that folder exists already (two runs in the same second), ``-1``, ``-2``, ... is
        appended to the timestamp.

        Args:
            name: experiment name, a plain folder name (no ``/``, not starting with ``.``).
            config: the experiment's config (a dict of numbers, strings, lists, dicts).
            seed: the run's random seed (an int).
            root: parent folder of all results.
            device: compute device to record; ``None`` records ``"cuda:i (name)"`` if torch sees
                a GPU, else ``"cpu"``.
        """
        if not isinstance(name, str) or not name or name in (".", "..") \
                or name.startswith(".") or "/" in name or "\\" in name or os.sep in name:
            raise ValueError(f"name must be a plain folder name (no '/', not starting with "
                             f"'.'), got {name!r}")
        if not isinstance(config, Mapping):
            raise ValueError(f"config must be a dict, got {type(config).__name__}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"seed must be an int, got {type(seed).__name__} {seed!r}")
        if device is not None and not isinstance(device, str):
            raise ValueError(f"device must be a str or None, got {type(device).__name__}")
        plain_config = _plain(dict(config), "config")
        config_text = yaml.safe_dump(plain_config, sort_keys=False, allow_unicode=True)

        start = _now()
        t0 = time.monotonic()
        parent = Path(root) / name
        parent.mkdir(parents=True, exist_ok=True)
        stamp = start.strftime(_TIMESTAMP_FORMAT)
        for k in range(10_000):
            path = parent / (stamp if k == 0 else f"{stamp}-{k}")
            try:
                path.mkdir()
            except FileExistsError:
                continue
            break
        else:  # pragma: no cover - 10,000 runs in one second
            raise RuntimeError(f"could not create a new results folder under {parent}")

        manifest: dict[str, Any] = {
            "name": name,
            "path": str(path),
            "seed": seed,
            "status": "running",
            "start_time": start.isoformat(timespec="seconds"),
            "end_time": None,
            "duration_s": None,
            "command": shlex.join(sys.argv),
            "argv": list(sys.argv),
            "cwd": os.getcwd(),
            "python": platform.python_version(),
            "python_executable": sys.executable,
            "platform": platform.platform(),
            "packages": _package_versions(),
            "git_revision": _git_revision(),
            "device": device if device is not None else _default_device(),
        }
        rd = cls(path, manifest, t0)
        atomic_write_text(path / "config.yaml", config_text)
        rd._write_manifest()
        return rd

    @classmethod
    def resume(cls, folder: str | os.PathLike, name: str, config: Mapping[str, Any], seed: int,
               *, extendable: Sequence[str] = ()) -> ResultsDir:
        """Reopen the results folder of an earlier run of ``name`` to continue it in place.

        The resolved ``config`` and ``seed`` must equal the folder's, except the keys in
        ``extendable`` (a grid that may grow: more SNRs, policies, users); the folder's
        ``config.yaml`` then takes the new values. The manifest goes back to ``"running"``
        and records the resumption.

        Raises:
            ResumeMismatchError: the folder was run with other settings (the differing keys
                are named), or it is not a results folder of ``name``.
        """
        path = Path(folder)
        cfg_path, man_path = path / "config.yaml", path / "manifest.json"
        if not (cfg_path.is_file() and man_path.is_file()):
            raise ResumeMismatchError(f"resume folder {str(path)!r} is not a results folder "
                                      "(no config.yaml and manifest.json)")
        try:
            old = yaml.safe_load(cfg_path.read_text()) or {}
            manifest = json.loads(man_path.read_text())
        except (yaml.YAMLError, ValueError) as exc:
            raise ResumeMismatchError(f"resume folder {str(path)!r} has an unreadable "
                                      f"config.yaml or manifest.json ({exc})") from None
        if manifest.get("name") != name:
            raise ResumeMismatchError(f"resume folder {str(path)!r} holds a "
                                      f"{manifest.get('name')!r} run, not {name!r}")
        new = _plain(dict(config), "config")
        diffs = [f"{k}: {old.get(k)!r} -> {new.get(k)!r}"
                 for k in sorted(set(old) | set(new))
                 if k not in extendable and old.get(k) != new.get(k)]
        if manifest.get("seed") != seed:
            diffs.append(f"seed: {manifest.get('seed')!r} -> {seed!r}")
        if diffs:
            raise ResumeMismatchError(
                f"resume folder {str(path)!r} was run with a different configuration ("
                + "; ".join(diffs) + "); only " + (", ".join(extendable) or "nothing")
                + " may change on resume. Match these settings or start a new run.")
        start = _now()
        manifest.update(status="running", end_time=None, duration_s=None)
        manifest.setdefault("resumed", []).append(
            {"time": start.isoformat(timespec="seconds"), "command": shlex.join(sys.argv)})
        rd = cls(path, manifest, time.monotonic())
        atomic_write_text(cfg_path, yaml.safe_dump(new, sort_keys=False, allow_unicode=True))
        rd._write_manifest()
        return rd

    # ---------------------------------------------------------------------------------------

    def _write_manifest(self) -> None:
        atomic_write_text(self.path / "manifest.json",
                          json.dumps(self.manifest, indent=2, ensure_ascii=False) + "\n")

    def write_csv(self, filename: str, rows: Sequence[Mapping[str, Any]],
                  fieldnames: Sequence[str] | None = None) -> Path:
        """Write ``rows`` (dicts) to ``<folder>/<filename>`` (must end with ``.csv``).

        Columns are ``fieldnames`` or, by default, every key in the order first seen; a row
        missing a column leaves the cell empty. Floats are written with ``repr`` precision, so
        ``float(cell)`` gives the value back exactly. Returns the file's path.
        """
        _check_filename(filename, ("csv",), "CSV")
        if isinstance(rows, Mapping) or not isinstance(rows, Sequence):
            raise ValueError(f"rows must be a list of dicts, got {type(rows).__name__}")
        for i, row in enumerate(rows):
            if not isinstance(row, Mapping):
                raise ValueError(f"rows[{i}] must be a dict, got {type(row).__name__}")
        if fieldnames is None:
            seen: dict[str, None] = {}
            for row in rows:
                for k in row:
                    seen.setdefault(k, None)
            fieldnames = list(seen)
        else:
            fieldnames = list(fieldnames)
            for i, row in enumerate(rows):
                extra = [k for k in row if k not in fieldnames]
                if extra:
                    raise ValueError(f"rows[{i}] has keys {extra} that are not in fieldnames "
                                     f"{fieldnames}")
        if not fieldnames:
            raise ValueError("write_csv needs at least one row with keys, or fieldnames=")
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=fieldnames, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _csv_cell(v) for k, v in row.items()})
        path = atomic_write_text(self.path / filename, buf.getvalue())
        self.tables[filename] = [dict(row) for row in rows]  # a snapshot of what was written
        return path

    def save_figure(self, fig: Any, filename: str, *, dpi: int = 150, **savefig_kwargs: Any
                    ) -> Path:
        """Save a matplotlib figure as ``<folder>/<filename>`` (``.png``, ``.pdf`` or ``.svg``).

        ``bbox_inches="tight"`` unless given otherwise; extra keyword arguments go to
        ``fig.savefig``. The figure is not closed. Returns the file's path.
        """
        _check_filename(filename, _FIGURE_FORMATS, "figure")
        if not callable(getattr(fig, "savefig", None)):
            raise ValueError(f"fig must be a matplotlib Figure, got {type(fig).__name__}")
        fmt = filename.rsplit(".", 1)[1].lower()
        savefig_kwargs.setdefault("bbox_inches", "tight")
        buf = io.BytesIO()
        fig.savefig(buf, format=fmt, dpi=dpi, **savefig_kwargs)
        return atomic_write_bytes(self.path / filename, buf.getvalue())

    def write_summary(self, markdown_text: str, filename: str = "summary.md") -> Path:
        """Write the run's short Markdown summary (``summary.md``). Returns the file's path."""
        if not isinstance(markdown_text, str):
            raise ValueError(f"markdown_text must be a str, got {type(markdown_text).__name__}")
        _check_filename(filename, ("md",), "summary")
        text = markdown_text if markdown_text.endswith("\n") else markdown_text + "\n"
        path = atomic_write_text(self.path / filename, text)
        if filename == "summary.md":
            self.summary = text
        return path

    def finish(self, status: str = "finished") -> dict[str, Any]:
        """Record the end time, duration, status and file list in ``manifest.json``.

        Call it once at the end of the run (the context manager does); returns the manifest.
        """
        if not isinstance(status, str) or not status:
            raise ValueError(f"status must be a non-empty str, got {status!r}")
        if self._finished:
            raise RuntimeError(f"{self!r} is already finished")
        end = _now()
        self.manifest["status"] = status
        self.manifest["end_time"] = end.isoformat(timespec="seconds")
        self.manifest["duration_s"] = round(time.monotonic() - self._t0, 3)
        self.manifest["files"] = sorted(
            p.name for p in self.path.iterdir() if p.is_file() and not p.name.startswith(".")
        )
        self._write_manifest()
        self._finished = True
        return self.manifest

    @property
    def finished(self) -> bool:
        return self._finished

    def __enter__(self) -> ResultsDir:
        # SIGTERM (a scheduler's kill, ``timeout``) ends the run like Ctrl-C: the manifest
        # records "interrupted" and its end time instead of staying "running".
        self._old_sigterm = None
        if threading.current_thread() is threading.main_thread():
            self._old_sigterm = signal.getsignal(signal.SIGTERM)
            signal.signal(signal.SIGTERM, _raise_terminated)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: Any) -> None:
        if getattr(self, "_old_sigterm", None) is not None:
            signal.signal(signal.SIGTERM, self._old_sigterm)
            self._old_sigterm = None
        if self._finished:
            return
        if exc_type is None:
            self.finish()
        elif issubclass(exc_type, KeyboardInterrupt):
            self.finish("interrupted")
        else:
            self.finish("failed")
