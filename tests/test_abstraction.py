"""AbstractDigitalLink against the decoded DigitalLink it abstracts."""

from __future__ import annotations

import math

import pytest
import torch

import phy
from phy.payload import lost_elements

MCS_INDEX = 10
BLOCKS = 400


def _waterfall_snrs(curve_channel: str, mcs: phy.MCS) -> list[float]:
    """Up to three simulated SNRs (dB) of the shipped curve in its waterfall (BLER 0.02-0.95).

    The check is made on the table's own grid: between grid points the lookup interpolates
    log-linearly, which on a waterfall about 1 dB wide and a 0.5 dB grid errs by up to ~0.2
    in BLER (a table-resolution error, not the abstraction's)."""
    c = phy.load_bler_table().curve(mcs, curve_channel, block_bits=1024)
    pts = [float(s) for s, b in zip(c.snr_db.tolist(), c.bler.tolist(), strict=True)
           if 0.02 <= b <= 0.95]
    assert pts, "no waterfall point in the shipped curve"
    return pts[:3]


# (name, channel, curve of the waterfall SNRs, HARQ transmissions, MCS index). Chase combining
# is checked on QPSK, where adding the bit LLRs of two copies is exactly a 3 dB SNR gain; for
# 16QAM and above bit-level combining loses against the summed SNR (see phy.abstraction).
CASES = [
    ("awgn", lambda: phy.AWGN(), "awgn", 1, MCS_INDEX),
    ("rayleigh-symbol", lambda: phy.RayleighFading("symbol"), "rayleigh", 1, MCS_INDEX),
    ("rayleigh-frame", lambda: phy.RayleighFading("frame"), None, 1, MCS_INDEX),
    ("awgn-chase-qpsk", lambda: phy.AWGN(), "awgn", 2, 5),
]


@pytest.mark.parametrize(("name", "make", "curve", "harq", "index"), CASES,
                         ids=[c[0] for c in CASES])
def test_lost_fraction_and_transmissions_match_the_decoded_link(name, make, curve, harq,
                                                                index) -> None:
    """At up to three SNRs of the waterfall, the abstraction's residual BLER and mean transmissions
    agree with the decoded link's within 3 sigma (both binomial estimates, BLOCKS blocks each;
    sigma of a difference of two independent estimates)."""
    mcs = phy.MCS.from_index(index)
    if curve is None:  # block fading: pick SNRs where the outage is a few percent to half
        snrs = [6.0, 10.0, 16.0]
    else:
        snrs = _waterfall_snrs(curve, mcs)
        if harq > 1:  # Chase combining of 2 copies: 3 dB more SNR per block
            snrs = [s - 10 * math.log10(2.0) for s in snrs]
    bits = torch.randint(0, 2, (BLOCKS, 1024),
                         generator=torch.Generator().manual_seed(1)).float()
    decoded = phy.DigitalLink(make(), mcs, max_transmissions=harq)
    abstract = phy.AbstractDigitalLink(make(), mcs, max_transmissions=harq)
    for s in snrs:
        phy.set_seed(5)
        rd = decoded.send_bits(bits, s)
        phy.set_seed(6)
        ra = abstract.send_bits(bits, s)
        pd, pa = rd.bler, ra.bler
        sigma = math.sqrt((pd * (1 - pd) + pa * (1 - pa)) / BLOCKS) + 1.0 / BLOCKS
        assert abs(pd - pa) <= 3 * sigma, (name, s, pd, pa)
        td = rd.transmissions.double()
        ta = ra.transmissions.double()
        sigma_t = math.sqrt((td.var() + ta.var()).item() / BLOCKS) + 1.0 / BLOCKS
        assert abs(td.mean() - ta.mean()).item() <= 3 * sigma_t, (name, s)
        assert torch.equal(ra.channel_uses, ra.transmissions * abstract.channel_uses_per_block())


def test_bits_pass_through_where_the_crc_passes_and_failures_are_flagged() -> None:
    link = phy.AbstractDigitalLink(phy.AWGN(), MCS_INDEX)
    bits = torch.randint(0, 2, (200, 1024)).float()
    phy.set_seed(0)
    good = link.send_bits(bits, 30.0)
    assert bool(good.ok.all()) and torch.equal(good.bits_hat, bits)
    bad = link.send_bits(bits, -20.0)
    assert not bool(bad.ok.any())
    t = torch.randn(4, 512)
    r = link.send_tensor(t, -20.0)
    assert bool(r.lost.all()) and bool((r.t_hat == 0).all())
    r = link.send_tensor(t, 30.0)
    assert not bool(r.lost.any())
    assert torch.equal(r.t_hat, t.to(torch.bfloat16).float())


def test_unsupported_models_are_refused() -> None:
    with pytest.raises(ValueError, match="harq='ir'"):
        phy.AbstractDigitalLink(phy.AWGN(), 5, max_transmissions=2, harq="ir")
    with pytest.raises(ValueError, match="changes gain inside a code block"):
        phy.AbstractDigitalLink(phy.RayleighFading(16), 5)
    with pytest.raises(ValueError, match="no link abstraction"):
        phy.AbstractDigitalLink(phy.OFDMTDL("A"), 5)


@pytest.mark.parametrize("dtype,group", [("bf16", None), ("fp16", None), ("int8", None),
                                         ("int8", 16), ("int4", 8), ("int4", None)])
def test_value_domain_payload_equals_the_bit_string(dtype: str, group: int | None) -> None:
    """payload_values = decode(encode(t)) bit for bit, its length = the bit string's, and
    lost_elements_of_blocks = lost_elements of the per-bit flags of random block outcomes
    (block sizes that cut elements and scales in two)."""
    g = torch.Generator().manual_seed(1)
    t = torch.randn(6, 48, generator=g) * torch.logspace(-3, 2, 48)
    enc = phy.encode_payload(t, dtype, group)
    values, nbits = phy.payload_values(t, dtype, group)
    assert nbits == enc.num_bits
    assert torch.equal(values, phy.decode_payload(enc.bits, enc))
    for k in (16, 20, 100, 1000):
        nblocks = -(-nbits // k)
        failed = torch.rand(nblocks, generator=g) < 0.3
        bit_lost = failed[:, None].expand(nblocks, k).reshape(-1)[:nbits]
        assert torch.equal(phy.lost_elements_of_blocks(failed, k, tuple(t.shape), dtype, group),
                           lost_elements(bit_lost, enc))
    with pytest.raises(ValueError, match="block_bits must be an int >= 16"):
        phy.lost_elements_of_blocks(torch.zeros(1, dtype=torch.bool), 8, (2, 2), dtype, group)


@pytest.mark.parametrize("channel,curve,mcs,bler,harq", [
    (phy.AWGN(), "awgn", 13, 0.5, 1),
    (phy.RayleighFading(coherence="symbol"), "rayleigh", 4, 0.5, 2),
    (phy.RayleighFading(coherence="frame"), "awgn", 10, 0.5, 3)])
@pytest.mark.parametrize("dtype", ["bf16", "int4"])
def test_abstract_send_tensor_equals_the_bit_level_path(channel, curve, mcs, bler, harq,
                                                        dtype) -> None:
    """AbstractDigitalLink.send_tensor (value domain) returns exactly what DigitalLink's
    bit-level send_tensor returns over the abstraction's send_bits, for the same seed: values,
    lost flags, block outcomes, transmissions, channel uses, and the random state after."""
    from phy.digital import DigitalLink

    m = phy.MCS.from_index(mcs)
    link = phy.AbstractDigitalLink(channel, mcs=m, block_bits=512, max_transmissions=harq,
                                   max_batch_blocks=7)
    # in the waterfall after Chase combining, so that blocks both pass and fail
    snr_db = link.bler_table.snr_at_bler(m, bler, curve, block_bits=512) - 10 * math.log10(harq)
    t = torch.randn(40, 64, generator=torch.Generator().manual_seed(2))
    results, after = [], []
    for fn in (link.send_tensor, lambda *a, **kw: DigitalLink.send_tensor(link, *a, **kw)):
        phy.set_seed(5)
        torch.manual_seed(5)
        results.append(fn(t, snr_db, dtype=dtype, fill_value=-1.0))
        after.append(torch.rand(4))
    fast, slow = results
    assert 0 < int((~slow.block_ok).sum()) < slow.block_ok.numel()  # both outcomes occur
    for name in ("t_hat", "lost", "block_ok", "transmissions"):
        assert torch.equal(getattr(fast, name), getattr(slow, name)), name
    assert (fast.channel_uses, fast.payload_bits, fast.info_bits) == \
        (slow.channel_uses, slow.payload_bits, slow.info_bits)
    assert torch.equal(after[0], after[1])


def test_payload_outcomes_equal_the_per_block_draws() -> None:
    """Without block fading send_tensors looks a curve up once per (payload, round): for one
    seed its CRC outcomes and transmissions equal the per-block path's exactly (four links,
    two sharing one link object, Chase HARQ up to 3 transmissions, SNRs in the waterfalls so
    that blocks fail, retransmit and pass)."""
    import numpy as np

    from phy.abstraction import _draw_outcomes_many, _draw_payload_outcomes

    curve = phy.load_bler_table()
    shared = phy.AbstractDigitalLink(phy.AWGN(), phy.MCS.from_index(9), block_bits=512,
                                     max_transmissions=3)
    links = [shared,
             phy.AbstractDigitalLink(phy.RayleighFading("symbol"), phy.MCS.from_index(4),
                                     block_bits=1024, max_transmissions=2),
             shared,
             phy.AbstractDigitalLink(phy.AWGN(), phy.MCS.from_index(17), block_bits=256)]
    snrs = [curve.snr_at_bler(link.mcs, bler, link._curve_channel, block_bits=link.block_bits)
            - shift for link, bler, shift in zip(links, (0.9, 0.5, 0.3, 0.2), (2.5, 1.0, 0, 0),
                                                  strict=True)]
    owner = np.repeat(np.arange(4), [40, 25, 60, 30])
    phy.set_seed(3)
    ok, tx = _draw_payload_outcomes(links, owner, snrs)
    phy.set_seed(3)
    ok_ref, tx_ref = _draw_outcomes_many(links, [link.block_bits for link in links], owner,
                                         np.repeat(np.asarray(snrs), [40, 25, 60, 30]))
    assert np.array_equal(ok, ok_ref) and np.array_equal(tx, tx_ref)
    assert 0 < ok.mean() < 1 and tx.max() == 3
    depth = np.array([link.max_transmissions for link in links])[owner]
    assert np.array_equal(tx[~ok], depth[~ok])  # a lost block used every transmission


def test_send_tensors_draws_every_payload_from_its_own_curve() -> None:
    """phy.send_tensors over links of three MCSs (one with block fading and Chase HARQ):
    each link's residual block-error fraction and mean transmissions agree within 3 sigma
    with the same payloads sent one by one (binomial / sample sigma of the difference of two
    independent estimates); values where the CRC passed are the format's round trip; a seed
    gives the same result twice; a payload without block errors equals send_tensor's."""
    curve = phy.load_bler_table()
    cases = [(phy.AWGN(), 13, 1, 0.3), (phy.RayleighFading("symbol"), 4, 2, 0.5),
             (phy.RayleighFading("frame"), 10, 2, 0.3)]
    links, snrs = [], []
    for channel, index, harq, bler in cases:
        m = phy.MCS.from_index(index)
        link = phy.AbstractDigitalLink(channel, m, block_bits=512, max_transmissions=harq)
        name = "rayleigh" if getattr(channel, "coherence", None) == "symbol" else "awgn"
        snr = curve.snr_at_bler(m, bler, name, block_bits=512)
        if isinstance(channel, phy.RayleighFading) and channel.coherence == "frame":
            snr += 3.0  # block fading: an outage of a few tens of percent
        links.append(link)
        snrs.append(snr - 10 * math.log10(harq))
    g = torch.Generator().manual_seed(4)
    ts = [torch.randn(60, 64, generator=g) for _ in links]  # 60 x 64 bf16 = 120 blocks each
    reps = 8
    stats: dict[str, list[list[float]]] = {"many": [[], [], []], "one": [[], [], []]}
    tx: dict[str, list[list[float]]] = {"many": [[], [], []], "one": [[], [], []]}
    for rep in range(reps):
        phy.set_seed(100 + rep)
        torch.manual_seed(100 + rep)
        many = phy.send_tensors(links, ts, snrs, "bf16")
        one = [link.send_tensor(t, s, dtype="bf16") for link, t, s in
               zip(links, ts, snrs, strict=True)]
        for key, res in (("many", many), ("one", one)):
            for i, r in enumerate(res):
                stats[key][i] += (~r.block_ok).float().tolist()
                tx[key][i] += r.transmissions.float().tolist()
    for i in range(len(links)):
        a, b = torch.tensor(stats["many"][i]), torch.tensor(stats["one"][i])
        p = float(torch.cat([a, b]).mean())
        assert 0.0 < p < 1.0, "the case must have both outcomes"
        sigma = math.sqrt(p * (1 - p) * (1 / a.numel() + 1 / b.numel()))
        assert abs(float(a.mean()) - float(b.mean())) <= 3 * sigma, (i, a.mean(), b.mean())
        ta, tb = torch.tensor(tx["many"][i]), torch.tensor(tx["one"][i])
        st = math.sqrt(float(ta.var()) / ta.numel() + float(tb.var()) / tb.numel())
        assert abs(float(ta.mean()) - float(tb.mean())) <= 3 * max(st, 1e-9), i
    # the values where no block was lost are the bf16 round trip; seeds repeat
    phy.set_seed(7)
    torch.manual_seed(7)
    first = phy.send_tensors(links, ts, snrs, "bf16", fill_value=-1.0)
    phy.set_seed(7)
    torch.manual_seed(7)
    again = phy.send_tensors(links, ts, snrs, "bf16", fill_value=-1.0)
    for t, r, r2 in zip(ts, first, again, strict=True):
        keep = ~r.lost
        assert torch.equal(r.t_hat[keep], t.to(torch.bfloat16).float()[keep])
        assert bool((r.t_hat[r.lost] == -1.0).all())
        assert torch.equal(r.t_hat, r2.t_hat) and torch.equal(r.block_ok, r2.block_ok)
    clean = phy.AbstractDigitalLink(phy.AWGN(), phy.MCS.from_index(2), block_bits=512)
    (r,) = phy.send_tensors([clean], [ts[0]], [20.0], "int8")
    ref = clean.send_tensor(ts[0], 20.0, dtype="int8")
    assert bool(r.block_ok.all()) and torch.equal(r.t_hat, ref.t_hat)
    assert r.channel_uses == ref.channel_uses
    with pytest.raises(ValueError, match="one entry per payload"):
        phy.send_tensors(links, ts[:2], snrs)
    with pytest.raises(ValueError, match="AbstractDigitalLink"):
        phy.send_tensors([phy.DigitalLink(phy.AWGN(), 2)], ts[:1], [5.0])


@pytest.mark.parametrize("dtype,group,shapes", [
    ("bf16", None, [(3, 8), (1, 8), (5, 8)]),
    ("int8", None, [(3, 8), (1, 8), (5, 8)]),        # one vector per row: stacked
    ("int4", 4, [(2, 8), (3, 8)]),                   # vectors inside rows: stacked
    ("int8", 6, [(3, 4), (3, 4)]),                   # vectors across rows: one by one
    ("fp16", None, [(2, 3, 4), (1, 3, 4)]),
    ("bf16", None, [(2, 8), (2, 4)]),                # different rows: one by one
])
def test_send_tensors_values_equal_send_tensor(dtype: str, group: int | None,
                                               shapes: list[tuple[int, ...]]) -> None:
    """send_tensors computes the payloads' round trips in one call where stacking them
    changes nothing; without block errors (a high SNR) every result equals send_tensor's,
    bit for bit, payload bits included."""
    g = torch.Generator().manual_seed(3)
    ts = [torch.randn(*s, generator=g) * 3 for s in shapes]
    links = [phy.AbstractDigitalLink(phy.AWGN(), phy.MCS.from_index(i), block_bits=256)
             for i in (2, 5, 9)][:len(ts)]
    many = phy.send_tensors(links, ts, [40.0] * len(ts), dtype, group_size=group)
    for link, t, r in zip(links, ts, many, strict=True):
        one = link.send_tensor(t, 40.0, dtype=dtype, group_size=group)
        assert torch.equal(r.t_hat, one.t_hat) and not bool(r.lost.any())
        assert (r.payload_bits, r.num_blocks) == (one.payload_bits, one.num_blocks)
        assert (r.channel_uses, r.info_bits) == (one.channel_uses, one.info_bits)
        assert torch.equal(r.transmissions, one.transmissions)
        assert torch.equal(r.block_ok, one.block_ok) and r.lost.shape == t.shape


def test_send_tensors_flags_non_finite_values_of_stacked_payloads() -> None:
    """Stacked payloads with every block delivered but a float32 value that bf16 rounds to
    inf: that element is lost and holds fill_value, as send_tensor does."""
    ts = [torch.ones(2, 8), torch.ones(3, 8)]
    ts[1][2, 5] = 3.4e38
    link = phy.AbstractDigitalLink(phy.AWGN(), phy.MCS.from_index(5), block_bits=256)
    first, second = phy.send_tensors([link, link], ts, [40.0, 40.0], "bf16", fill_value=-1.0)
    assert not bool(first.lost.any()) and bool(second.block_ok.all())
    assert second.lost.sum() == 1 and bool(second.lost[2, 5])
    assert second.t_hat[2, 5] == -1.0


def test_remembered_lookups_equal_the_curve() -> None:
    """Blocks at one SNR take a remembered lookup: interleaved SNRs and block sizes, asked
    twice, give exactly the table's values (and mixed SNRs the element-wise lookup)."""
    table = phy.load_bler_table()
    m = phy.MCS.from_index(9)
    link = phy.AbstractDigitalLink(phy.AWGN(), m, block_bits=1024, bler_table=table)
    for _ in range(2):
        for k in (256, 1024, 3000):
            for s in (-2.0, 3.0, 3.25, 4.0):
                got = link._bler(torch.full((4,), s, dtype=torch.float64), k)
                want = table.bler_at(m, s, "awgn", block_bits=k)
                assert got.tolist() == [want] * 4
    mixed = torch.tensor([3.0, 3.25, 4.0], dtype=torch.float64)
    assert link._bler(mixed, 1024).tolist() == [table.bler_at(m, float(s), "awgn", 1024)
                                                for s in mixed]
