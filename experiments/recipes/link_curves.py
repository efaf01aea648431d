"""``semcom link-curves``: BER and BLER vs SNR of the 5G digital chain, per MCS.

:func:`simulate_link_curves` turns a :class:`LinkCurvesConfig` into a
:class:`LinkCurvesResult` (rows of numbers, no files); :func:`run_link_curves`, the command,
streams its rows to ``link_curves.csv`` in a results folder and adds the report of
:mod:`experiments.reporting.link_curves`: ``link_curves.png`` (BER and BLER panels) and
``summary.md`` (SNR needed for BLER 10 % per MCS), beside ``config.yaml`` and
``manifest.json``.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

import phy
from experiments.recipes.config import resolve_config
from experiments.reporting.link_curves import plot_link_curves, write_link_curves_report
from experiments.reporting.results import ResultsDir
from experiments.values import FloatGrid, IntGrid
from phy.checks import check_bool, check_choice, check_positive_int
from phy.sweep import LinkPoint, make_channel, simulate_link

__all__ = ["LinkCurvesConfig", "LinkCurvesResult", "link_curve_numbers", "plot_link_curves",
           "read_link_curves", "run_link_curves", "simulate_link_curves", "snr_at_bler"]


def link_curve_numbers(rows: Sequence[dict]) -> list[dict]:
    """Copies of link-curve rows (as :func:`run_link_curves` writes them, or their CSV text)
    with numbers for the SNR, BER, BLER and block count; a missing BER/BLER (a point never
    simulated, ``num_blocks = 0``, or BER under the abstraction) becomes ``nan``."""

    def num(v: object) -> float:
        return math.nan if v in ("", None) else float(v)

    return [dict(r, snr_db=float(r["snr_db"]), ber=num(r["ber"]), bler=num(r["bler"]),
                 num_blocks=int(r["num_blocks"])) for r in rows]


def read_link_curves(path: str | Path) -> list[dict]:
    """The rows of a ``link_curves.csv`` file, numbers parsed (:func:`link_curve_numbers`)."""
    import csv

    with open(path) as f:
        return link_curve_numbers(list(csv.DictReader(f)))


def snr_at_bler(rows: Sequence[dict], target: float = 0.1) -> float | None:
    """SNR (dB) where a simulated BLER curve crosses ``target`` (log-linear interpolation)."""
    pts = [(r["snr_db"], r["bler"]) for r in rows if r["num_blocks"] > 0]
    for (s0, b0), (s1, b1) in itertools.pairwise(pts):
        if b0 > target >= b1:
            if b1 <= 0:
                return s1
            f = (math.log10(b0) - math.log10(target)) / (math.log10(b0) - math.log10(b1))
            return s0 + f * (s1 - s0)
    if pts and pts[0][1] <= target:
        return pts[0][0]
    return None


def _row(channel: str, table: str, m: phy.MCS, rate: float, p: LinkPoint | None, snr: float,
         abstraction: bool) -> dict:
    """One CSV row; ``p=None`` is a point never simulated (missing, not error-free)."""
    missing = p is None or p.num_blocks == 0
    return {
        "channel": channel, "table": table, "mcs": m.index, "label": m.name,
        "modulation_order": m.modulation_order, "code_rate": m.code_rate,
        "spectral_efficiency": m.spectral_efficiency, "snr_db": snr,
        "ebno_db": snr - 10 * math.log10(m.modulation_order * rate),
        # the abstraction draws block outcomes only: it has no bit errors to count
        "ber": "" if missing or abstraction else p.ber,
        "bler": "" if missing else p.bler,
        "bit_errors": "" if abstraction else (0 if p is None else p.bit_errors),
        "block_errors": 0 if p is None else p.block_errors,
        "num_bits": 0 if p is None else p.num_bits,
        "num_blocks": 0 if p is None else p.num_blocks,
    }


def _previous_rows(resume: str | Path | None) -> dict[tuple[int, float], dict]:
    if resume is None:
        return {}
    prev = Path(resume) / "link_curves.csv"
    if not prev.is_file():
        raise ValueError(f"resume folder {str(resume)!r} holds no link_curves.csv")
    import csv

    with prev.open() as f:  # the cells as written (text), so that they are copied verbatim
        return {(int(r["mcs"]), float(r["snr_db"])): r for r in csv.DictReader(f)}




#: The chain's fixed settings, recorded in ``config.yaml`` beside a config's fields.
_FIXED_SETTINGS = {"num_iter": 20, "demapping": "app", "crc": "CRC24B"}


@dataclass(frozen=True)
class LinkCurvesConfig:
    """What ``semcom link-curves`` simulates (checked when built, before any work).

    Attributes:
        channel: channel spec (:data:`phy.CHANNELS`: awgn, rayleigh, rayleigh-block[:L],
            tdl-a ... tdl-e).
        mcs: MCS indices of ``table`` (``0,5,10`` or ``start:stop:step``).
        table: MCS table, ``qam64`` or ``qam256`` (TS 38.214).
        snr_db: Es/N0 grid in dB (``start:stop:step``, stop included, or ``a,b,c``).
        block_bits: information bits per code block.
        batch_size: code blocks per batch.
        max_batches: batches per SNR point at most.
        target_block_errors: move to the next SNR after this many block errors.
        max_transmissions: Chase-HARQ transmissions (1: off).
        seed: seed of every point (with the table, MCS and SNR).
        decoder: LDPC decoder, ``auto`` (the compiled layered decoder on CPU), ``cpu`` or
            ``sionna``.
        abstraction: draw block outcomes from the BLER table instead of decoding (BLER only).
    """

    channel: str = "awgn"
    mcs: IntGrid = IntGrid((0, 5, 10))
    table: str = "qam64"
    snr_db: FloatGrid = FloatGrid(range(-5, 26))
    block_bits: int = 1024
    batch_size: int = 100
    max_batches: int = 20
    target_block_errors: int = 100
    max_transmissions: int = 1
    seed: int = 0
    decoder: str = "auto"
    abstraction: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "mcs", IntGrid.parse(self.mcs))
        object.__setattr__(self, "snr_db", FloatGrid.parse(self.snr_db))
        if not self.snr_db:
            raise ValueError("snr_db must contain at least one SNR")
        check_choice("table", self.table, ("qam64", "qam256"))
        self.mcs_list  # noqa: B018 - every index exists in the table
        make_channel(self.channel)
        for name in ("batch_size", "max_batches", "target_block_errors"):
            check_positive_int(name, getattr(self, name))
        check_bool("abstraction", self.abstraction)

    @property
    def mcs_list(self) -> list[phy.MCS]:
        """The MCSs of :attr:`mcs` in :attr:`table`."""
        return [phy.MCS.from_index(int(i), self.table) for i in self.mcs]

    def to_dict(self) -> dict[str, Any]:
        """The settings as ``config.yaml`` records them (plain values, fixed ones included)."""
        d = dataclasses.asdict(self)
        d.pop("seed")  # the results folder records the seed on its own
        d["mcs"] = [int(i) for i in self.mcs]
        d["snr_db"] = [float(x) for x in self.snr_db]
        order = ("channel", "mcs", "table", "snr_db", "block_bits", "batch_size", "max_batches",
                 "target_block_errors", "max_transmissions")
        return {**{k: d.pop(k) for k in order}, **_FIXED_SETTINGS, **d}

    def make_links(self) -> dict[int, phy.DigitalLink]:
        """MCS index -> the link of every MCS (which checks the decoder, the block size, the
        HARQ depth and, for the abstraction, that the channel has one)."""
        link_cls = phy.AbstractDigitalLink if self.abstraction else phy.DigitalLink
        phy.DigitalLink(phy.AWGN(), self.mcs_list[0], decoder=self.decoder)
        return {m.index: link_cls(make_channel(self.channel), m, block_bits=self.block_bits,
                                  max_transmissions=self.max_transmissions,
                                  decoder=self.decoder)
                for m in self.mcs_list}


@dataclass
class LinkCurvesResult:
    """The curves of a :class:`LinkCurvesConfig`.

    Attributes:
        config: what was simulated.
        rows: one row per (MCS, SNR) in simulation order, numbers parsed
            (:func:`link_curve_numbers`): BER/BLER ``nan`` where not simulated.
    """

    config: LinkCurvesConfig
    rows: list[dict]

    def snr_at_bler(self, target: float = 0.1) -> dict[str, float | None]:
        """MCS name -> the SNR (dB) where its BLER crosses ``target`` (None if it does not)."""
        return {m.name: snr_at_bler([r for r in self.rows if r["label"] == m.name], target)
                for m in self.config.mcs_list}


def simulate_link_curves(cfg: LinkCurvesConfig, *,
                         previous: dict[tuple[int, float], dict] | None = None,
                         on_rows: Callable[[list[dict]], Any] | None = None,
                         links: dict[int, phy.DigitalLink] | None = None,
                         progress: bool = True) -> LinkCurvesResult:
    """Simulate every MCS of ``cfg`` over its SNR grid.

    Each (MCS, SNR) point is seeded from ``(seed, table, MCS, SNR)``
    (:func:`phy.derived_seed`), so a point's numbers do not depend on the others. After a
    point without any block error the curve's remaining SNRs are missing (empty BER/BLER,
    ``num_blocks = 0``).

    Args:
        cfg: what to simulate.
        previous: ``(MCS index, SNR) -> row`` of an earlier run, copied instead of simulated.
        on_rows: called with the rows so far after each point (e.g. to stream them to a CSV).
        links: :meth:`LinkCurvesConfig.make_links` when already built.
        progress: show a progress bar.
    """
    previous = previous or {}
    links = cfg.make_links() if links is None else links
    rows: list[dict] = []
    snrs = [float(s) for s in cfg.snr_db]
    bar = tqdm(total=len(links) * len(snrs), desc=f"link-curves {cfg.channel}", unit="point",
               disable=not progress)
    with bar:
        for m in cfg.mcs_list:
            link = links[m.index]
            rate = link.info_rate() / m.modulation_order
            stopped = False
            for s in snrs:
                old = previous.get((m.index, s))
                if old is not None:
                    row = dict(old)
                    stopped = int(old["num_blocks"]) > 0 and int(old["block_errors"]) == 0
                elif stopped:
                    row = _row(cfg.channel, cfg.table, m, rate, None, s, cfg.abstraction)
                else:
                    phy.set_seed(phy.derived_seed(cfg.seed, cfg.table, m.index, s))
                    bar.set_postfix(mcs=m.index, snr_db=s)
                    p = simulate_link(link, [s], batch_size=cfg.batch_size,
                                      max_batches=cfg.max_batches,
                                      target_block_errors=cfg.target_block_errors,
                                      early_stop=False, progress=False)[0]
                    row = _row(cfg.channel, cfg.table, m, rate, p, s, cfg.abstraction)
                    stopped = p.block_errors == 0
                rows.append(row)
                if on_rows is not None:
                    on_rows(rows)
                bar.update()
    return LinkCurvesResult(cfg, link_curve_numbers(rows))


def run_link_curves(cfg: LinkCurvesConfig | None = None, *, out: str | Path = "results",
                    name: str = "link_curves", resume: str | Path | None = None,
                    progress: bool = True, **settings: Any) -> ResultsDir:
    """``semcom link-curves``: :func:`simulate_link_curves` into a results folder.

    Rows stream to ``link_curves.csv`` point by point; then ``link_curves.png`` and
    ``summary.md`` (:func:`experiments.reporting.link_curves.write_link_curves_report`).
    ``resume`` (an earlier folder of this command) keeps its finished points and simulates
    only the rest in that folder, which gives the same numbers as one uninterrupted run; its
    settings other than ``mcs`` and ``snr_db`` must match.

    Args:
        cfg: what to simulate; or give its fields as keywords (``settings``).
        out: root folder of the results.
        name: results folder name.
        resume: an earlier link-curves results folder: keep its points, simulate the rest.
        progress: show a progress bar.
    """
    cfg = resolve_config(LinkCurvesConfig, cfg, settings)
    links = cfg.make_links()  # every check before the folder exists
    previous = _previous_rows(resume)
    if resume is not None:  # continue in place; only the grid (MCSs, SNRs) may change
        res = ResultsDir.resume(resume, name, cfg.to_dict(), cfg.seed,
                                extendable=("mcs", "snr_db"))
    else:
        res = ResultsDir.create(name, cfg.to_dict(), cfg.seed, root=out)
    with res:
        result = simulate_link_curves(  # streamed: a killed run keeps its points
            cfg, previous=previous, links=links, progress=progress,
            on_rows=lambda rows: res.write_csv("link_curves.csv", rows))
        write_link_curves_report(result, res, None if resume is None else str(resume))
    return res
