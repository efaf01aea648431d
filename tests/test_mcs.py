"""MCS tables (TS 38.214 via Sionna), BLER-table loading and lookup, link adaptation."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from phy.adaptation import select_mcs
from phy.bler import BlerCurve, BlerTable, bler_at, load_bler_table
from phy.mcs import MCS, mcs_table

HEADER = "channel,table,mcs,snr_db,bler,block_bits,num_blocks"


# --------------------------------------------------------------------------------------------
# MCS
# --------------------------------------------------------------------------------------------


def test_table_sizes_and_known_entries():
    t1, t2 = mcs_table("qam64"), mcs_table("qam256")
    assert len(t1) == 29 and len(t2) == 28
    assert [m.index for m in t1] == list(range(29))
    # TS 38.214 Table 5.1.3.1-1
    assert (t1[0].modulation_order, t1[0].code_rate * 1024) == (2, 120)
    assert (t1[10].modulation_order, t1[10].code_rate * 1024) == (4, 340)
    assert (t1[28].modulation_order, t1[28].code_rate * 1024) == (6, 948)
    # Table 5.1.3.1-2, including the two half-integer rates x1024
    assert (t2[20].modulation_order, t2[20].code_rate * 1024) == (8, 682.5)
    assert (t2[26].modulation_order, t2[26].code_rate * 1024) == (8, 916.5)
    assert (t2[27].modulation_order, t2[27].code_rate * 1024) == (8, 948)


def test_spectral_efficiency_and_name():
    m = MCS.from_index(10)
    assert m.table == "qam64"
    assert m.spectral_efficiency == pytest.approx(4 * 340 / 1024, abs=0)
    assert m.name == "qam64/MCS10 (16QAM, R=0.332)"
    assert str(MCS.from_index(20, "qam256")) == "qam256/MCS20 (256QAM, R=0.667)"
    c = MCS.custom(2, 0.5)
    assert c.index is None and c.table == "custom"
    assert c.spectral_efficiency == 1.0
    assert c.name == "custom (QPSK, R=0.500)"
    assert MCS.from_index(3) == MCS.from_index(3)  # frozen dataclass: value equality, hashable
    assert len({MCS.from_index(3), MCS.from_index(3)}) == 1


def test_spectral_efficiency_increases_with_index_within_a_modulation():
    for table in ("qam64", "qam256"):
        ms = mcs_table(table)
        for a, b in itertools.pairwise(ms):
            if a.modulation_order == b.modulation_order:
                assert b.spectral_efficiency > a.spectral_efficiency


@pytest.mark.parametrize(("index", "table", "match"), [
    (29, "qam64", r"index must be in \[0, 28\]"),
    (28, "qam256", r"index must be in \[0, 27\]"),
    (-1, "qam64", r"index must be in \[0, 28\]"),
    (1.0, "qam64", r"index must be an int"),
    (True, "qam64", r"index must be an int"),
    (3, "qam1024", r"table must be one of \['qam64', 'qam256'\]"),
    (3, "custom", r"MCS.custom"),
])
def test_from_index_errors(index, table, match):
    with pytest.raises(ValueError, match=match):
        MCS.from_index(index, table)


@pytest.mark.parametrize(("qm", "rate", "match"), [
    (3, 0.5, r"modulation_order must be one of \[2, 4, 6, 8\]"),
    (10, 0.5, r"modulation_order must be one of"),
    (2, 0.0, r"code_rate must be"),
    (2, 0.95, r"code_rate must be in \(0, 0.95\)"),
    (2, math.nan, r"code_rate must be"),
])
def test_custom_errors(qm, rate, match):
    with pytest.raises(ValueError, match=match):
        MCS.custom(qm, rate)


def test_direct_construction_is_checked_against_the_table():
    with pytest.raises(ValueError, match=r"qam64/MCS10 is Qm=4"):
        MCS(index=10, table="qam64", modulation_order=6, code_rate=340 / 1024)
    with pytest.raises(ValueError, match="index must be None for a custom MCS"):
        MCS(index=3, table="custom", modulation_order=2, code_rate=0.5)
    assert MCS(10, "qam64", 4, 340 / 1024) == MCS.from_index(10)


def test_mcs_table_error():
    with pytest.raises(ValueError, match=r"table must be one of"):
        mcs_table("qam16")


# --------------------------------------------------------------------------------------------
# Synthetic BLER table: waterfalls 10^(-(s - t_i)) clipped to 1, threshold t_i rising with SE
# --------------------------------------------------------------------------------------------

SNRS = np.arange(-6.0, 24.0 + 1e-9, 1.0)


def _threshold_db(m: MCS) -> float:
    # about 1 dB above the AWGN Shannon limit of the MCS's spectral efficiency
    return 10 * math.log10(2 ** m.spectral_efficiency - 1) + 1.0


def _waterfall(m: MCS, s: np.ndarray) -> np.ndarray:
    return np.minimum(1.0, 10.0 ** (-(s - _threshold_db(m))))


@pytest.fixture(scope="module")
def synthetic_csv(tmp_path_factory):
    """qam64 on 'awgn' (all MCSs), qam64 MCS 0..9 on 'rayleigh' (shifted by 8 dB)."""
    path = tmp_path_factory.mktemp("bler") / "bler_table.csv"
    lines = ["# synthetic test table", HEADER]
    for m in mcs_table("qam64"):
        for s, b in zip(SNRS, _waterfall(m, SNRS), strict=True):
            b = 0.0 if b < 1e-4 else b  # no error in 1e4 blocks -> written as 0
            lines.append(f"awgn,qam64,{m.index},{s:g},{b:.6g},1024,10000")
        if m.index < 10:
            for s, b in zip(SNRS, _waterfall(m, SNRS - 8.0), strict=True):
                lines.append(f"rayleigh,qam64,{m.index},{s:g},{b:.6g},1024,10000")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def table(synthetic_csv):
    return load_bler_table(synthetic_csv)


def test_load(table, synthetic_csv):
    assert isinstance(table, BlerTable)
    assert table.channels == ["awgn", "rayleigh"]
    assert table.tables("awgn") == ["qam64"]
    assert len(table) == 29 + 10
    assert table.block_sizes("awgn", "qam64") == [1024]
    assert str(synthetic_csv) in repr(table)


def _brute_force(table: BlerTable, snr: float, target: float, channel: str) -> MCS | None:
    ok = [m for m in mcs_table("qam64")
          if table.find(m, channel) is not None and table.bler_at(m, snr, channel) <= target]
    return max(ok, key=lambda m: m.spectral_efficiency, default=None)


@pytest.mark.parametrize("channel", ["awgn", "rayleigh"])
@pytest.mark.parametrize("target", [0.1, 0.01])
def test_select_mcs_highest_se_meeting_target_and_monotone(table, channel, target):
    grid = np.arange(-8.0, 30.0, 0.37)
    chosen = [select_mcs(float(s), target, channel, bler_table=table) for s in grid]
    ses = [-1.0 if m is None else m.spectral_efficiency for m in chosen]
    assert all(b >= a for a, b in itertools.pairwise(ses)), "not monotone in SNR"
    for s, m in zip(grid, chosen, strict=True):
        assert m == _brute_force(table, float(s), target, channel)
        if m is not None:
            assert table.bler_at(m, float(s), channel) <= target
    assert chosen[0] is None  # far below every waterfall
    top = mcs_table("qam64")[-1] if channel == "awgn" else mcs_table("qam64")[9]
    assert chosen[-1] == top


def test_select_mcs_matches_synthetic_thresholds(table):
    # With a 1 dB/decade waterfall, BLER <= 0.1 exactly from threshold + 1 dB on.
    m = MCS.from_index(12)
    s = _threshold_db(m) + 1.0 + 1e-6
    chosen = select_mcs(s, 0.1, "awgn", bler_table=table)
    assert chosen.spectral_efficiency >= m.spectral_efficiency
    assert select_mcs(-20.0, 0.1, "awgn", bler_table=table) is None


def test_select_mcs_fallback_and_path(table, synthetic_csv):
    assert select_mcs(-20.0, 0.1, "awgn", bler_table=table, fallback="lowest") \
        == MCS.from_index(0)
    assert select_mcs(10.0, path=synthetic_csv) == select_mcs(10.0, bler_table=table)
    assert select_mcs(torch.tensor(10.0), bler_table=table) == select_mcs(10.0, bler_table=table)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"channel": "tdl-a"}, r"channel 'tdl-a' has no BLER curve.*\['awgn', 'rayleigh'\]"),
    ({"target_bler": 0.0}, r"target_bler must be a number in \(0, 1\), got 0.0"),
    ({"target_bler": 1.0}, r"target_bler must be a number in \(0, 1\)"),
    ({"target_bler": math.nan}, r"target_bler must be"),
    ({"snr_db": math.nan}, r"snr_db must be finite"),
    ({"snr_db": torch.tensor([1.0, 2.0])}, r"snr_db must be a scalar"),
    ({"table": "qam256"}, r"no BLER curve for table 'qam256'.*\['qam64'\]"),
    ({"table": "qam1024"}, r"table must be one of"),
    ({"block_bits": 0}, r"block_bits must be None or an int >= 1"),
    ({"fallback": "highest"}, r"fallback must be one of"),
])
def test_select_mcs_errors(table, kwargs, match):
    args = {"snr_db": 10.0, "bler_table": table, **kwargs}
    with pytest.raises(ValueError, match=match):
        select_mcs(**args)


# --------------------------------------------------------------------------------------------
# Lookup model
# --------------------------------------------------------------------------------------------


def _curve(snr, bler, mcs=0):
    return BlerCurve(channel="awgn", table="qam64", mcs=mcs, block_bits=100, snr_db=snr,
                     bler=bler, num_blocks=[100] * len(snr))


def test_bler_at_interpolation_clamp_and_extrapolation():
    c = _curve([0.0, 2.0, 4.0], [0.5, 0.05, 0.005])
    assert c.bler_at(-3.0) == 1.0  # below the simulated range
    assert c.bler_at(0.0) == pytest.approx(0.5)
    assert c.bler_at(1.0) == pytest.approx(math.sqrt(0.5 * 0.05))  # linear in log10
    assert c.bler_at(3.0) == pytest.approx(math.sqrt(0.05 * 0.005))
    assert c.bler_at(6.0) == pytest.approx(0.0005)  # last slope (-0.5 decade/dB) continued
    vals = c.bler_at(np.linspace(-5, 30, 200))
    assert isinstance(vals, np.ndarray) and vals.shape == (200,)
    assert np.all(np.diff(vals) <= 0) and np.all((vals >= 0) & (vals <= 1))


def test_bler_at_zero_points_floor_and_envelope():
    c = _curve([0.0, 1.0, 2.0, 3.0], [0.2, 0.02, 0.0, 0.0])
    assert c.bler_at(1.5) == pytest.approx(0.02 * 10**-0.5)  # slope continued to first 0
    assert c.bler_at(2.0) == 0.0 and c.bler_at(10.0) == 0.0
    floor = _curve([0.0, 1.0, 2.0], [0.1, 0.01, 0.01])
    assert floor.bler_at(5.0) == pytest.approx(0.01)  # error floor stays flat
    noisy = _curve([0.0, 1.0, 2.0, 3.0], [0.3, 0.01, 0.02, 0.001])
    assert noisy.bler_at(1.0) == pytest.approx(0.02)  # conservative monotone envelope
    assert noisy.bler[1] == 0.01  # raw data kept
    single = _curve([5.0], [0.05])
    assert single.bler_at(4.9) == 1.0 and single.bler_at(9.0) == pytest.approx(0.05)
    clean = _curve([5.0], [0.0])
    assert clean.bler_at(4.9) == 1.0 and clean.bler_at(5.0) == 0.0


def test_module_bler_at(table):
    m = MCS.from_index(5)
    assert bler_at(m, 0.0, "awgn", bler_table=table) == table.bler_at(m, 0.0, "awgn")
    with pytest.raises(ValueError, match="snr_db must be finite"):
        bler_at(m, math.nan, "awgn", bler_table=table)
    with pytest.raises(ValueError, match="custom MCS"):
        bler_at(MCS.custom(2, 0.5), 0.0, "awgn", bler_table=table)
    with pytest.raises(ValueError, match="no BLER curve for qam64/MCS12"):
        bler_at(MCS.from_index(12), 0.0, "rayleigh", bler_table=table)
    with pytest.raises(ValueError, match="either bler_table= or path="):
        bler_at(m, 0.0, bler_table=table, path="x.csv")


# --------------------------------------------------------------------------------------------
# CSV validation
# --------------------------------------------------------------------------------------------


def _write(tmp_path, *rows, header=HEADER):
    p = tmp_path / "t.csv"
    p.write_text("\n".join([header, *rows]) + "\n")
    return p


@pytest.mark.parametrize(("row", "match"), [
    ("awgn,qam64,29,0,0.5,100,10", r"line 2: column 'mcs' must be an index in \[0, 28\]"),
    ("awgn,qam16,1,0,0.5,100,10", r"line 2: column 'table' must be one of"),
    ("awgn,qam64,1,abc,0.5,100,10", r"column 'snr_db' must be a number, got 'abc'"),
    ("awgn,qam64,1,nan,0.5,100,10", r"column 'snr_db' must be finite"),
    ("awgn,qam64,1,0,1.5,100,10", r"column 'bler' must be in \[0, 1\]"),
    ("awgn,qam64,1,0,0.5,0,10", r"column 'block_bits' must be an integer >= 1"),
    ("awgn,qam64,1,0,0.5,100,2.5", r"column 'num_blocks' must be an integer"),
    (",qam64,1,0,0.5,100,10", r"column 'channel' must be a non-empty name"),
])
def test_csv_bad_values(tmp_path, row, match):
    with pytest.raises(ValueError, match=match):
        load_bler_table(_write(tmp_path, row))


def test_csv_structure_errors(tmp_path):
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['num_blocks'\]"):
        load_bler_table(_write(tmp_path, "awgn,qam64,1,0,0.5,100",
                               header="channel,table,mcs,snr_db,bler,block_bits"))
    with pytest.raises(ValueError, match=r"two points at snr_db=0\.0"):
        load_bler_table(_write(tmp_path, "awgn,qam64,1,0,0.5,100,10", "awgn,qam64,1,0,0.4,100,10"))
    with pytest.raises(ValueError, match="no data rows"):
        load_bler_table(_write(tmp_path))
    empty = tmp_path / "empty.csv"
    empty.write_text("# only a comment\n")
    with pytest.raises(ValueError, match="is empty"):
        load_bler_table(empty)
    with pytest.raises(FileNotFoundError, match="BLER table not found"):
        load_bler_table(tmp_path / "missing.csv")


def test_csv_extra_columns_and_several_block_sizes(tmp_path):
    p = _write(tmp_path,
               "awgn,qam64,1,0,0.5,100,10,x", "awgn,qam64,1,2,0.01,100,10,y",
               "awgn,qam64,1,0,0.9,500,10,z", "awgn,qam64,1,2,0.05,500,10,w",
               header=HEADER + ",note")
    t = load_bler_table(p)
    m = MCS.from_index(1)
    assert t.block_sizes("awgn", "qam64", 1) == [100, 500]
    assert t.bler_at(m, 0.0, "awgn", block_bits=500) == pytest.approx(0.9)
    # several sizes, block_bits=None: DEFAULT_BLOCK_BITS (1024), above 500: the 500 curve
    assert t.bler_at(m, 0.0, "awgn") == pytest.approx(0.9)
    assert t.find(m, "awgn") is None  # no exact curve at 1024
    assert select_mcs(2.0, 0.02, block_bits=100, bler_table=t) == m
    assert select_mcs(2.0, 0.02, block_bits=500, bler_table=t) is None


def test_block_sizes_are_interpolated_in_log_k(tmp_path):
    """Between simulated sizes log10 BLER is linear in log k at a fixed SNR; outside them the
    nearest size is used; a zero on both sides stays zero."""
    p = _write(tmp_path,
               "awgn,qam64,1,0,0.5,256,10", "awgn,qam64,1,1,0.04,256,10",
               "awgn,qam64,1,2,0.001,256,1000", "awgn,qam64,1,3,0,256,1000",
               "awgn,qam64,1,0,0.9,4096,10", "awgn,qam64,1,1,0.01,4096,10",
               "awgn,qam64,1,2,0,4096,1000")
    t = load_bler_table(p)
    m = MCS.from_index(1)
    # 1024 is halfway between 256 and 4096 in log k: the geometric mean of the two BLERs
    assert t.bler_at(m, 0.0, block_bits=1024) == pytest.approx(math.sqrt(0.5 * 0.9))
    assert t.bler_at(m, 1.0, block_bits=1024) == pytest.approx(math.sqrt(0.04 * 0.01))
    w = math.log(2048 / 256) / math.log(16)
    assert t.bler_at(m, 1.0, block_bits=2048) == pytest.approx(0.04 ** (1 - w) * 0.01 ** w)
    # a zero counts as the floor; zero on both sides is zero
    assert t.bler_at(m, 2.0, block_bits=1024) == pytest.approx(math.sqrt(0.001 * 1e-7))
    assert t.bler_at(m, 3.5, block_bits=1024) == 0.0
    assert t.bler_at(m, 1.0, block_bits=100) == pytest.approx(0.04)   # nearest: 256
    assert t.bler_at(m, 1.0, block_bits=8424) == pytest.approx(0.01)  # nearest: 4096
    snr = np.linspace(-1, 4, 51)
    for k in (300, 700, 1500, 3000):
        b = t.bler_at(m, snr, block_bits=k)
        assert np.all(np.diff(b) <= 1e-15)  # still non-increasing in SNR


def test_snr_at_bler_inverts_the_lookup():
    t = load_bler_table()
    for m in (MCS.from_index(0), MCS.from_index(15), MCS.from_index(27, "qam256")):
        for target in (0.3, 0.1, 0.01):
            s = t.snr_at_bler(m, target)
            assert t.bler_at(m, s) <= target < t.bler_at(m, s - 2e-3)
    assert t.snr_at_bler(MCS.from_index(5), 0.1) < t.snr_at_bler(MCS.from_index(6), 0.1)
    with pytest.raises(ValueError, match="target_bler"):
        t.snr_at_bler(MCS.from_index(5), 1.0)
