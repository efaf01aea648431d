"""Throughput benchmark of the ``phy`` links, and the cost of our glue over bare Sionna.

Usage::

    semcom bench-link --skip_digital --skip_analog --skip_tensor   # decoders only

    semcom bench-link [--mcs 10] [--block_bits 1024] [--batch 200] [--repeats 5]
                      [--snr_db 10] [--channel awgn|rayleigh] [--threads 1]
                      [--out results] [--tensor_shape 8x4096]
                      [--tensor_repeats 1] [--skip_digital] [--skip_analog]
                      [--skip_tensor] [--seed 0] [--num_iter 20] [--table qam64]

(``python -m experiments.bench_link`` is the same command; dashed spellings still work.)

What is measured (wall-clock, :func:`time.perf_counter`, under :func:`torch.no_grad`):

0b. **Demappers** -- :class:`phy.demapping.QAMDemapper` (``DigitalLink``'s) against Sionna's
   ``Demapper("app")`` on the same symbols for QPSK ... 256QAM: symbols/s, the speed-up and
   the largest LLR difference relative to the largest LLR (float32 rounding).

0. **LDPC decoders** -- :class:`phy.CPULDPC5GDecoder` (``DigitalLink(decoder="cpu")``: the
   compiled layered kernel of :mod:`phy.ldpc`) against Sionna's ``LDPC5GDecoder``
   (``decoder="sionna"``) on the same channel LLRs (the link's mapper, channel and APP
   demapper at ``--snr-db``), for ``k = 1024`` and ``8424`` (+ 24 CRC = 8448) on 1 and 2
   threads, as information bits/s and the speed-up ``t_sionna / t_cpu`` (the bar is >= 20x,
   the goal >= 100x and >= 10 Mbit/s per core), with early stopping and without it (all
   ``--num-iter`` iterations: the worst case). Batches hold ``--batch`` blocks of
   ``--block-bits`` worth of information bits.

1. **DigitalLink** -- ``phy.DigitalLink(channel, mcs, block_bits=k).send_bits(bits, snr_db)`` on
   ``batch`` code blocks of ``k`` information bits (no HARQ). Reported as *information bits per
   second*, ``batch * k / t`` (CRC and parity bits are not counted).
2. **Bare Sionna chain** -- the same work written directly with Sionna blocks and no ``phy``
   glue: ``CRCEncoder("CRC24B")`` → ``LDPC5GEncoder(k + 24, n, num_bits_per_symbol=Qm)`` (``n``
   is ``link.coded_bits(k)``) → ``Mapper("qam", Qm)`` → channel → equalizer →
   ``Demapper("app", "qam", Qm)`` → ``LDPC5GDecoder(enc, num_iter, hard_out=True,
   return_infobits=True, cn_update="boxplus-phi")`` → ``CRCDecoder``. On AWGN the channel is
   :class:`sionna.phy.channel.AWGN` and the demapper takes ``y`` and ``no`` directly (no
   equalizer). On Rayleigh both chains call the *same* ``phy.RayleighFading("symbol")`` object
   and the bare chain equalizes inline (``y h* / |h|^2``, ``no / |h|^2``), so only the glue
   differs.
3. **Overhead** of ours over bare, ``(t_ours / t_bare - 1) * 100`` % (the goal is <= 10 %).
   Each chain is warmed up with one call; then the two are called alternately (ours, bare,
   ours, bare, ...) ``repeats`` times, so slow drifts of the machine hit both alike. Before
   every call the same seed is set with :func:`phy.set_seed` and the same bits are sent, so the
   two chains draw the same noise (and fading) and decode the same received words; the script
   checks that they reach identical decisions. The overhead is computed from the medians; the
   minimum times (the least disturbed run) are reported next to them.
4. **AnalogLink** -- ``phy.AnalogLink(channel).send(z, snr_db)`` for real ``z`` of a few shapes,
   on AWGN and on ``RayleighFading("symbol")``, as *complex channel uses per second*
   (``B * ceil(D / 2) / t``). For scale, the bare Sionna channel alone on the same
   complex tensor: :class:`sionna.phy.channel.AWGN`, and ``GenerateFlatFadingChannel`` +
   ``ApplyFlatFadingChannel`` for the fading case. What AnalogLink adds on top of that is
   packing, power normalization, input checks, MMSE equalization and unpacking.
5. **DigitalLink.send_tensor** -- an ``[8, 4096]`` tensor (``--tensor-shape``) as a ``bf16``
   payload (16 bits per element, cut into code blocks of ``block_bits``: 4096 blocks at
   ``k = 1024``, sent as ``send_bits`` batches of ``max_batch_blocks``, 1024 by default and
   ``--tensor-batch-blocks`` if given), as *payload bits per second*. The warm-up is one
   small tensor through the same link (a full-size warm-up would double the run time); then
   ``--tensor-repeats`` timed calls (default 1).

Run time: the LDPC decoder dominates everything. On one CPU thread Sionna's decoder needs
some tens of ms per 1024-bit block at 20 iterations, so the default run (12 ``send_bits`` calls
of 200 blocks, then one 4096-block ``send_tensor``) takes about 8 minutes on a shared 2-core
machine. ``--skip-tensor``, ``--skip-analog``, ``--skip-digital`` and a smaller
``--tensor-shape`` shorten it. Batches of more than ~256 blocks are markedly slower *per block*
on CPU, in bare Sionna as in ``phy``: the decoder's ``[blocks, edges]`` temporaries then page
fault on every allocation (system time; most likely because they exceed glibc's largest mmap
threshold of 32 MiB and are mmap'ed afresh each time). Compare ``--tensor-batch-blocks 256``
with the default.

How to read it: higher is faster. Throughputs depend on the number of CPU threads (``--threads``,
1 by default so that numbers are comparable on a shared machine) and on the LDPC decoder, which
dominates the digital chain; "rate (best)" uses the fastest repeat, "rate (median)" the
median. The numbers go to stdout and to ``<out>/bench_link/<timestamp>/`` (``config.yaml``,
``manifest.json``, ``bench_link.csv`` with one row per measurement, ``summary.md``).
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from sionna.phy.channel import AWGN as SionnaAWGN
from sionna.phy.channel import ApplyFlatFadingChannel, GenerateFlatFadingChannel
from sionna.phy.fec.crc import CRCDecoder, CRCEncoder
from sionna.phy.fec.ldpc import LDPC5GDecoder, LDPC5GEncoder
from sionna.phy.mapping import Demapper, Mapper

import phy
from experiments.cli import entry_point
from experiments.recipes.config import resolve_config
from experiments.reporting.results import ResultsDir
from experiments.values import IntGrid
from phy.checks import check_choice, check_positive_int
from phy.codeblock import CRC_BITS, mother_code_inverse_rate

ANALOG_SHAPES: tuple[tuple[int, int], ...] = ((64, 3 * 32 * 32), (16, 196608))
TENSOR_SHAPE: tuple[int, int] = (8, 4096)


class BareSionnaChain:
    """CRC24B → 5G LDPC → QAM → channel → (equalizer) → APP demapper → LDPC → CRC, bare Sionna."""

    def __init__(self, channel_name: str, channel: phy.Channel, k: int, n: int, qm: int,
                 num_iter: int) -> None:
        self.crc_enc = CRCEncoder("CRC24B")
        self.crc_dec = CRCDecoder(self.crc_enc)
        self.enc = LDPC5GEncoder(k + CRC_BITS, n, num_bits_per_symbol=qm)
        self.dec = LDPC5GDecoder(self.enc, num_iter=num_iter, hard_out=True,
                                 return_infobits=True, cn_update="boxplus-phi")
        self.mapper = Mapper("qam", qm)
        self.demapper = Demapper("app", "qam", qm)
        self.awgn = SionnaAWGN() if channel_name == "awgn" else None
        self.channel = channel

    @torch.no_grad()
    def __call__(self, bits: torch.Tensor, snr_db: float) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.mapper(self.enc(self.crc_enc(bits)))
        if self.awgn is not None:
            no = torch.tensor(10.0 ** (-snr_db / 10.0), dtype=torch.float32)
            llr = self.demapper(self.awgn(x, no), no)
        else:
            out = self.channel(x, snr_db)
            h = out.h
            g = h.real.square() + h.imag.square()
            llr = self.demapper(out.y * h.conj() / g, out.no / g)
        u_hat, ok = self.crc_dec(self.dec(llr))
        return u_hat, ok.reshape(-1)


def _stats(times: list[float], units: float) -> dict[str, float]:
    med, best = statistics.median(times), min(times)
    return {"median_s": med, "min_s": best, "rate_median": units / med,
            "rate_best": units / best}


def _time_one(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _time_repeated(fn: Callable[[], Any], repeats: int, seed: int) -> list[float]:
    """Warm up once, then ``repeats`` timed calls, each after ``phy.set_seed(seed)``."""
    phy.set_seed(seed)
    fn()
    times = []
    for _ in range(repeats):
        phy.set_seed(seed)
        times.append(_time_one(fn))
    return times


def _fmt_rate(r: float) -> str:
    for scale, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if r >= scale:
            return f"{r / scale:8.3f} {unit}"
    return f"{r:8.3f}  "


def bench_digital(args: BenchLinkConfig) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Ours vs bare Sionna on ``args.batch`` code blocks; returns CSV rows and a summary dict."""
    mcs = phy.MCS.from_index(args.mcs, table=args.table)
    channel = phy.make_channel(args.channel)
    link = phy.DigitalLink(channel, mcs=mcs, block_bits=args.block_bits, num_iter=args.num_iter,
                           decoder="sionna")
    k, n, qm = args.block_bits, link.coded_bits(args.block_bits), mcs.modulation_order
    if (k + CRC_BITS) / n < 0.2:
        raise SystemExit(f"{mcs.name}: code rate {(k + CRC_BITS) / n:.3f} < 1/5 needs the "
                         "repetition that DigitalLink adds; the bare chain has none. Choose a "
                         "higher MCS.")
    bare = BareSionnaChain(args.channel, channel, k, n, qm, args.num_iter)
    gen = torch.Generator().manual_seed(args.seed)
    bits = torch.randint(0, 2, (args.batch, k), generator=gen).to(torch.float32)
    snr = float(args.snr_db)

    def run_ours() -> phy.DigitalResult:
        return link.send_bits(bits, snr)

    def run_bare() -> tuple[torch.Tensor, torch.Tensor]:
        return bare(bits, snr)

    # Warm-up (one call each) doubles as the check that both chains do the same work.
    phy.set_seed(args.seed)
    r_ours = run_ours()
    phy.set_seed(args.seed)
    u_bare, ok_bare = run_bare()
    same = bool(torch.equal(r_ours.ok, ok_bare)) and bool(torch.equal(r_ours.bits_hat, u_bare))
    bler_ours, bler_bare = r_ours.bler, float((~ok_bare).float().mean())

    t_ours: list[float] = []
    t_bare: list[float] = []
    for _ in range(args.repeats):
        phy.set_seed(args.seed)
        t_ours.append(_time_one(run_ours))
        phy.set_seed(args.seed)
        t_bare.append(_time_one(run_bare))

    units = args.batch * k
    s_ours, s_bare = _stats(t_ours, units), _stats(t_bare, units)
    overhead = (s_ours["median_s"] / s_bare["median_s"] - 1.0) * 100.0
    overhead_min = (s_ours["min_s"] / s_bare["min_s"] - 1.0) * 100.0
    common = {"section": "digital", "channel": args.channel, "mcs": mcs.name,
              "shape": f"{args.batch}x{k}", "coded_bits": n, "unit": "info_bits/s",
              "repeats": args.repeats}
    rows = [
        {**common, "impl": "ours: DigitalLink.send_bits", **s_ours, "bler": bler_ours,
         "overhead_pct_median": overhead, "overhead_pct_min": overhead_min,
         "identical_decisions": same},
        {**common, "impl": "bare Sionna chain", **s_bare, "bler": bler_bare,
         "identical_decisions": same},
    ]
    summary = {"mcs": mcs, "n": n, "ours": s_ours, "bare": s_bare, "overhead": overhead,
               "overhead_min": overhead_min, "same": same, "bler_ours": bler_ours,
               "bler_bare": bler_bare, "times_ours": t_ours, "times_bare": t_bare}
    return rows, summary


def _channel_llrs(link: phy.DigitalLink, k: int, batch: int, snr_db: float, seed: int
                  ) -> tuple[torch.Tensor, torch.Tensor, LDPC5GEncoder]:
    """Information bits (with CRC) ``[batch, k + 24]``, their channel LLRs after the link's
    mapper, channel, equalizer and demapper, and the encoder of the code."""
    gen = torch.Generator().manual_seed(seed)
    u = torch.randint(0, 2, (batch, k + CRC_BITS), generator=gen).to(torch.float32)
    qm = link.mcs.modulation_order
    enc = LDPC5GEncoder(k + CRC_BITS, link.coded_bits(k), num_bits_per_symbol=qm)
    phy.set_seed(seed)
    out = link.channel(Mapper("qam", qm)(enc(u)), snr_db)
    x_eq, no_eff = phy.zf_equalize(out.y, out.h, out.no)
    return u, Demapper("app", "qam", qm)(x_eq, no_eff), enc


def bench_decoders(args: BenchLinkConfig) -> tuple[list[dict[str, Any]], list[str]]:
    """:class:`phy.CPULDPC5GDecoder` against Sionna's ``LDPC5GDecoder`` on the same LLRs.

    Decoder alone (channel LLRs in, information bits out), for every ``k`` in ``--decoder-k``
    and thread count in ``--decoder-threads``; calls alternate (cpu, cpu without early stop,
    sionna, ...). "cpu, 20 it." never stops early: its worst case. Returns CSV rows and
    summary lines with the speed-ups."""
    import numba

    mcs = phy.MCS.from_index(args.decoder_mcs, table=args.table)
    snr = float(args.snr_db) if args.decoder_snr_db is None else float(args.decoder_snr_db)
    rows: list[dict[str, Any]] = []
    lines = [f"LDPC decoders on the same channel LLRs: {mcs.name}, {args.channel}, Es/N0 "
             f"{snr:g} dB, {args.num_iter} iterations at most, {args.repeats} interleaved "
             "repeats (information bits/s, median; speed-up = t_sionna / t_cpu)"]
    for threads in args.decoder_threads:
        torch.set_num_threads(threads)
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        for k in args.decoder_k:
            link = phy.DigitalLink(phy.make_channel(args.channel), mcs=mcs, block_bits=k,
                                   num_iter=args.num_iter, decoder="sionna")
            if (k + CRC_BITS) * mother_code_inverse_rate(k + CRC_BITS) < link.coded_bits(k):
                raise SystemExit(f"--decoder-mcs {mcs.name} with k={k} is below the mother "
                                 "code rate and needs DigitalLink's repetition; choose a "
                                 "higher MCS")
            batch = max(1, (args.batch * args.block_bits) // k)
            u, llr, enc = _channel_llrs(link, k, batch, snr, args.seed)
            decoders = {
                "cpu": phy.CPULDPC5GDecoder(enc, num_iter=args.num_iter),
                f"cpu, {args.num_iter} it.": phy.CPULDPC5GDecoder(
                    enc, num_iter=args.num_iter, early_stop=False),
                "sionna": LDPC5GDecoder(enc, num_iter=args.num_iter, hard_out=True,
                                        return_infobits=True, cn_update="boxplus-phi"),
            }
            bler = {d: float((dec(llr) != u).any(1).float().mean())  # doubles as warm-up
                    for d, dec in decoders.items()}
            times: dict[str, list[float]] = {d: [] for d in decoders}
            for _ in range(args.repeats):
                for d, dec in decoders.items():
                    times[d].append(_time_one(lambda dec=dec, llr=llr: dec(llr)))
            stats = {d: _stats(t, batch * k) for d, t in times.items()}
            speedup = {d: stats["sionna"]["median_s"] / stats[d]["median_s"] for d in decoders}
            for d in decoders:
                rows.append({"section": "decoder", "channel": args.channel, "mcs": mcs.name,
                             "shape": f"{batch}x{k}", "coded_bits": link.coded_bits(k),
                             "unit": "info_bits/s", "repeats": args.repeats,
                             "impl": f"{d}, {threads} thread(s)", **stats[d],
                             "bler": bler[d], "threads": threads,
                             "speedup_over_sionna": speedup[d]})
            lines.append(
                f"  k={k:5d}, {threads} thread(s), {batch:3d} blocks: cpu "
                f"{stats['cpu']['rate_median'] / 1e6:7.2f} Mbit/s ({speedup['cpu']:6.1f}x), "
                f"cpu {args.num_iter} it. "
                f"{stats[f'cpu, {args.num_iter} it.']['rate_median'] / 1e6:7.2f} Mbit/s "
                f"({speedup[f'cpu, {args.num_iter} it.']:6.1f}x), sionna "
                f"{stats['sionna']['rate_median'] / 1e6:7.4f} Mbit/s; BLER cpu "
                f"{bler['cpu']:.3f}, sionna {bler['sionna']:.3f}")
    torch.set_num_threads(args.threads)
    return rows, lines


def bench_demappers(args: BenchLinkConfig) -> tuple[list[dict[str, Any]], list[str]]:
    """:class:`phy.demapping.QAMDemapper` against Sionna's ``Demapper`` (APP) on the same
    noisy symbols (``--batch`` blocks' worth at ``--block-bits``, per-symbol N0), every QAM
    order, alternating calls: symbols/s, the speed-up and the largest LLR difference."""
    from phy.demapping import QAMDemapper

    rows, lines = [], ["demapper (APP, per-symbol N0): QAMDemapper vs sionna Demapper"]
    gen = torch.Generator().manual_seed(args.seed)
    for qm in (2, 4, 6, 8):
        num = max(1, args.batch * args.block_bits // qm)
        bits = torch.randint(0, 2, (1, num * qm), generator=gen).to(torch.float32)
        x = Mapper("qam", qm)(bits)
        no = torch.rand(x.shape, generator=gen) * 0.2 + 0.01
        y = x + torch.complex(torch.randn(x.shape, generator=gen),
                              torch.randn(x.shape, generator=gen)) * (no / 2).sqrt()
        ours, ref = QAMDemapper("app", qm), Demapper("app", "qam", qm)
        err = float((ours(y, no) - ref(y, no)).abs().max() / ref(y, no).abs().max())
        t_ours, t_ref = [], []
        for _ in range(args.repeats):
            t_ours.append(_time_one(lambda o=ours, y=y, no=no: o(y, no)))
            t_ref.append(_time_one(lambda r=ref, y=y, no=no: r(y, no)))
        s_ours, s_ref = _stats(t_ours, num), _stats(t_ref, num)
        speedup = s_ref["median_s"] / s_ours["median_s"]
        common = {"section": "demapper", "channel": "awgn", "mcs": f"{2 ** qm}-QAM",
                  "shape": f"{num} symbols", "coded_bits": "", "unit": "symbols/s",
                  "repeats": args.repeats}
        rows += [{**common, "impl": "ours: QAMDemapper", **s_ours, "speedup": speedup,
                  "max_rel_llr_diff": err},
                 {**common, "impl": "sionna Demapper", **s_ref}]
        lines.append(f"  {2 ** qm:4d}-QAM: ours {_fmt_rate(s_ours['rate_median'])} symbols/s, "
                     f"sionna {_fmt_rate(s_ref['rate_median'])}, {speedup:.1f}x, max "
                     f"|dLLR| / max |LLR| = {err:.1e}")
    return rows, lines


def bench_analog(args: BenchLinkConfig) -> list[dict[str, Any]]:
    """AnalogLink.send on AWGN and Rayleigh, and bare Sionna channels, in channel uses/s."""
    rows: list[dict[str, Any]] = []
    snr = float(args.snr_db)
    no = torch.tensor(10.0 ** (-snr / 10.0), dtype=torch.float32)
    gen = torch.Generator().manual_seed(args.seed)
    sionna_awgn = SionnaAWGN()
    gen_fading = GenerateFlatFadingChannel(1, 1)
    apply_fading = ApplyFlatFadingChannel()
    link_awgn = phy.AnalogLink(phy.AWGN())
    link_ray = phy.AnalogLink(phy.RayleighFading("symbol"))
    for b, d in ANALOG_SHAPES:
        z = torch.randn(b, d, generator=gen)
        s = phy.pack_complex(z)
        x = (s / (s.abs().square().mean(dim=1, keepdim=True)).sqrt()).to(torch.complex64)
        uses = b * s.shape[1]

        def faded(x: torch.Tensor = x) -> torch.Tensor:
            h = gen_fading(x.numel()).reshape(x.shape)
            return apply_fading(x.unsqueeze(-1), h[..., None, None], no).squeeze(-1)

        cases: list[tuple[str, str, Callable[[], Any]]] = [
            ("awgn", "ours: AnalogLink.send", lambda z=z: link_awgn.send(z, snr)),
            ("awgn", "bare Sionna AWGN", lambda x=x: sionna_awgn(x, no)),
            ("rayleigh", "ours: AnalogLink.send",
             lambda z=z: link_ray.send(z, snr)),
            ("rayleigh", "bare Sionna flat fading", faded),
        ]
        for ch_name, impl, fn in cases:
            with torch.no_grad():
                times = _time_repeated(fn, args.repeats, args.seed)
            rows.append({"section": "analog", "channel": ch_name, "mcs": "",
                         "shape": f"{b}x{d}", "coded_bits": "", "unit": "channel_uses/s",
                         "repeats": args.repeats, "impl": impl, **_stats(times, uses)})
    return rows


def bench_send_tensor(args: BenchLinkConfig) -> list[dict[str, Any]]:
    """DigitalLink.send_tensor of a ``--tensor-shape`` bf16 payload, in payload bits/s.

    The warm-up sends a small tensor (one code block) through the same link, which builds the
    codec and touches every code path; a full-size warm-up would double the run time.
    """
    mcs = phy.MCS.from_index(args.mcs, table=args.table)
    extra = {} if args.tensor_batch_blocks is None else \
        {"max_batch_blocks": args.tensor_batch_blocks}
    link = phy.DigitalLink(phy.make_channel(args.channel), mcs=mcs, block_bits=args.block_bits,
                           num_iter=args.num_iter, **extra)
    gen = torch.Generator().manual_seed(args.seed)
    t = torch.randn(*args.tensor_dims, generator=gen)
    snr = float(args.snr_db)
    phy.set_seed(args.seed)
    link.send_tensor(torch.randn(1, max(1, args.block_bits // 16), generator=gen), snr,
                     dtype="bf16")
    result: list[phy.TensorResult] = []

    def fn() -> None:
        result.append(link.send_tensor(t, snr, dtype="bf16"))

    times = []
    for _ in range(args.tensor_repeats):
        phy.set_seed(args.seed)
        times.append(_time_one(fn))
    r = result[-1]
    shape = "x".join(str(s) for s in args.tensor_dims)
    return [{"section": "send_tensor", "channel": args.channel, "mcs": mcs.name,
             "shape": f"{shape} bf16", "coded_bits": link.coded_bits(),
             "unit": "payload_bits/s", "repeats": args.tensor_repeats,
             "impl": "ours: DigitalLink.send_tensor", **_stats(times, r.payload_bits),
             "num_blocks": r.num_blocks, "max_batch_blocks": link.max_batch_blocks,
             "lost_fraction": r.lost_fraction}]


def _table(rows: list[dict[str, Any]]) -> str:
    head = (f"{'section':<12}{'channel':<10}{'shape':<16}{'impl':<30}{'median s':>10}"
            f"{'min s':>10}{'rate (median)':>16}{'rate (best)':>14}  unit")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['section']:<12}{r['channel']:<10}{r['shape']:<16}{r['impl']:<30}"
                     f"{r['median_s']:10.4f}{r['min_s']:10.4f}{_fmt_rate(r['rate_median']):>16}"
                     f"{_fmt_rate(r['rate_best']):>14}  {r['unit']}")
    return "\n".join(lines)


def _shape(text: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(d) for d in text.lower().split("x"))
    except ValueError as err:
        raise ValueError(f"tensor_shape must look like 64x4096, got {text!r}") from err
    if len(dims) < 2 or min(dims) < 1:
        raise ValueError(f"tensor_shape needs >= 2 positive dims, got {text!r}")
    return dims


def _digital_lines(dig: dict[str, Any], args: BenchLinkConfig) -> list[str]:
    ours, bare = dig["ours"], dig["bare"]
    goal = "met" if dig["overhead"] <= 10.0 else "NOT met"
    return [
        f"DigitalLink.send_bits vs bare Sionna: {dig['mcs'].name}, k={args.block_bits}+24 CRC, "
        f"n={dig['n']}, batch {args.batch}, {args.channel}, Es/N0 {args.snr_db:g} dB, "
        f"{args.num_iter} LDPC it., {args.threads} thread(s), {args.repeats} interleaved repeats",
        f"  info bits/s median: ours {ours['rate_median']:.4g}, bare {bare['rate_median']:.4g}; "
        f"best: ours {ours['rate_best']:.4g}, bare {bare['rate_best']:.4g}",
        f"  time ratio ours/bare: {ours['median_s'] / bare['median_s']:.4f} (median), "
        f"{ours['min_s'] / bare['min_s']:.4f} (min)",
        f"  overhead: {dig['overhead']:+.2f} % (median), {dig['overhead_min']:+.2f} % (min); "
        f"goal <= 10 % {goal}",
        f"  identical decisions: {dig['same']}; BLER ours {dig['bler_ours']:.4f}, "
        f"bare {dig['bler_bare']:.4f}",
        "  times ours [s]: " + " ".join(f"{t:.3f}" for t in dig["times_ours"]),
        "  times bare [s]: " + " ".join(f"{t:.3f}" for t in dig["times_bare"]),
    ]


def _markdown(rows: list[dict[str, Any]], dig: dict[str, Any] | None, dec_lines: list[str],
              args: BenchLinkConfig, path: str) -> str:
    out = ["# bench_link: throughput of phy links vs bare Sionna", ""]
    if dec_lines:
        out += ["```", *dec_lines, "```", ""]
    if dig is not None:
        out += ["```", *_digital_lines(dig, args), "```", ""]
    out += [
        "| section | channel | shape | implementation | median s | min s | rate (median) "
        "| rate (best) | unit |",
        "|---|---|---|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        out.append(f"| {r['section']} | {r['channel']} | {r['shape']} | {r['impl']} | "
                   f"{r['median_s']:.4f} | {r['min_s']:.4f} | {r['rate_median']:.4g} | "
                   f"{r['rate_best']:.4g} | {r['unit']} |")
    out += ["", "Rates: higher is faster; 'best' uses the fastest repeat. See the module "
            "docstring of `experiments/bench_link.py` for what each row measures.", "",
            f"Results folder: `{path}`"]
    return "\n".join(out)


@dataclass(frozen=True)
class BenchLinkConfig:
    """What ``semcom bench-link`` times (checked when built; sections in the module
    docstring).

    Attributes:
        mcs: MCS index.
        table: MCS table, qam64 or qam256.
        block_bits: information bits per code block.
        batch: code blocks per send_bits call.
        repeats: timed calls per measurement.
        num_iter: LDPC BP iterations.
        snr_db: Es/N0 in dB.
        channel: awgn or rayleigh.
        threads: torch threads.
        seed: seed of the bits and the channel.
        tensor_shape: send_tensor payload shape, e.g. 8x4096.
        tensor_repeats: timed send_tensor calls (8x4096 bf16 is 512 blocks).
        tensor_batch_blocks: DigitalLink max_batch_blocks for send_tensor (default: the
            link's).
        decoder_k: information bits per block of the decoder comparison (8424 + 24 CRC =
            8448, the largest 5G block).
        decoder_threads: thread counts of the decoder comparison.
        decoder_mcs: MCS index of the decoder comparison (13: 16QAM, R = 0.48).
        decoder_snr_db: Es/N0 (dB) of the decoder comparison (default: snr_db).
        skip_decoders: no cpu-vs-sionna decoder section.
        skip_demappers: no demapper section.
        skip_digital: no send_bits comparison.
        skip_analog: no AnalogLink section.
        skip_tensor: no send_tensor section.
    """

    mcs: int = 10
    table: str = "qam64"
    block_bits: int = 1024
    batch: int = 200
    repeats: int = 5
    num_iter: int = 20
    snr_db: float = 10.0
    channel: str = "awgn"
    threads: int = 1
    seed: int = 0
    tensor_shape: str = "x".join(map(str, TENSOR_SHAPE))
    tensor_repeats: int = 1
    tensor_batch_blocks: int | None = None
    decoder_k: IntGrid = IntGrid((1024, 8424))
    decoder_threads: IntGrid = IntGrid((1, 2))
    decoder_mcs: int = 13
    decoder_snr_db: float | None = None
    skip_decoders: bool = False
    skip_demappers: bool = False
    skip_digital: bool = False
    skip_analog: bool = False
    skip_tensor: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "decoder_k", IntGrid.parse(self.decoder_k))
        object.__setattr__(self, "decoder_threads", IntGrid.parse(self.decoder_threads))
        for name in ("repeats", "tensor_repeats", "batch", "threads", "num_iter",
                     "block_bits"):
            check_positive_int(name, getattr(self, name))
        if self.tensor_batch_blocks is not None:
            check_positive_int("tensor_batch_blocks", self.tensor_batch_blocks)
        for t in self.decoder_threads:
            check_positive_int("decoder_threads entry", t)
        if not self.decoder_k or not all(1 <= k <= 8424 for k in self.decoder_k):
            raise ValueError(f"decoder_k must be in [1, 8424] (k + 24 CRC bits <= 8448), got "
                             f"{list(self.decoder_k)}")
        check_choice("table", self.table, ("qam64", "qam256"))
        check_choice("channel", self.channel, ("awgn", "rayleigh"))
        phy.MCS.from_index(self.mcs, table=self.table)
        phy.MCS.from_index(self.decoder_mcs, table=self.table)
        self.tensor_dims  # noqa: B018 - a shape it can parse

    @property
    def tensor_dims(self) -> tuple[int, ...]:
        """:attr:`tensor_shape` as a tuple of sizes."""
        return _shape(self.tensor_shape)

    def to_dict(self) -> dict[str, Any]:
        """The settings as ``config.yaml`` records them (with the analog section's shapes)."""
        d = dataclasses.asdict(self)
        d.update(decoder_k=list(self.decoder_k), decoder_threads=list(self.decoder_threads),
                 tensor_shape=list(self.tensor_dims),
                 analog_shapes=[list(s) for s in ANALOG_SHAPES])
        return d


@dataclass
class BenchLinkResult:
    """The timings of a :class:`BenchLinkConfig`.

    Attributes:
        config: what was timed.
        rows: one per (section, shape, implementation): median and best s, rates.
        digital: the send_bits comparison's summary (None when skipped).
        lines: the decoder and demapper sections' summary lines.
    """

    config: BenchLinkConfig
    rows: list[dict[str, Any]]
    digital: dict[str, Any] | None
    lines: list[str]


def run(args: BenchLinkConfig) -> BenchLinkResult:
    """Time every section of ``args`` that is not skipped (printing each as it ends)."""
    torch.set_num_threads(args.threads)
    rows: list[dict[str, Any]] = []
    dig = None
    dec_lines: list[str] = []
    if not args.skip_decoders:
        rows, dec_lines = bench_decoders(args)
        print("\n".join(dec_lines), flush=True)
    if not args.skip_demappers:
        dm_rows, dm_lines = bench_demappers(args)
        rows += dm_rows
        dec_lines += dm_lines
        print("\n".join(dm_lines), flush=True)
    if not args.skip_digital:
        dig_rows, dig = bench_digital(args)
        rows += dig_rows
        print("\n".join(_digital_lines(dig, args)), flush=True)
    if not args.skip_analog:
        rows += bench_analog(args)
    if not args.skip_tensor:
        rows += bench_send_tensor(args)
    return BenchLinkResult(args, rows, dig, dec_lines)


def run_bench_link(cfg: BenchLinkConfig | None = None, *, out: str | Path = "results",
                   **settings: Any) -> ResultsDir:
    """``semcom bench-link``: :func:`run` into ``bench_link.csv`` and ``summary.md``
    (settings checked before any folder exists).

    Args:
        cfg: what to time; or give its fields as keywords (``settings``).
        out: root folder of the results.
    """
    cfg = resolve_config(BenchLinkConfig, cfg, settings)
    with ResultsDir.create("bench_link", cfg.to_dict(), seed=cfg.seed, root=out) as rd:
        result = run(cfg)
        if result.rows:
            print()
            print(_table(result.rows))
            rd.write_csv("bench_link.csv", result.rows)
        rd.write_summary(_markdown(result.rows, result.digital, result.lines, cfg,
                                   str(rd.path)))
    return rd


#: ``python -m experiments.bench_link``: ``semcom bench-link``
main = entry_point("bench-link")


if __name__ == "__main__":
    raise SystemExit(main())
