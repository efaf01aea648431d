"""Transports of hidden-state payloads: exactness, quantization error, losses, analog noise,
expected airtime and spec parsing."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import phy
from wdmoe_link.transports import (
    AnalogTransport,
    DigitalTransport,
    IdealTransport,
    Transport,
    parse_transport,
    register_denoiser,
)

B = 12.5e6  # Hz: an equal share of 100 MHz among 8 devices


def _rows(n: int = 4, d: int = 64, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g) * torch.logspace(-2, 1, n)[:, None]


# --------------------------------------------------------------------------------------------
# ideal


def test_ideal_is_identity_with_shannon_airtime() -> None:
    x = _rows()
    t = IdealTransport()
    for snr in (-3.0, 0.0, 17.5, 40.0):
        d = t.send(x, snr, B)
        assert torch.equal(d.x_hat, x) and bool(d.ok.all())
        bits = x.numel() * 16
        expected = bits / (B * math.log2(1.0 + 10 ** (snr / 10)))
        assert d.airtime_s == pytest.approx(expected, rel=1e-12)
        assert t.expected_airtime_s(*x.shape, snr, B) == pytest.approx(expected, rel=1e-12)
        assert d.bits == bits and d.transmissions == 1
        assert d.channel_uses == math.ceil(expected * B - 1e-9)
    assert IdealTransport(8).send(x, 10.0, B).airtime_s == pytest.approx(
        t.send(x, 10.0, B).airtime_s / 2)


# --------------------------------------------------------------------------------------------
# digital


def test_digital_high_snr_is_exact_up_to_the_payload_format() -> None:
    x = _rows()
    # bf16 / fp16: the received values are exactly the rounded inputs
    for dtype, tdt in (("bf16", torch.bfloat16), ("fp16", torch.float16)):
        d = DigitalTransport(dtype).send(x, 30.0, B)
        assert bool(d.ok.all())
        assert torch.equal(d.x_hat, x.to(tdt).float())
    # int8 / int4: error within half a quantization step (scale rounded up to bf16)
    for dtype, qmax in (("int8", 127), ("int4", 7)):
        d = DigitalTransport(dtype).send(x, 30.0, B)
        assert bool(d.ok.all())
        step = x.abs().amax(dim=1, keepdim=True) / qmax * (1 + 2**-7)
        assert bool(((d.x_hat - x).abs() <= step / 2 + 1e-7).all())
        assert float((d.x_hat - x).abs().max()) > 0  # really quantized


def test_digital_accounting_matches_the_link() -> None:
    x = _rows(3, 64)
    t = DigitalTransport("bf16")
    d = t.send(x, 30.0, B)
    plan = t.plan(30.0)
    blocks = math.ceil(x.numel() * 16 / 1024)
    assert d.info["mcs_index"] == plan.mcs.index == 28 and d.info["blocks"] == blocks
    assert d.transmissions == blocks  # no retransmission at 30 dB
    assert d.channel_uses == blocks * plan.channel_uses_per_block
    assert d.airtime_s == pytest.approx(d.channel_uses / B, rel=1e-12)
    assert d.bits == blocks * 1024
    assert t.expected_airtime_s(*x.shape, 30.0, B) == pytest.approx(d.airtime_s, rel=1e-9)
    # int8 payload: 8 bits per element plus one bf16 scale per row
    t8 = DigitalTransport("int8")
    assert t8.payload_bits(3, 64) == 3 * (8 * 64 + 16)
    d8 = t8.send(x, 30.0, B)
    assert d8.info["payload_bits"] == t8.payload_bits(3, 64)
    assert t8.expected_airtime_s(3, 64, 30.0, B) == pytest.approx(d8.airtime_s, rel=1e-9)


def test_digital_low_snr_loses_rows_and_returns_only_finite_zeros() -> None:
    x = _rows(2, 64)
    t = DigitalTransport("bf16", max_transmissions=2)
    d = t.send(x, -15.0, B)
    assert d.num_lost == 2 and not bool(d.ok.any())
    assert bool(torch.isfinite(d.x_hat).all()) and bool((d.x_hat == 0).all())
    assert d.info["meets_target"] is False and d.info["mcs_index"] == 0  # most robust MCS
    assert d.transmissions == 2 * d.info["blocks"]  # every HARQ transmission spent
    assert d.airtime_s == pytest.approx(d.transmissions * t.plan(-15.0).channel_uses_per_block
                                        / B)


def test_expected_airtime_follows_bler_table_and_grid_matches_select_mcs() -> None:
    t = DigitalTransport("bf16")
    n, d = 5, 64
    # at a mid SNR the chosen MCS retransmits sometimes: E[T] = 1 + sum_t BLER(snr + 10 log t)
    plan = t.plan(5.37)
    tx = 1 + sum(phy.bler_at(plan.mcs, 5.37 + 10 * math.log10(i), block_bits=1024)
                 for i in range(1, 4))
    assert plan.expected_transmissions == pytest.approx(tx) and tx > 1
    assert plan.mcs == phy.select_mcs(5.37, 0.1, block_bits=1024)
    # the vectorized path (SNR grid) agrees with select_mcs at grid SNRs
    snrs = np.round(np.random.default_rng(0).uniform(-12, 35, 25), 2)
    fast = t.airtime_s_tensor(torch.full((25,), float(n), dtype=torch.float64), d,
                              torch.tensor(snrs, dtype=torch.float64),
                              torch.full((25,), B, dtype=torch.float64))
    slow = [t.expected_airtime_s(n, d, float(s), B) for s in snrs]
    assert fast.tolist() == pytest.approx(slow, rel=1e-9)
    assert [t.meets_target(float(s)) for s in snrs] == [t.plan(float(s)).meets_target
                                                         for s in snrs]
    # a faster link never takes longer; no bandwidth takes forever; nothing takes nothing
    assert t.expected_airtime_s(n, d, 20.0, B) <= t.expected_airtime_s(n, d, 5.0, B)
    zero = t.airtime_s_tensor(torch.tensor([0.0, 1.0]), d, torch.tensor([10.0, 10.0]),
                              torch.tensor([0.0, 0.0]))
    assert zero[0] == 0 and math.isinf(float(zero[1]))


@pytest.mark.parametrize("spec", ["ideal", "digital:bf16", "digital:int8", "digital:int4",
                                  "analog"])
def test_expected_airtime_takes_the_payload_shape(spec: str) -> None:
    """Expected airtime of ``[rows, row_size]`` equals the airtime ``send`` spends on such a
    payload (odd ``D``: per-row scales and analog packing), and bad shapes are refused."""
    t = parse_transport(spec)
    for n, d in ((1, 33), (3, 64), (5, 7)):
        x = _rows(n, d)
        sent = t.send(x, 30.0, B)
        assert t.expected_airtime_s(n, d, 30.0, B) == pytest.approx(sent.airtime_s, rel=1e-9)
        fast = t.airtime_s_tensor(torch.tensor([float(n), 0.0], dtype=torch.float64), d,
                                  torch.tensor(30.0, dtype=torch.float64),
                                  torch.tensor(B, dtype=torch.float64))
        assert fast.tolist() == pytest.approx([sent.airtime_s, 0.0], rel=1e-9)
    assert t.expected_airtime_s(0, 64, 10.0, B) == 0.0
    assert math.isinf(t.expected_airtime_s(2, 64, 10.0, 0.0))
    for rows in (-1, 1.5, True, "2"):
        with pytest.raises(ValueError, match=r"rows must be an int >= 0"):
            t.expected_airtime_s(rows, 64, 10.0, B)
    for row_size in (0, 2.0, True, None):
        with pytest.raises((TypeError, ValueError), match=r"row_size must be an int"):
            t.expected_airtime_s(2, row_size, 10.0, B)
        with pytest.raises((TypeError, ValueError), match=r"row_size must be an int"):
            t.airtime_s_tensor(torch.tensor([2.0]), row_size, torch.tensor([10.0]),
                               torch.tensor([B]))
    with pytest.raises(ValueError, match="bandwidth_hz must be finite and >= 0 Hz"):
        t.expected_airtime_s(2, 64, 10.0, -1.0)
    assert not hasattr(t, "with_row_size") and not hasattr(t, "row_size")


# --------------------------------------------------------------------------------------------
# analog


def test_analog_error_variance_matches_mmse_noise() -> None:
    n, d, snr = 2000, 64, 10.0
    x = torch.randn(n, d)
    t = AnalogTransport()
    dl = t.send(x, snr, B)
    assert bool(dl.ok.all()) and dl.bits == 0
    mse = float((dl.x_hat - x).square().mean())
    no = 10 ** (-snr / 10)
    # biased MMSE on AWGN: error per element = row power * N0 / (1 + N0); 128k samples -> 2 %
    assert mse == pytest.approx(float(x.square().mean()) * no / (1 + no), rel=0.02)
    assert mse == pytest.approx(float(dl.noise_var.mean()), rel=0.02)
    assert dl.channel_uses == n * d // 2
    assert dl.airtime_s == pytest.approx(n * d / 2 / B)
    assert t.expected_airtime_s(n, d, snr, B) == pytest.approx(dl.airtime_s)


def test_analog_denoiser_hook_and_nan_guard() -> None:
    x = _rows(3, 64)
    calls = []

    def denoise(x_hat: torch.Tensor, snr_db: float) -> torch.Tensor:
        calls.append(snr_db)
        out = x_hat * 0.5
        out[1, 0] = float("nan")
        return out

    d = AnalogTransport(denoiser=denoise, denoiser_name="half").send(x, 20.0, B)
    assert calls == [20.0]
    assert d.ok.tolist() == [True, False, True]
    assert bool(torch.isfinite(d.x_hat).all()) and bool((d.x_hat[1] == 0).all())


# --------------------------------------------------------------------------------------------
# parsing and checks


def test_parse_transport_specs_and_round_trip() -> None:
    assert isinstance(parse_transport("ideal"), IdealTransport)
    assert parse_transport("ideal:8").bits_per_element == 8
    t = parse_transport("digital:int8:target_bler=0.01:max_transmissions=2")
    assert isinstance(t, DigitalTransport)
    assert (t.dtype, t.target_bler, t.max_transmissions) == ("int8", 0.01, 2)
    assert parse_transport("digital").dtype == "bf16"
    assert isinstance(parse_transport("analog"), AnalogTransport)
    # CRC outcomes from the BLER table by default, full decoding on request
    assert isinstance(parse_transport("digital").link(phy.MCS.from_index(5)),
                      phy.AbstractDigitalLink)
    decoded = parse_transport("digital:bf16:decoded:max_transmissions=2")
    assert decoded.decoded and decoded.max_transmissions == 2
    assert type(decoded.link(phy.MCS.from_index(5))) is phy.DigitalLink
    for spec in ("ideal", "digital:fp16", "digital:int4:target_bler=0.01", "analog",
                 "digital:bf16:decoded"):
        assert parse_transport(spec).name == spec
        assert parse_transport(parse_transport(spec).name).name == spec
    same = IdealTransport()
    assert parse_transport(same) is same


def test_parse_transport_errors() -> None:
    with pytest.raises(ValueError, match="unknown transport 'qam'"):
        parse_transport("qam")
    with pytest.raises(ValueError, match="unknown digital payload format 'int3'"):
        parse_transport("digital:int3")
    with pytest.raises(ValueError, match="needs a denoiser 'nosuch'"):
        parse_transport("analog+nosuch")
    with pytest.raises(ValueError, match="target_bler"):
        parse_transport("digital:bf16:target_bler=2")
    with pytest.raises(ValueError, match=r"bad arguments.*colour"):
        parse_transport("digital:bf16:colour=red")
    with pytest.raises(ValueError, match="non-empty"):
        parse_transport("")


def test_registered_denoiser_is_used_by_analog_plus() -> None:
    register_denoiser("scale-test", lambda factor=1.0: (lambda x, s: x * factor),
                      overwrite=True)
    t = parse_transport("analog+scale-test:factor=0.0")
    assert t.name == "analog+scale-test"
    d = t.send(_rows(2, 8), 10.0, B)
    assert bool((d.x_hat == 0).all())
    own = parse_transport("analog+cddm", denoiser=lambda x, s: x)
    assert own.name == "analog+cddm"


@pytest.mark.parametrize("spec", ["ideal", "digital:bf16", "analog"])
def test_send_checks_input(spec: str) -> None:
    t: Transport = parse_transport(spec)
    x = _rows(2, 8)
    with pytest.raises(ValueError, match="bandwidth_hz"):
        t.send(x, 10.0, 0.0)
    bad = x.clone()
    bad[0, 0] = float("inf")
    with pytest.raises(ValueError, match="NaN/Inf"):
        t.send(bad, 10.0, B)
    with pytest.raises(ValueError, match=r"shape \[n, D\]"):
        t.send(x[0], 10.0, B)
    empty = t.send(x[:0], 10.0, B)
    assert empty.x_hat.shape == (0, 8) and empty.airtime_s == 0 and empty.channel_uses == 0


def test_send_can_skip_the_finite_scan_for_guarded_payloads() -> None:
    """``check_finite=False`` gives the same delivery on finite rows; by default a NaN is
    refused by name."""
    torch.manual_seed(0)
    x = torch.randn(4, 16)
    t = IdealTransport()
    a, b = t.send(x, 10.0, 1e6), t.send(x, 10.0, 1e6, check_finite=False)
    assert torch.equal(a.x_hat, b.x_hat) and a.airtime_s == b.airtime_s
    x[1, 3] = float("nan")
    with pytest.raises(ValueError, match="NaN/Inf"):
        t.send(x, 10.0, 1e6)


@pytest.mark.parametrize("spec", ["ideal", "ideal:8", "digital:bf16", "digital:int4", "analog",
                                  "digital:bf16:decoded"])
@pytest.mark.parametrize("shapes", [((3, 64), (1, 64), (7, 64), (5, 64), (2, 64)),
                                    ((3, 64), (1, 64), (0, 64), (5, 64), (2, 48))])
def test_send_many_equals_one_send_after_another(spec: str, shapes: tuple) -> None:
    """send_many gives what send gives payload by payload; one width, and empty payloads and
    mixed widths. Transports that send one by one make the same random draws (the state after
    equals the state after the loop); the abstracted digital transport draws all block
    outcomes at once (statistics in test_abstraction.py), so there every payload without a
    block error is identical, and a seed gives the same deliveries twice."""
    g = torch.Generator().manual_seed(3)
    xs = [torch.randn(n, d, generator=g) for n, d in shapes]
    snrs, bws = [2.0, 9.0, 5.0, 14.0, 20.0], [1e6, 2e6, 5e5, 1e5, 3e6]
    if spec.endswith("decoded"):
        xs = [x[:, :16] for x in xs]  # a few blocks: decoding is slow
    batched = spec.startswith("digital") and not spec.endswith("decoded")
    runs = []
    for many in (False, True, True):
        t = parse_transport(spec)
        phy.set_seed(11)
        torch.manual_seed(11)
        out = t.send_many(xs, snrs, bws) if many else [t.send(x, s, b) for x, s, b in
                                                        zip(xs, snrs, bws, strict=True)]
        runs.append((out, torch.rand(3)))
    (loop, after_loop), (many, after_many), (again, _) = runs
    if not batched:
        assert torch.equal(after_loop, after_many)
    for a, b, c in zip(loop, many, again, strict=True):
        assert torch.equal(b.x_hat, c.x_hat) and torch.equal(b.ok, c.ok)
        assert b.airtime_s == c.airtime_s and b.transmissions == c.transmissions
        if batched and (a.info.get("block_errors", 0) or b.info.get("block_errors", 0)):
            continue
        assert torch.equal(a.x_hat, b.x_hat) and torch.equal(a.ok, b.ok)
        assert (a.airtime_s, a.bits, a.channel_uses, a.transmissions) == \
            (b.airtime_s, b.bits, b.channel_uses, b.transmissions)
        assert a.info == b.info
    with pytest.raises(ValueError, match="equal lengths"):
        parse_transport(spec).send_many(xs, snrs[:2], bws)
    with pytest.raises(ValueError, match="NaN/Inf"):
        parse_transport(spec).send_many([xs[0], torch.full((1, 64), math.nan)], snrs[:2],
                                        bws[:2])
