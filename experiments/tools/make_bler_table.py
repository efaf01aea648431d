"""Simulate the BLER-vs-SNR table shipped as ``phy/data/bler_table.csv``.

Every (modulation order, code rate) of the TS 38.214 64QAM and 256QAM tables is simulated once
per channel and block size with :meth:`phy.DigitalLink.block_errors` (CRC24B + 5G LDPC, the
link's decoder, APP demapping, one transmission); the rows are written for every (table, index)
that uses that pair.

A curve starts below the pair's Shannon threshold ``10 log10(2^SE - 1)`` and walks up the SNR
grid of its channel. Each point runs until ``target_block_errors`` block errors or
``max_blocks`` blocks; the curve ends at the first point whose BLER is at most ``min_bler``
(or at the end of its channel's grid). Leading points where every block failed are dropped but
the last of them. Every point is seeded from (seed, channel, Qm, R, k, SNR), so a point's
result does not depend on what ran before it.

``confidence_stop`` also ends a point once its BLER is shown to be at most ``min_bler`` (the
one-sided 95 % Clopper-Pearson upper bound of the errors so far is at most ``min_bler``: zero
errors in 2995 blocks for 1e-3). That spares the last point of a curve the full ``max_blocks``,
nearly all of a curve's cost at k = 8424 and low rates, so that a table can ship in hours; the
table's header counts such shallow points. A later run without ``confidence_stop`` deepens
them: a point of the partial file that ended before both limits is simulated again, to the
limits, and replaces it.

Points stream to ``<out>.partial.csv`` as they finish; a killed run resumes from there. The table
written to ``--out`` holds the finished curves plus, with ``--keep-old``, the curves of the
previous table at that path that this run has not (yet) replaced, so that a long regeneration can
ship in stages.

:func:`simulate_bler_curves` turns a :class:`BLERTableConfig` (and the points of an earlier
run) into the finished curves (:class:`BLERCurves`), :func:`bler_table_text` into the table
file; :func:`make_bler_table`, the command, streams the points to the partial file and writes
the table.

Usage::

    semcom make-bler-table --channels awgn,rayleigh --block_bits 256,1024,4096,8424
"""

from __future__ import annotations

import csv
import io
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import scipy.stats
import torch

import phy
from experiments.cli import entry_point
from experiments.recipes.config import resolve_config
from experiments.reporting.results import atomic_write_text
from experiments.values import IntGrid, Names
from phy.bler import BLER_TABLE_COLUMNS
from phy.mcs import MCS, mcs_table
from phy.sweep import make_channel

#: SNR grid per channel: (start below the Shannon threshold in dB, step in dB, points at most).
GRIDS = {"awgn": (0.5, 0.25, 60), "rayleigh": (-0.5, 0.5, 70)}
#: Information bits per block of the shipped table (8424 + 24 CRC bits = 8448, the largest
#: 5G LDPC block).
BLOCK_BITS = (256, 1024, 4096, 8424)
PARTIAL_COLUMNS = ("channel", "qm", "code_rate", "block_bits", "snr_db", "block_errors",
                   "num_blocks")
_MAX_BATCH_BITS = 2_000_000  # information bits per decoded batch (bounds memory)


@dataclass(frozen=True)
class BLERTableConfig:
    """What ``semcom make-bler-table`` simulates (checked when built).

    Attributes:
        channels: channels with an SNR grid (``awgn``, ``rayleigh``: i.i.d. per symbol).
        block_bits: information bits per block (1 .. 8424), block size by block size.
        target_block_errors: a point ends after this many block errors ...
        max_blocks: ... or this many blocks.
        min_bler: a curve ends at its first point with BLER <= this.
        seed: seed of every point (with channel, Qm, R, k and SNR).
        decoder: LDPC decoder of :class:`phy.DigitalLink` (``cpu``: the layered one).
        confidence_stop: also end a point once BLER <= ``min_bler`` holds at 95 %
            confidence (see the module docstring); without it, such points of an earlier run
            are simulated again to the limits.
    """

    channels: Names = Names(("awgn", "rayleigh"))
    block_bits: IntGrid = IntGrid(BLOCK_BITS)
    target_block_errors: int = 100
    max_blocks: int = 100_000
    min_bler: float = 1e-3
    seed: int = 2026
    decoder: str = "cpu"
    confidence_stop: bool = False

    def __post_init__(self) -> None:
        channels, sizes = Names.parse(self.channels), IntGrid.parse(self.block_bits)
        object.__setattr__(self, "channels", channels)
        object.__setattr__(self, "block_bits", sizes)
        for ch in channels:
            if ch not in GRIDS:
                raise ValueError(f"channels: {ch!r} has no SNR grid; use {list(GRIDS)}")
        if not sizes or not all(1 <= k <= 8424 for k in sizes):
            raise ValueError(f"block_bits must lie in 1 .. 8424, got {list(sizes)}")
        for name in ("target_block_errors", "max_blocks"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an int >= 1, got {v!r}")
        if not 0 < self.min_bler < 1:
            raise ValueError(f"min_bler must lie in (0, 1), got {self.min_bler}")
        if self.decoder not in phy.DECODERS:
            raise ValueError(f"decoder must be one of {list(phy.DECODERS)}, got "
                             f"{self.decoder!r}")


@dataclass(frozen=True)
class Point:
    snr_db: float
    block_errors: int
    num_blocks: int

    @property
    def bler(self) -> float:
        return self.block_errors / self.num_blocks


@dataclass
class BLERCurves:
    """The curves of a :class:`BLERTableConfig` (those finished; see
    :func:`simulate_bler_curves`).

    Attributes:
        config: what was simulated.
        rows: the table's rows of the finished curves (``BLER_TABLE_COLUMNS``), one per
            (channel, table, MCS, block size, SNR) of every MCS that uses a curve's (Qm, R).
        replaced: (channel, table, MCS, block size) of those curves, as strings.
        finished: curves finished per (channel, block size).
        num_pairs: the (Qm, R) pairs, i.e. the curves per (channel, block size).
        done: every point simulated, this run's and the earlier ones (the partial file).
    """

    config: BLERTableConfig
    rows: list[dict[str, Any]]
    replaced: set[tuple[str, str, str, str]]
    finished: dict[tuple[str, int], int]
    num_pairs: int
    done: dict[tuple, Point]

    @property
    def complete(self) -> bool:
        """Every curve of the config is finished."""
        cfg = self.config
        return not (any(n < self.num_pairs for n in self.finished.values())
                    or len(self.finished) < len(cfg.channels) * len(cfg.block_bits))


def snr_walk(se: float, channel: str) -> Iterator[float]:
    """The SNR grid (dB) of a curve of spectral efficiency ``se`` bits per channel use."""
    below, step, num = GRIDS[channel]
    th = 10 * math.log10(2**se - 1)
    start = math.floor((th - below) / step) * step
    for i in range(num):
        yield round(start + i * step, 3)


def bler_upper_bound(errors: int, blocks: int, confidence: float = 0.95) -> float:
    """One-sided Clopper-Pearson upper bound on the BLER after ``errors`` in ``blocks``."""
    if blocks < 1:
        return 1.0
    if errors >= blocks:
        return 1.0
    return float(scipy.stats.beta.ppf(confidence, errors + 1, blocks - errors))


def simulate_point(link: phy.DigitalLink, k: int, snr_db: float, *, target_errors: int,
                   max_blocks: int, stop_bler: float | None = None,
                   min_batch: int = 100) -> Point:
    """Block errors at one SNR: batches until ``target_errors`` errors, ``max_blocks`` blocks
    or (with ``stop_bler``) until the BLER is at most ``stop_bler`` at 95 % confidence."""
    cap = max(min_batch, _MAX_BATCH_BITS // k)
    errors = blocks = 0
    while errors < target_errors and blocks < max_blocks:
        if stop_bler is not None and bler_upper_bound(errors, blocks) <= stop_bler:
            break
        if errors == 0:
            want = min_batch if blocks == 0 else 4 * blocks
            if stop_bler is not None:  # no further than the clean run that ends the point
                want = min(want, math.ceil(math.log(0.05) / math.log1p(-stop_bler)) - blocks)
        else:  # enough for the missing errors at the rate seen so far, 20 % margin
            want = math.ceil(1.2 * (target_errors - errors) * blocks / errors)
        batch = int(min(max(want, min_batch), cap, max_blocks - blocks))
        errors += int(link.block_errors(batch, snr_db, k=k).sum())
        blocks += batch
    return Point(snr_db, errors, blocks)


def read_partial(path: Path) -> dict[tuple, Point]:
    """The points of a partial file, by (channel, Qm, R as ``%.6f``, k, SNR); empty where
    there is none."""
    done: dict[tuple, Point] = {}
    if not path.exists():
        return done
    with path.open() as f:
        for r in csv.DictReader(f):
            key = (r["channel"], int(r["qm"]), r["code_rate"], int(r["block_bits"]),
                   float(r["snr_db"]))
            done[key] = Point(float(r["snr_db"]), int(r["block_errors"]), int(r["num_blocks"]))
    return done


def append_partial(path: Path, row: dict) -> None:
    """Append one point (``PARTIAL_COLUMNS``) to the partial file (its header first, where
    it is new)."""
    new = not path.exists()
    with path.open("a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(PARTIAL_COLUMNS), lineterminator="\n")
        if new:
            w.writeheader()
        w.writerow(row)
        f.flush()


def run_curve(channel: str, qm: int, rate: float, k: int, *, cfg: BLERTableConfig,
              done: dict[tuple, Point], write_only: bool = False,
              on_point: Callable[[dict[str, Any]], Any] | None = None
              ) -> tuple[list[Point], bool] | None:
    """The points of one curve (from ``done`` where already simulated; each new one goes into
    ``done`` and, as a partial-file row, to ``on_point``) and whether it ended at
    ``min_bler``; ``None`` with ``write_only`` where the curve is not finished."""
    link = phy.DigitalLink(make_channel(channel), MCS.custom(qm, rate), block_bits=k,
                           decoder=cfg.decoder)
    rate_key = f"{rate:.6f}"
    points: list[Point] = []
    for snr in snr_walk(qm * rate, channel):
        key = (channel, qm, rate_key, k, snr)
        p = done.get(key)
        if p is None and write_only:
            return None
        if p is not None and not (write_only or cfg.confidence_stop) and _shallow(p, cfg):
            p = None  # ended by a confidence stop: deepen it to the limits
        if p is None:
            phy.set_seed(phy.derived_seed(cfg.seed, channel, qm, rate_key, k, f"{snr:.3f}"))
            p = simulate_point(link, k, snr, target_errors=cfg.target_block_errors,
                               max_blocks=cfg.max_blocks,
                               stop_bler=cfg.min_bler if cfg.confidence_stop else None)
            done[key] = p
            if on_point is not None:
                on_point({"channel": channel, "qm": qm, "code_rate": rate_key,
                          "block_bits": k, "snr_db": snr, "block_errors": p.block_errors,
                          "num_blocks": p.num_blocks})
        points.append(p)
        if p.bler <= cfg.min_bler:
            return points, True
    return points, False


def _shallow(p: Point, cfg: BLERTableConfig) -> bool:
    """Whether ``p`` ended before both of ``cfg``'s limits (by a confidence stop)."""
    return p.block_errors < cfg.target_block_errors and p.num_blocks < cfg.max_blocks


def _trim(points: list[Point]) -> list[Point]:
    """Drop the leading points where every block failed, but the last of them."""
    first = 0
    while first + 1 < len(points) and points[first + 1].bler == 1.0:
        first += 1
    return points[first:]


def _read_table(path: Path) -> list[dict]:
    if not path.exists():
        return []
    lines = [ln for ln in path.read_text().splitlines() if ln and not ln.startswith("#")]
    return list(csv.DictReader(io.StringIO("\n".join(lines))))


def _rate_pairs() -> dict[tuple[int, float], list[MCS]]:
    """The MCS of the 64QAM and 256QAM tables by (Qm, R)."""
    pairs: dict[tuple[int, float], list[MCS]] = {}
    for table in ("qam64", "qam256"):
        for m in mcs_table(table):
            pairs.setdefault((m.modulation_order, m.code_rate), []).append(m)
    return pairs


def simulate_bler_curves(cfg: BLERTableConfig, *, done: dict[tuple, Point] | None = None,
                         write_only: bool = False,
                         on_point: Callable[[dict[str, Any]], Any] | None = None,
                         t0: float | None = None) -> BLERCurves:
    """Simulate every curve of ``cfg``, block size by block size (so that a run stopped early
    has whole sizes), skipping the points in ``done`` (an earlier run's, e.g. from
    :func:`read_partial`); each new point goes to ``on_point`` as a partial-file row as it
    finishes, and each curve is printed (time since ``t0``) as it ends. ``write_only``:
    simulate nothing, keep the curves ``done`` finishes."""
    done = {} if done is None else dict(done)
    pairs = _rate_pairs()
    t0 = time.time() if t0 is None else t0
    rows: list[dict] = []
    replaced: set[tuple[str, str, str, str]] = set()
    finished: dict[tuple[str, int], int] = {}
    for k in cfg.block_bits:  # block size first: a run stopped early ships whole sizes
        for ch in cfg.channels:
            for (qm, rate), members in sorted(pairs.items()):
                curve = run_curve(ch, qm, rate, k, cfg=cfg, done=done, write_only=write_only,
                                  on_point=on_point)
                if curve is None:
                    continue
                points, ended = curve
                finished[(ch, k)] = finished.get((ch, k), 0) + 1
                points = _trim(points)
                for m in members:
                    replaced.add((ch, m.table, str(m.index), str(k)))
                    rows += [{"channel": ch, "table": m.table, "mcs": m.index,
                              "snr_db": p.snr_db, "bler": f"{p.bler:.6g}", "block_bits": k,
                              "num_blocks": p.num_blocks} for p in points]
                flag = "" if ended else f" (did not reach BLER {cfg.min_bler:g})"
                print(f"[{time.time() - t0:7.0f} s] {ch} k={k} Qm={qm} R={rate:.4f}: "
                      + " ".join(f"{p.snr_db:g}:{p.bler:.3g}" for p in points) + flag,
                      flush=True)
    return BLERCurves(cfg, rows, replaced, finished, len(pairs), done)


def bler_table_text(curves: BLERCurves, old: list[dict] | None = None) -> tuple[str, int]:
    """The table file of ``curves`` (header comments, then the rows sorted by channel, table,
    MCS, block size and SNR) and its number of rows; ``old``: rows of a previous table kept
    for the curves not replaced (the header says how many)."""
    cfg = curves.config
    channels, sizes = list(cfg.channels), list(cfg.block_bits)
    old = [r for r in old or ()
           if (r["channel"], r["table"], r["mcs"], r["block_bits"]) not in curves.replaced]
    header = (f"# BLER of phy.DigitalLink.block_errors (CRC24B + 5G LDPC, decoder="
              f"{cfg.decoder!r} ({phy.DECODERS[cfg.decoder]}), 20 it., APP demapping, one "
              f"transmission) on {', '.join(channels)} (rayleigh: i.i.d. per symbol, average "
              f"Es/N0), k = {', '.join(map(str, sizes))} information bits per block; each "
              f"point runs to {cfg.target_block_errors} block errors or {cfg.max_blocks} "
              f"blocks, each curve down to BLER {cfg.min_bler:g}; made by "
              f"experiments/tools/make_bler_table.py (seed {cfg.seed})\n"
              f"# regenerate: semcom make-bler-table --channels {','.join(channels)} "
              f"--block_bits {','.join(map(str, sizes))}\n")
    if old or not curves.complete:
        done_text = ", ".join(f"{c} k={k}: {curves.finished.get((c, k), 0)} of "
                              f"{curves.num_pairs}" for k in sizes for c in channels)
        header += f"# curves regenerated so far (per (Qm, R) pair): {done_text}\n"
    if old:
        header += (f"# {len(old)} rows kept from the previous table (curves not regenerated "
                   "yet; their num_blocks column tells their depth)\n")
    rows = curves.rows + [{c: r[c] for c in BLER_TABLE_COLUMNS} for r in old]
    shallow = sum(_shallow(Point(float(r["snr_db"]),
                                 round(float(r["bler"]) * int(r["num_blocks"])),
                                 int(r["num_blocks"])), cfg) for r in rows)
    if shallow:
        header += (f"# {shallow} points (each the last of its curve) ended once BLER <= "
                   f"{cfg.min_bler:g} held at 95 % confidence, before {cfg.max_blocks} blocks "
                   "(make-bler-table --confidence_stop; their num_blocks column says so); a "
                   "run without that option deepens them\n")
    rows.sort(key=lambda r: (r["channel"], r["table"], int(r["mcs"]), int(r["block_bits"]),
                             float(r["snr_db"])))
    buf = io.StringIO()
    buf.write(header)
    writer = csv.DictWriter(buf, fieldnames=list(BLER_TABLE_COLUMNS), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue(), len(rows)


#: Where the table ships.
DEFAULT_OUT = str(Path(__file__).resolve().parents[2] / "phy" / "data" / "bler_table.csv")


def make_bler_table(cfg: BLERTableConfig | None = None, *, threads: int | None = None,
                    keep_old: bool = False, write_only: bool = False, out: str = DEFAULT_OUT,
                    **settings: Any) -> Path:
    """Simulate (or resume) the curves and write the table; returns its path.

    Args:
        cfg: what to simulate; or give its fields as keywords (``settings``).
        threads: decoder threads (numba; None: numba's default).
        keep_old: keep the curves of the existing table at ``out`` that this run has not
            replaced yet (a table shipped in stages).
        write_only: simulate nothing: write ``out`` from the finished curves of the partial
            file.
        out: the table file (``<out>.partial.csv`` holds the points as they finish).
    """
    cfg = resolve_config(BLERTableConfig, cfg, settings)
    if threads is not None:
        import numba

        numba.set_num_threads(threads)
    torch.set_num_threads(1)

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_suffix(".partial.csv")
    done = read_partial(partial)
    t0 = time.time()
    curves = simulate_bler_curves(cfg, done=done, write_only=write_only,
                                  on_point=lambda row: append_partial(partial, row), t0=t0)
    text, num_rows = bler_table_text(curves, _read_table(out) if keep_old else None)
    atomic_write_text(out, text)
    print(f"wrote {num_rows} rows to {out} in {time.time() - t0:.0f} s")
    return out


#: ``python -m experiments.tools.make_bler_table`` = ``semcom make-bler-table``.
main = entry_point("make-bler-table")


if __name__ == "__main__":
    raise SystemExit(main())
