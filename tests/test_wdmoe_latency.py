"""WDMoE system model: topology, channel, Shannon airtime, compute, layer latency, bandwidth.

Every test is seeded and runs on CPU in well under a second (the property tests in a few).
Tolerances are stated next to each assertion.
"""

from __future__ import annotations

import math

import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wdmoe_link.latency import (
    DeviceCost,
    ShannonAirtime,
    equal_split,
    optimal_bandwidth,
    shannon_rate_bps,
)
from wdmoe_link.topology import (
    Device,
    Topology,
    default_topology,
    homogeneous_topology,
    macro_path_loss_db,
)

D_MIXTRAL = 4096
F_MIXTRAL = 14336
FLOPS_MIXTRAL = 2 * 3 * D_MIXTRAL * F_MIXTRAL          # 352.3 MFLOP per (token, expert)
WEIGHT_BYTES_MIXTRAL = 3 * D_MIXTRAL * F_MIXTRAL * 2   # one bf16 expert, 352.3 MB
F64 = torch.float64


def mixtral_cost(topo: Topology, gain: torch.Tensor | None = None,
                 airtime: object | None = None) -> DeviceCost:
    return DeviceCost(topo, topo.path_gain() if gain is None else gain,
                      ShannonAirtime(16) if airtime is None else airtime,
                      hidden_size=D_MIXTRAL, flops_per_token=FLOPS_MIXTRAL,
                      weight_bytes=WEIGHT_BYTES_MIXTRAL)


def worked_example_topology(compute_model: str = "flops") -> Topology:
    """Three devices at 100/200/300 m with a 12.5 MHz share each (37.5 MHz in total)."""
    devs = [Device(distance_m=d, compute_flops=5.3e12) for d in (100.0, 200.0, 300.0)]
    return Topology(devices=devs, bandwidth_hz=37.5e6, fading="none",
                    compute_model=compute_model)


# --------------------------------------------------------------------------------------------
# rates and the worked example


def test_shannon_rate_is_beta_b_log2_one_plus_snr() -> None:
    g = torch.Generator().manual_seed(0)
    beta = torch.rand(64, generator=g, dtype=F64)
    snr_db = -10.0 + 60.0 * torch.rand(64, generator=g, dtype=F64)
    b_hz = 100e6
    rate = shannon_rate_bps(beta * b_hz, snr_db)
    expected = beta * b_hz * torch.log2(1.0 + 10.0 ** (snr_db / 10.0))
    torch.testing.assert_close(rate, expected, rtol=1e-12, atol=0.0)
    assert float(shannon_rate_bps(0.0, 30.0)) == 0.0


def test_device_airtime_uses_the_rate_of_its_share() -> None:
    """airtime = S / (beta B log2(1 + P g / (beta B N0))) with S = 65,536 bit (rtol 1e-12)."""
    topo = default_topology(8, seed=3, fading="none")
    cost = mixtral_cost(topo)
    beta = torch.tensor([0.05, 0.1, 0.2, 0.05, 0.1, 0.2, 0.15, 0.15], dtype=F64)
    ones = torch.ones(8, dtype=F64)
    for direction, p_dbm in (("dl", torch.full((8,), 40.0, dtype=F64)),
                             ("ul", torch.full((8,), 23.0, dtype=F64))):
        noise_dbm = -174.0 + 10.0 * torch.log10(beta * 100e6)
        snr_lin = 10.0 ** ((p_dbm - noise_dbm) / 10.0) * topo.path_gain()
        rate = beta * 100e6 * torch.log2(1.0 + snr_lin)
        torch.testing.assert_close(cost.airtime_s(direction, ones, beta), 65536.0 / rate,
                                   rtol=1e-12, atol=0.0)


def test_noise_scales_with_the_share() -> None:
    """Halving the share raises the SNR by 10 log10(2) dB (abs 1e-12 dB)."""
    topo = default_topology(4, seed=1)
    gain = topo.path_gain()
    s1 = topo.snr_db("ul", torch.full((4,), 0.25, dtype=F64), gain)
    s2 = topo.snr_db("ul", torch.full((4,), 0.125, dtype=F64), gain)
    torch.testing.assert_close(s2 - s1, torch.full((4,), 10 * math.log10(2), dtype=F64),
                               rtol=0.0, atol=1e-12)


def test_worked_example_of_the_reference_note() -> None:
    """Section 2.2: 12.5 MHz share, 40/23 dBm, -174 dBm/Hz, 65,536-bit payloads, no fading.

    Times and rates within 1 % of the table; SNRs within 0.05 dB.
    """
    topo = worked_example_topology()
    cost = mixtral_cost(topo)
    beta = equal_split(3)
    ones = torch.ones(3, dtype=F64)
    table = {  # distance: (UL SNR dB, UL Mbit/s, UL ms, DL SNR dB, DL Mbit/s, DL ms)
        100.0: (35.5, 147.5, 0.44, 52.5, 218.0, 0.30),
        200.0: (24.2, 100.6, 0.65, 41.2, 171.0, 0.38),
        300.0: (17.6, 73.4, 0.89, 34.6, 144.0, 0.46),
    }
    snr = {d: cost.snr_db(d, beta) for d in ("dl", "ul")}
    t = {d: cost.airtime_s(d, ones, beta) * 1e3 for d in ("dl", "ul")}
    for k, (ul_snr, ul_rate, ul_ms, dl_snr, dl_rate, dl_ms) in enumerate(table.values()):
        assert float(snr["ul"][k]) == pytest.approx(ul_snr, abs=0.05)
        assert float(snr["dl"][k]) == pytest.approx(dl_snr, abs=0.05)
        assert float(shannon_rate_bps(12.5e6, snr["ul"][k])) / 1e6 == pytest.approx(ul_rate,
                                                                                   rel=0.01)
        assert float(shannon_rate_bps(12.5e6, snr["dl"][k])) / 1e6 == pytest.approx(dl_rate,
                                                                                   rel=0.01)
        assert float(t["ul"][k]) == pytest.approx(ul_ms, rel=0.01)
        assert float(t["dl"][k]) == pytest.approx(dl_ms, rel=0.01)


def test_path_loss_models() -> None:
    assert float(macro_path_loss_db(torch.tensor(1000.0))) == pytest.approx(128.1, abs=1e-9)
    assert float(macro_path_loss_db(torch.tensor(100.0))) == pytest.approx(90.5, abs=1e-9)
    dev = [Device(distance_m=1.0, compute_flops=1e12), Device(distance_m=10.0, compute_flops=1e12)]
    fs = Topology(devices=dev, path_loss="free-space", carrier_frequency_hz=3.5e9)
    pl = fs.path_loss_db()
    # 20 log10(4 pi f / c) at 1 m and 3.5 GHz = 43.32 dB; +20 dB per decade
    assert float(pl[0]) == pytest.approx(43.32, abs=0.01)
    assert float(pl[1] - pl[0]) == pytest.approx(20.0, abs=1e-9)
    torch.testing.assert_close(fs.path_gain(), 10.0 ** (-pl / 10.0), rtol=1e-12, atol=0.0)


# --------------------------------------------------------------------------------------------
# fading and topologies


def test_rayleigh_block_fading_is_seeded_unit_mean_exponential() -> None:
    topo = default_topology(8, seed=0)
    a = topo.draw_fading(torch.Generator().manual_seed(5))
    b = topo.draw_fading(torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    gen = torch.Generator().manual_seed(6)
    draws = torch.stack([topo.draw_fading(gen) for _ in range(2000)])   # 16,000 samples
    assert float(draws.mean()) == pytest.approx(1.0, abs=0.03)          # std of mean 0.008
    assert float((draws > 1.0).to(F64).mean()) == pytest.approx(math.exp(-1.0), abs=0.02)
    assert bool((draws > 0).all())
    flat = Topology(devices=topo.devices, fading="none")
    assert torch.equal(flat.draw_fading(torch.Generator()), torch.ones(8, dtype=F64))
    torch.testing.assert_close(topo.channel_gain(torch.Generator().manual_seed(5)),
                               topo.path_gain() * a, rtol=1e-15, atol=0.0)


def test_default_topology_is_heterogeneous_and_seeded() -> None:
    t0 = default_topology(8, seed=0)
    assert t0.num_devices == 8
    assert bool((t0.distance_m >= 50).all() and (t0.distance_m <= 300).all())
    assert bool((t0.compute_flops >= 1e12).all() and (t0.compute_flops <= 10e12).all())
    assert float(t0.compute_flops.max() / t0.compute_flops.min()) >= 2.0
    assert t0 == default_topology(8, seed=0)
    assert t0 != default_topology(8, seed=1)
    assert (t0.bandwidth_hz, t0.bs_power_dbm, t0.noise_psd_dbm_hz) == (100e6, 40.0, -174.0)
    h = homogeneous_topology(4, distance_m=120.0)
    assert len({d for d in h.devices}) == 1 and h.devices[0].distance_m == 120.0


def test_topology_dict_and_yaml_round_trip() -> None:
    topo = default_topology(5, seed=2, compute_model="roofline", bs_time_s=1e-4)
    d = topo.to_dict()
    assert Topology.from_dict(d) == topo
    assert Topology.from_dict(yaml.safe_load(yaml.safe_dump(d))) == topo
    cfg = yaml.safe_load(
        "bandwidth_hz: 20e6\n"            # YAML 1.1 reads this as a string
        "bs_power_w: 10\n"
        "fading: none\n"
        "devices: {layout: heterogeneous, num_devices: 4, seed: 7}\n"
    )
    t = Topology.from_dict(cfg)
    assert t.bandwidth_hz == 20e6 and t.bs_power_dbm == pytest.approx(40.0, abs=1e-12)
    assert t.devices == default_topology(4, seed=7).devices
    t2 = Topology.from_dict({"devices": [{"distance_m": 80, "compute_flops": "2e12",
                                          "tx_power_w": 0.2}]})
    assert t2.devices[0].tx_power_dbm == pytest.approx(23.0103, abs=1e-4)
    hom = Topology.from_dict({"devices": {"layout": "homogeneous", "num_devices": 3}})
    assert hom.num_devices == 3


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"bandwidth_hz": 0.0}, ["bandwidth_hz", "> 0", "0.0"]),
        ({"bandwidth_hz": -5e6}, ["bandwidth_hz", "> 0", "-5000000.0"]),
        ({"bs_power_dbm": -math.inf}, ["bs_power_dbm", "> 0 W"]),
        ({"noise_figure_db": -1.0}, ["noise_figure_db", ">= 0"]),
        ({"path_loss": "urban"}, ["path_loss", "3gpp-macro", "urban"]),
        ({"fading": "rician"}, ["fading", "rayleigh-block", "rician"]),
        ({"compute_model": "gpu"}, ["compute_model", "roofline", "gpu"]),
        ({"bs_time_s": -1.0}, ["bs_time_s", ">= 0"]),
    ],
)
def test_topology_rejects_bad_constants(kwargs: dict, words: list[str]) -> None:
    dev = [Device(distance_m=100.0, compute_flops=1e12)]
    with pytest.raises(ValueError) as err:
        Topology(devices=dev, **kwargs)
    for w in words:
        assert w in str(err.value)


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"distance_m": 0.0, "compute_flops": 1e12}, ["distance_m", "> 0", "0.0"]),
        ({"distance_m": -3.0, "compute_flops": 1e12}, ["distance_m", "-3.0"]),
        ({"distance_m": 10.0, "compute_flops": 0}, ["compute_flops", "> 0"]),
        ({"distance_m": 10.0, "compute_flops": 1e12, "memory_bandwidth_bytes_s": -1.0},
         ["memory_bandwidth_bytes_s", "> 0"]),
        ({"distance_m": math.nan, "compute_flops": 1e12}, ["distance_m", "finite"]),
    ],
)
def test_device_rejects_bad_constants(kwargs: dict, words: list[str]) -> None:
    with pytest.raises(ValueError) as err:
        Device(**kwargs)
    for w in words:
        assert w in str(err.value)


def test_powers_in_watts_must_be_positive() -> None:
    dev = {"distance_m": 10.0, "compute_flops": 1e12}
    with pytest.raises(ValueError, match=r"bs_power_w must be finite and > 0 W, got 0"):
        Topology.from_dict({"devices": [dev], "bs_power_w": 0})
    with pytest.raises(ValueError, match=r"tx_power_w must be finite and > 0 W, got -0.1"):
        Device.from_dict({**dev, "tx_power_w": -0.1})
    with pytest.raises(ValueError, match="unknown topology field"):
        Topology.from_dict({"devices": [dev], "bandwidth_mhz": 20})
    with pytest.raises(ValueError, match="devices must hold at least one"):
        Topology(devices=[])
    with pytest.raises(ValueError, match="num_devices must be an int >= 1"):
        default_topology(0)


# --------------------------------------------------------------------------------------------
# compute and layer latency


def test_compute_models_flops_and_roofline() -> None:
    """Section 2.2: 352 MFLOP / 5.3 TFLOP/s = 0.066 ms; 352 MB / 204.8 GB/s = 1.72 ms (1 %)."""
    flops = mixtral_cost(worked_example_topology("flops"))
    roof = mixtral_cost(worked_example_topology("roofline"))
    one = torch.tensor([1.0, 0.0, 0.0], dtype=F64)
    assert float(flops.compute_time_s(one)[0]) * 1e3 == pytest.approx(0.066, rel=0.01)
    assert float(roof.compute_time_s(one)[0]) * 1e3 == pytest.approx(1.72, rel=0.01)
    assert float(roof.compute_time_s(one)[1]) == 0.0
    # weights are streamed once per layer call, not once per token
    many = torch.tensor([20.0, 0.0, 0.0], dtype=F64)
    assert float(roof.compute_time_s(many)[0]) == pytest.approx(
        float(roof.compute_time_s(one)[0]), rel=1e-12)
    # until the FLOP time takes over (ridge at W f / (M C) = 26 tokens)
    big = torch.tensor([100.0, 0.0, 0.0], dtype=F64)
    assert float(roof.compute_time_s(big)[0]) == pytest.approx(100 * FLOPS_MIXTRAL / 5.3e12,
                                                               rel=1e-12)
    # two experts used on one device stream two sets of weights
    two = roof.compute_time_s(one, active_experts=torch.tensor([2.0, 0.0, 0.0]))
    assert float(two[0]) == pytest.approx(2 * float(roof.compute_time_s(one)[0]), rel=1e-12)


def test_layer_latency_is_bs_time_plus_max_over_loaded_devices() -> None:
    topo = Topology(devices=default_topology(6, seed=4).devices, fading="none", bs_time_s=2e-4)
    cost = mixtral_cost(topo)
    beta = equal_split(6)
    loads = torch.tensor([1.0, 0.0, 2.0, 0.0, 1.0, 0.0], dtype=F64)
    per = cost.device_latency_s(loads, beta)
    by_hand = (cost.airtime_s("dl", loads, beta) + loads * FLOPS_MIXTRAL / topo.compute_flops
               + cost.airtime_s("ul", loads, beta))
    torch.testing.assert_close(per, by_hand, rtol=1e-12, atol=0.0)
    assert bool((per[loads == 0] == 0).all())
    assert cost.layer_latency_s(loads, beta) == pytest.approx(2e-4 + float(by_hand.max()),
                                                              rel=1e-12)
    # a loaded device without bandwidth never finishes; an idle one costs nothing
    b0 = beta.clone()
    b0[0] = 0.0
    b0[1] = 0.0
    per0 = cost.device_latency_s(loads, b0)
    assert math.isinf(float(per0[0])) and float(per0[1]) == 0.0


class _Recorder:
    """Airtime model that records its calls (no tensor fast path)."""

    def __init__(self, seconds_per_element: float) -> None:
        self.spe = seconds_per_element
        self.calls: list[tuple[int, int, float, float]] = []

    def expected_airtime_s(self, rows: int, row_size: int, snr_db: float,
                           bandwidth_hz: float) -> float:
        self.calls.append((rows, row_size, snr_db, bandwidth_hz))
        return rows * row_size * self.spe


def test_prefill_sends_one_payload_of_n_rows_each_way() -> None:
    topo = Topology(devices=default_topology(3, seed=0).devices, fading="none")
    dl, ul = _Recorder(1e-9), _Recorder(2e-9)
    cost = DeviceCost(topo, topo.path_gain(), [(dl, ul)] * 3, hidden_size=64,
                      flops_per_token=1e6, weight_bytes=0)
    loads = torch.tensor([5.0, 0.0, 2.0], dtype=F64)
    beta = torch.tensor([0.5, 0.2, 0.3], dtype=F64)
    t = cost.device_latency_s(loads, beta)
    assert sorted(c[:2] for c in dl.calls) == [(2, 64), (5, 64)]       # idle device: no call
    assert sorted(c[3] for c in ul.calls) == pytest.approx([0.3 * 100e6, 0.5 * 100e6])
    snr_ul = topo.snr_db("ul", beta, topo.path_gain())
    assert sorted(c[2] for c in ul.calls) == pytest.approx(sorted([float(snr_ul[0]),
                                                                   float(snr_ul[2])]))
    assert float(t[0]) == pytest.approx(5 * 64 * 3e-9 + 5 * 1e6 / topo.devices[0].compute_flops)


def test_generic_airtime_path_matches_the_shannon_fast_path() -> None:
    class Slow:
        def __init__(self) -> None:
            self.inner = ShannonAirtime(16)

        def expected_airtime_s(self, n: int, d: int, snr_db: float, bw: float) -> float:
            return self.inner.expected_airtime_s(n, d, snr_db, bw)

    topo = default_topology(4, seed=9)
    gain = topo.channel_gain(torch.Generator().manual_seed(0))
    fast, slow = mixtral_cost(topo, gain), mixtral_cost(topo, gain, airtime=Slow())
    loads = torch.tensor([3.0, 1.0, 0.0, 2.0], dtype=F64)
    beta = torch.tensor([0.4, 0.1, 0.0, 0.5], dtype=F64)
    torch.testing.assert_close(slow.device_latency_s(loads, beta),
                               fast.device_latency_s(loads, beta), rtol=1e-12, atol=0.0)
    # the fast path keeps the per-row times of recent shares: alternating shares, a batch of
    # shares and repeated calls all give the generic path's values
    other = torch.tensor([0.25, 0.25, 0.25, 0.25], dtype=F64)
    for b_ in (beta, other, beta, torch.stack([beta, other]), other):
        torch.testing.assert_close(slow.device_latency_s(loads, b_),
                                   fast.device_latency_s(loads, b_), rtol=1e-12, atol=0.0)
    # per-device bits: an 8-bit payload takes half the airtime of a 16-bit one
    mixed = mixtral_cost(topo, gain, airtime=[ShannonAirtime(8), ShannonAirtime(16)] * 2)
    ratio = mixed.airtime_s("dl", loads, beta)[0] / fast.airtime_s("dl", loads, beta)[0]
    assert float(ratio) == pytest.approx(0.5, rel=1e-12)


@pytest.mark.parametrize("spec", ["digital:bf16", "digital:int8"])
def test_block_linear_fast_path_matches_the_per_payload_airtime(spec: str) -> None:
    """One digital link for every device: DeviceCost multiplies the code blocks by the
    seconds per block it keeps per share vector; every device's airtime equals link
    adaptation's expected airtime of its payload's bits (rtol 1e-12) for alternating and
    batched shares, an idle device takes 0 s and a loaded device without bandwidth forever."""
    from wdmoe_link.transports import parse_transport

    t = parse_transport(spec)
    topo = default_topology(4, seed=9)
    gain = topo.channel_gain(torch.Generator().manual_seed(0))
    cost = mixtral_cost(topo, gain, airtime=t.airtime_model())
    assert set(cost._block_model) == {"dl", "ul"}
    loads = torch.tensor([3.0, 1.0, 0.0, 2.0], dtype=F64)
    beta = torch.tensor([0.4, 0.1, 0.2, 0.3], dtype=F64)
    other = torch.tensor([0.25, 0.25, 0.25, 0.25], dtype=F64)
    for b_ in (beta, other, beta, other):
        for d in ("dl", "ul"):
            got = cost.airtime_s(d, loads, b_)
            snr = topo.snr_db(d, b_, gain)
            # the link's expected uses of the payload's bits over the share's band (SNR on
            # link adaptation's 0.01 dB grid, as every vectorized airtime)
            want = [float(t.adaptation.expected_airtime_s(
                t.payload_bits(int(n), D_MIXTRAL), float(s), float(b) * 100e6)) if n else 0.0
                for n, s, b in zip(loads, snr, b_, strict=True)]
            assert got.tolist() == pytest.approx(want, rel=1e-12)
            assert got[2] == 0.0
    both = cost.airtime_s("dl", loads, torch.stack([beta, other]))
    torch.testing.assert_close(both[1], cost.airtime_s("dl", loads, other), rtol=1e-12,
                               atol=0.0)
    starved = cost.airtime_s("dl", loads, torch.tensor([0.0, 0.5, 0.0, 0.5], dtype=F64))
    assert math.isinf(float(starved[0])) and starved[2] == 0.0


def test_device_cost_rejects_bad_input() -> None:
    topo = default_topology(3, seed=0)
    with pytest.raises(ValueError, match=r"gain must have shape \[3\]"):
        mixtral_cost(topo, gain=torch.ones(4))
    with pytest.raises(ValueError, match="gain must be finite and > 0"):
        mixtral_cost(topo, gain=torch.tensor([1.0, 0.0, 1.0]))
    with pytest.raises(ValueError, match="one entry per device"):
        mixtral_cost(topo, airtime=[ShannonAirtime()] * 2)
    cost = mixtral_cost(topo)
    with pytest.raises(ValueError, match=r"beta must hold bandwidth fractions in \[0, 1\]"):
        cost.device_latency_s(torch.ones(3), torch.tensor([0.5, 0.6, -0.1]))
    with pytest.raises(ValueError, match="loads must be finite and >= 0"):
        cost.device_latency_s(torch.tensor([1.0, -1.0, 0.0]), equal_split(3))
    with pytest.raises(ValueError, match="bits_per_element must be an int >= 1"):
        ShannonAirtime(0)


# --------------------------------------------------------------------------------------------
# bandwidth step


def test_min_beta_is_the_smallest_share_meeting_the_target() -> None:
    topo = default_topology(5, seed=11)
    cost = mixtral_cost(topo, topo.channel_gain(torch.Generator().manual_seed(1)))
    loads = torch.tensor([2.0, 1.0, 0.0, 4.0, 1.0], dtype=F64)
    tau = 1.5 * float(cost.device_latency_s(loads, torch.ones(5, dtype=F64)).max())
    beta = cost.min_beta(loads, tau)
    assert float(beta[2]) == 0.0
    at = cost.device_latency_s(loads, beta)
    below = cost.device_latency_s(loads, beta * (1 - 1e-6))
    loaded = loads > 0
    assert bool((at[loaded] <= tau * (1 + 1e-12)).all())      # float rounding slack
    assert bool((below[loaded] > tau).all())
    assert math.isinf(float(cost.min_beta(loads, 1e-9)[0]))      # unreachable target


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), k=st.integers(2, 8), n_max=st.integers(1, 12),
       roofline=st.booleans())
def test_optimal_bandwidth_equalises_and_beats_the_equal_split(seed: int, k: int, n_max: int,
                                                               roofline: bool) -> None:
    """Never worse than the equal split; loaded devices finish together (within 1 %)."""
    topo = default_topology(k, seed=seed, compute_model="roofline" if roofline else "flops")
    gen = torch.Generator().manual_seed(seed)
    cost = mixtral_cost(topo, topo.channel_gain(gen))
    loads = torch.randint(0, n_max + 1, (k,), generator=gen).to(F64)
    if float(loads.sum()) == 0:
        loads[0] = 1.0
    beta, tau = optimal_bandwidth(cost, loads)
    assert float(beta.sum()) <= 1.0 + 1e-12
    assert bool((beta >= 0).all()) and bool((beta[loads == 0] == 0).all())
    t = cost.device_latency_s(loads, beta)
    assert tau == pytest.approx(float(t.max()), rel=1e-12)
    assert tau <= cost.layer_latency_s(loads, equal_split(k)) * (1 + 1e-12)
    lt = t[loads > 0]
    assert float(lt.max() / lt.min()) <= 1.01
    if int((loads > 0).sum()) > 1:
        assert float(beta.sum()) >= 1.0 - 1e-5    # the whole band is used


def test_optimal_bandwidth_single_device_gets_the_whole_band() -> None:
    topo = default_topology(4, seed=0)
    cost = mixtral_cost(topo)
    beta, tau = optimal_bandwidth(cost, torch.tensor([0.0, 3.0, 0.0, 0.0]))
    assert beta.tolist() == [0.0, 1.0, 0.0, 0.0]
    assert tau == pytest.approx(float(cost.device_latency_s(torch.tensor([0.0, 3.0, 0.0, 0.0]),
                                                            beta)[1]), rel=1e-12)
    assert optimal_bandwidth(cost, torch.zeros(4))[1] == 0.0


def test_link_snr_override_sets_every_link_and_keeps_fading():
    from wdmoe_link.topology import default_topology

    topo = default_topology(4, seed=0, fading="none", link_snr_db=7.0)
    beta = torch.full((4,), 0.25, dtype=torch.float64)
    for direction in ("dl", "ul"):
        snr = topo.snr_db(direction, beta, topo.channel_gain())
        torch.testing.assert_close(snr, torch.full((4,), 7.0, dtype=torch.float64))
    faded = default_topology(4, seed=0, link_snr_db=7.0)
    g = torch.Generator().manual_seed(0)
    lin = torch.stack([10 ** (faded.snr_db("ul", beta, faded.channel_gain(g)) / 10)
                       for _ in range(4000)])
    # E|h|^2 = 1: the mean linear SNR is the set value (4000 x 4 draws: 1.6 % std error)
    assert float(lin.mean()) == pytest.approx(10 ** 0.7, rel=0.05)
    assert topo.to_dict()["link_snr_db"] == 7.0
