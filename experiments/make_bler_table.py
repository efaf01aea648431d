"""Simulate the BLER-vs-SNR table shipped as ``phy/data/bler_table.csv``.

Every (modulation order, code rate) of the TS 38.214 64QAM and 256QAM tables is simulated once
with :class:`phy.DigitalLink` (CRC24B + 5G LDPC, 20 BP iterations, APP demapping) on each
channel, over an SNR grid centred on its Shannon threshold ``10 log10(2^SE - 1)``; the rows are
written for every (table, index) that uses that pair. Curves finished so far are kept in
``<out>.partial.csv``, so an interrupted run resumes where it stopped.

Usage::

    python -m experiments.make_bler_table --channels awgn --out phy/data/bler_table.csv

Add ``rayleigh`` to ``--channels`` for curves at the average SNR of per-symbol Rayleigh fading.
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import time
from pathlib import Path

import phy
from experiments.results import atomic_write_text
from phy.mcs import BLER_TABLE_COLUMNS, mcs_table
from phy.sweep import make_channel, simulate_link

#: SNR grid around the Shannon threshold (dB): (below, above, step) per channel.
GRIDS = {"awgn": (-0.5, 5.0, 0.5), "rayleigh": (0.0, 16.0, 1.0)}


def snr_grid(se: float, channel: str) -> list[float]:
    below, above, step = GRIDS[channel]
    th = 10 * math.log10(2**se - 1)
    start = math.floor((th + below) / step) * step
    n = round((above - below) / step) + 1
    return [round(start + i * step, 3) for i in range(n)]


def _read_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with path.open() as f:
        return list(csv.DictReader(f))


def _write_rows(path: Path, rows: list[dict], header: str = "") -> None:
    buf = io.StringIO()
    buf.write(header)
    writer = csv.DictWriter(buf, fieldnames=list(BLER_TABLE_COLUMNS), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--channels", default="awgn")
    ap.add_argument("--block-bits", type=int, default=1024)
    ap.add_argument("--batch-size", type=int, default=50)
    ap.add_argument("--max-batches", type=int, default=6)
    ap.add_argument("--target-block-errors", type=int, default=20)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--decoder", default="cpu", choices=list(phy.DECODERS),
                    help="LDPC decoder of phy.DigitalLink (default cpu: the layered one)")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "phy" / "data"
                                          / "bler_table.csv"))
    args = ap.parse_args(argv)
    out = Path(args.out)
    partial = out.with_suffix(".partial.csv")
    rows = _read_rows(partial)
    finished = {(r["channel"], r["table"], r["mcs"]) for r in rows}

    pairs: dict[tuple[int, float], list] = {}
    for table in ("qam64", "qam256"):
        for m in mcs_table(table):
            pairs.setdefault((m.modulation_order, m.code_rate), []).append(m)
    channels = [c.strip() for c in args.channels.split(",") if c.strip()]
    t0 = time.time()
    for ch_name in channels:
        if ch_name not in GRIDS:
            raise SystemExit(f"--channels: {ch_name!r} has no SNR grid; use {list(GRIDS)}")
        for (qm, rate), members in sorted(pairs.items()):
            if all((ch_name, m.table, str(m.index)) in finished for m in members):
                continue
            phy.set_seed(args.seed)
            link = phy.DigitalLink(make_channel(ch_name), members[0],
                                   block_bits=args.block_bits, decoder=args.decoder)
            grid = snr_grid(qm * rate, ch_name)
            points = simulate_link(link, grid, batch_size=args.batch_size,
                                   max_batches=args.max_batches,
                                   target_block_errors=args.target_block_errors,
                                   desc=f"{ch_name} Qm={qm} R={rate:.3f}")
            for m in members:
                for p in points:
                    if p.num_blocks == 0:  # not simulated (early stop after an error-free point)
                        continue
                    rows.append({"channel": ch_name, "table": m.table, "mcs": m.index,
                                 "snr_db": p.snr_db, "bler": f"{p.bler:.6g}",
                                 "block_bits": args.block_bits, "num_blocks": p.num_blocks})
                finished.add((ch_name, m.table, str(m.index)))
            _write_rows(partial, rows)
            print(f"[{time.time() - t0:7.1f} s] {ch_name} Qm={qm} R={rate:.4f}: "
                  + " ".join(f"{p.snr_db:g}:{p.bler:.3g}" for p in points if p.num_blocks),
                  flush=True)
    header = (f"# BLER of phy.DigitalLink (CRC24B + 5G LDPC, decoder={args.decoder!r} "
              f"({phy.DECODERS[args.decoder]}), 20 it., APP demapping) on "
              f"{', '.join(channels)} (rayleigh: i.i.d. per symbol, average Es/N0), "
              f"{args.block_bits} info bits per block, made by experiments/make_bler_table.py "
              f"(seed {args.seed}, batch {args.batch_size} x <= {args.max_batches}, "
              f"target {args.target_block_errors} block errors per point)\n"
              f"# regenerate: python -m experiments.make_bler_table --channels "
              f"{','.join(channels)} --batch-size {args.batch_size} --max-batches "
              f"{args.max_batches} --target-block-errors {args.target_block_errors}\n")
    rows.sort(key=lambda r: (r["channel"], r["table"], int(r["mcs"]), float(r["snr_db"])))
    _write_rows(out, rows, header=header)
    partial.unlink(missing_ok=True)
    print(f"wrote {len(rows)} rows to {out} in {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
