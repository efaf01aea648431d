"""Payload codecs: exact round trips, quantization error bounds, loss maps."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from phy.payload import bits_per_element, decode_payload, encode_payload, lost_elements


@pytest.mark.parametrize(("dtype", "tdt"), [("bf16", torch.bfloat16), ("fp16", torch.float16)])
def test_float_formats_bit_exact(dtype: str, tdt: torch.dtype) -> None:
    t = torch.randn(7, 33) * 10
    p = encode_payload(t, dtype)
    assert p.num_bits == 7 * 33 * 16
    assert set(p.bits.unique().tolist()) <= {0.0, 1.0}
    out = decode_payload(p.bits, p)
    assert torch.equal(out, t.to(tdt).to(torch.float32))


@pytest.mark.parametrize(("dtype", "qmax"), [("int8", 127), ("int4", 7)])
def test_int_formats_within_half_step(dtype: str, qmax: int) -> None:
    t = torch.randn(5, 64) * torch.logspace(-6, 3, 5)[:, None]
    p = encode_payload(t, dtype)
    assert p.num_bits == 5 * (16 + 64 * (8 if dtype == "int8" else 4))
    out = decode_payload(p.bits, p)
    step = p.scales[:, None]
    assert torch.all((out - t).abs() <= step / 2 + 1e-6 * step)
    # the step is no coarser than absmax / qmax rounded up to bfloat16 (relative 2^-8)
    absmax = t.abs().amax(dim=1)
    assert torch.all(p.scales >= absmax / qmax)
    assert torch.all(p.scales <= absmax / qmax * (1 + 2**-7))


def test_group_size_and_zero_vectors() -> None:
    t = torch.zeros(4, 8)
    t[1] = torch.arange(8.0)
    p = encode_payload(t, "int8", group_size=4)
    assert p.scales.numel() == 8
    assert torch.allclose(decode_payload(p.bits, p), t, atol=4 / 127)
    assert bits_per_element("int8", 4) == 12.0
    with pytest.raises(ValueError, match="group_size=3 must divide"):
        encode_payload(t, "int8", group_size=3)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(-1e4, 1e4, allow_nan=False, width=32), min_size=1, max_size=40),
       st.sampled_from(["bf16", "fp16", "int8", "int4"]))
def test_round_trip_property(values: list[float], dtype: str) -> None:
    t = torch.tensor(values, dtype=torch.float32)[None, :]
    p = encode_payload(t, dtype)
    out = decode_payload(p.bits, p)
    assert torch.isfinite(out).all()
    if dtype in ("int8", "int4"):
        assert torch.all((out - t).abs() <= p.scales[:, None] / 2 * (1 + 1e-6))


def test_lost_elements_map() -> None:
    t = torch.randn(2, 8)
    p = encode_payload(t, "bf16")
    bit_lost = torch.zeros(p.num_bits, dtype=torch.bool)
    bit_lost[16 * 3 + 5] = True
    lost = lost_elements(bit_lost, p)
    assert lost.sum() == 1 and lost[0, 3]
    q = encode_payload(t, "int4")  # per row: 16 scale bits then 8 x 4 bits
    bit_lost = torch.zeros(q.num_bits, dtype=torch.bool)
    bit_lost[3] = True  # scale of row 0: the whole row is lost
    bit_lost[48 + 16 + 4 * 2] = True  # element 2 of row 1
    lost = lost_elements(bit_lost, q)
    assert lost[0].all() and lost[1].sum() == 1 and lost[1, 2]


def test_bad_payloads() -> None:
    with pytest.raises(ValueError, match="dtype must be one of"):
        encode_payload(torch.ones(3), "fp8")
    with pytest.raises(ValueError, match="NaN"):
        encode_payload(torch.tensor([1.0, float("nan")]), "bf16")
    with pytest.raises(ValueError, match="fp16 range"):
        encode_payload(torch.tensor([1e6]), "fp16")
    with pytest.raises(ValueError, match="t must be a real"):
        encode_payload(torch.ones(3, dtype=torch.int32), "bf16")
    with pytest.raises(ValueError, match="must not be empty"):
        encode_payload(torch.ones(0), "int8")
