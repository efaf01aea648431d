"""Payload codecs: real tensors ↔ bit strings, with a map from bits back to elements.

Formats (``dtype``):

* ``"fp16"``, ``"bf16"``: each element is cast to IEEE half / bfloat16 and its 16 bits are sent
  (MSB first). The receiver recovers exactly the cast value.
* ``"int8"``, ``"int4"``: symmetric per-vector quantization. A *vector* is a group of
  ``group_size`` consecutive elements along the last axis (default: the whole last axis).
  Each vector sends its scale ``s`` as 16 bfloat16 bits, then ``q = round(v / s)`` in two's
  complement with ``q`` in ``[-qmax, qmax]`` (``qmax`` = 127 or 7). The scale is rounded *up* to
  bfloat16 (``s >= max|v| / qmax``) so no value is clipped and the error is at most ``s / 2``.

Bit layout (needed to tell which elements a failed code block destroys): element ``i`` of a
float format occupies bits ``[16 i, 16 i + 16)``; for an integer format, vector ``v`` occupies
``[v (16 + g b), (v + 1)(16 + g b))`` with its scale first, ``g`` = group size, ``b`` = 8 or 4.
Bits are float32 0./1. tensors, the convention of Sionna's FEC blocks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .checks import check_choice, check_real

__all__ = ["PAYLOAD_DTYPES", "EncodedPayload", "bits_per_element", "bits_to_bytes",
           "bytes_to_bits", "decode_payload", "encode_payload", "lost_elements",
           "lost_elements_of_blocks", "payload_bits", "payload_values"]

PAYLOAD_DTYPES = ("bf16", "fp16", "int8", "int4")
_INT_BITS = {"int8": 8, "int4": 4}
_FLOAT_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}
_SCALE_BITS = 16
_FP16_MAX = 65504.0


@dataclass(frozen=True)
class EncodedPayload:
    """A tensor serialized to bits.

    Attributes:
        bits: float32 0/1 tensor ``[num_bits]``.
        dtype: payload format, one of :data:`PAYLOAD_DTYPES`.
        shape: shape of the original tensor.
        group_size: elements per quantization vector (integer formats; 0 for float formats).
        scales: per-vector quantization step (float32), or ``None`` for float formats.
    """

    bits: torch.Tensor
    dtype: str
    shape: tuple[int, ...]
    group_size: int
    scales: torch.Tensor | None

    @property
    def num_bits(self) -> int:
        return int(self.bits.numel())


def bits_per_element(dtype: str, group_size: int | None = None) -> float:
    """Average payload bits per element, scale overhead included."""
    check_choice("dtype", dtype, PAYLOAD_DTYPES)
    if dtype in _INT_BITS:
        if group_size is None or group_size < 1:
            raise ValueError(f"group_size must be >= 1 for {dtype}, got {group_size}")
        return _INT_BITS[dtype] + _SCALE_BITS / group_size
    return 16.0


def bytes_to_bits(data: bytes, num_bits: int) -> torch.Tensor:
    """``data`` as float32 0/1 bits, MSB first, zero-padded to ``num_bits`` (``>= 8 len(data)``)."""
    if 8 * len(data) > num_bits:
        raise ValueError(f"{len(data)} bytes do not fit in {num_bits} bits")
    bits = np.zeros(num_bits, dtype=np.float32)
    if data:
        bits[: 8 * len(data)] = np.unpackbits(np.frombuffer(data, dtype=np.uint8))
    return torch.from_numpy(bits)


def bits_to_bytes(bits: torch.Tensor) -> bytes:
    """Inverse of :func:`bytes_to_bits`: whole bytes, MSB first (trailing < 8 bits dropped)."""
    b = bits.detach().reshape(-1).cpu().round().to(torch.uint8).numpy()
    n = (b.size // 8) * 8
    return np.packbits(b[:n]).tobytes()


def payload_bits(num_elements: int | torch.Tensor, dtype: str,
                 group_size: int | None = None) -> int | torch.Tensor:
    """Bits :func:`encode_payload` makes of ``num_elements`` elements (scales included).

    Float formats: 16 per element. Integer formats: ``b`` per element plus 16 per vector of
    ``group_size`` elements (``ceil(num_elements / group_size)`` vectors; ``None``: the whole
    payload is one vector). ``num_elements`` may be a tensor (float64 result, broadcast).
    """
    check_choice("dtype", dtype, PAYLOAD_DTYPES)
    if group_size is not None and (isinstance(group_size, bool)
                                   or not isinstance(group_size, int) or group_size < 1):
        raise ValueError(f"group_size must be None or an int >= 1, got {group_size!r}")
    if isinstance(num_elements, torch.Tensor):
        n = num_elements.to(torch.float64)
        if bool((n < 0).any()):
            raise ValueError("num_elements must be >= 0")
        if dtype not in _INT_BITS:
            return 16.0 * n
        vectors = torch.ceil(n / group_size) if group_size else (n > 0).to(torch.float64)
        return _INT_BITS[dtype] * n + _SCALE_BITS * vectors
    if isinstance(num_elements, bool) or not isinstance(num_elements, int) or num_elements < 0:
        raise ValueError(f"num_elements must be an int >= 0, got {num_elements!r}")
    if dtype not in _INT_BITS:
        return 16 * num_elements
    vectors = -(-num_elements // group_size) if group_size else int(num_elements > 0)
    return _INT_BITS[dtype] * num_elements + _SCALE_BITS * vectors


def _uint_to_bits(u: torch.Tensor, nbits: int) -> torch.Tensor:
    """Unsigned ints ``[...]`` → bits ``[..., nbits]`` (MSB first), float32."""
    shifts = torch.arange(nbits - 1, -1, -1, device=u.device, dtype=torch.int64)
    return ((u.to(torch.int64).unsqueeze(-1) >> shifts) & 1).to(torch.float32)


def _bits_to_uint(b: torch.Tensor) -> torch.Tensor:
    """Bits ``[..., nbits]`` (MSB first) → unsigned ints ``[...]`` (int64)."""
    nbits = b.shape[-1]
    weights = 2 ** torch.arange(nbits - 1, -1, -1, device=b.device, dtype=torch.int64)
    return (b.round().to(torch.int64) * weights).sum(-1)


def _bf16_round_up(x: torch.Tensor) -> torch.Tensor:
    """Smallest bfloat16 value >= x (x >= 0, float32)."""
    y = x.to(torch.bfloat16)
    low = y.to(torch.float32) < x
    y_up = torch.nextafter(y, torch.full_like(y, float("inf")))
    return torch.where(low, y_up, y)


def _groups(shape: tuple[int, ...], group_size: int | None) -> int:
    last = shape[-1] if len(shape) else 1
    g = last if group_size is None else group_size
    if isinstance(g, bool) or not isinstance(g, int) or g < 1:
        raise ValueError(f"group_size must be a positive int, got {group_size!r}")
    total = 1
    for s in shape:
        total *= s
    if total % g:
        raise ValueError(
            f"group_size={g} must divide the number of elements ({total}) of a tensor of shape "
            f"{tuple(shape)}"
        )
    return g


def _quantize(flat: torch.Tensor, dtype: str, g: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(q [V, g] int64, scale [V] bfloat16)`` of the integer formats (module docstring)."""
    nb = _INT_BITS[dtype]
    qmax = 2 ** (nb - 1) - 1
    vec = flat.reshape(-1, g)
    amax = vec.abs().amax(dim=1)
    scale = _bf16_round_up(amax / qmax)
    # a vector of subnormals whose step underflows float32: the smallest bf16 step keeps the
    # error within s / 2 instead of losing the scale
    tiny = torch.nextafter(torch.zeros((), dtype=torch.bfloat16),
                           torch.ones((), dtype=torch.bfloat16))
    scale = torch.where((scale.to(torch.float32) == 0) & (amax > 0), tiny, scale)
    scale32 = scale.to(torch.float32)
    safe = torch.where(scale32 > 0, scale32, torch.ones_like(scale32))
    q = torch.round(vec / safe[:, None]).clamp(-qmax, qmax).to(torch.int64)
    return q, scale


def _check_fp16_range(flat: torch.Tensor) -> None:
    if float(flat.abs().max()) > _FP16_MAX:
        raise ValueError(
            f"t has values up to {float(flat.abs().max()):.4g}, beyond the fp16 range "
            f"(|x| <= {_FP16_MAX}); use dtype='bf16' or an integer format"
        )


def _flat_payload(t: torch.Tensor, dtype: str) -> tuple[tuple[int, ...], torch.Tensor]:
    """``(shape, flat float32 values)`` of a checked payload tensor for format ``dtype``."""
    check_choice("dtype", dtype, PAYLOAD_DTYPES)
    check_real("t", t)
    flat = t.detach().reshape(-1).to(torch.float32)
    if dtype == "fp16":
        _check_fp16_range(flat)
    return tuple(t.shape), flat


def encode_payload(t: torch.Tensor, dtype: str = "bf16",
                   group_size: int | None = None) -> EncodedPayload:
    """Serialize a real tensor to bits (see the module docstring for formats and layout)."""
    shape, flat = _flat_payload(t, dtype)
    if dtype in _FLOAT_DTYPES:
        u = flat.to(_FLOAT_DTYPES[dtype]).view(torch.int16).to(torch.int64) & 0xFFFF
        bits = _uint_to_bits(u, 16).reshape(-1)
        return EncodedPayload(bits=bits, dtype=dtype, shape=shape, group_size=0, scales=None)

    nb = _INT_BITS[dtype]
    g = _groups(shape, group_size)
    q, scale = _quantize(flat, dtype, g)
    q_bits = _uint_to_bits(q & (2**nb - 1), nb).reshape(q.shape[0], g * nb)
    s_bits = _uint_to_bits(scale.view(torch.int16).to(torch.int64) & 0xFFFF, _SCALE_BITS)
    bits = torch.cat([s_bits, q_bits], dim=1).reshape(-1)
    return EncodedPayload(bits=bits, dtype=dtype, shape=shape, group_size=g,
                          scales=scale.to(torch.float32))


def payload_values(t: torch.Tensor, dtype: str = "bf16",
                   group_size: int | None = None) -> tuple[torch.Tensor, int]:
    """``(values, num_bits)``: what :func:`decode_payload` returns from the intact bits of
    :func:`encode_payload` (same shape, float32, bit for bit), computed on the values without
    building the bit string, and the payload's length in bits. For link abstractions, where
    a block's bits either arrive intact or the block is flagged lost
    (:func:`lost_elements_of_blocks`)."""
    shape, flat = _flat_payload(t, dtype)
    if dtype in _FLOAT_DTYPES:
        return flat.to(_FLOAT_DTYPES[dtype]).to(torch.float32).reshape(shape), 16 * flat.numel()
    g = _groups(shape, group_size)
    q, scale = _quantize(flat, dtype, g)
    values = (q.to(torch.float32) * scale.to(torch.float32)[:, None]).reshape(shape)
    return values, q.shape[0] * (_SCALE_BITS + g * _INT_BITS[dtype])


def lost_elements_of_blocks(block_failed: torch.Tensor, block_bits: int,
                            shape: tuple[int, ...], dtype: str,
                            group_size: int | None = None) -> torch.Tensor:
    """:func:`lost_elements` from per-block outcomes instead of per-bit flags: the payload of
    ``shape`` / ``dtype`` / ``group_size`` is cut into blocks of ``block_bits`` bits and
    ``block_failed`` (bool ``[num_blocks]``) says which were lost; an element is lost when a
    bit it depends on (its own, and its vector's scale for integer formats) lies in a lost
    block. Bool of ``shape``."""
    check_choice("dtype", dtype, PAYLOAD_DTYPES)
    if isinstance(block_bits, bool) or not isinstance(block_bits, int) or block_bits < 16:
        raise ValueError(f"block_bits must be an int >= 16, got {block_bits!r}")
    n = 1
    for d in shape:
        n *= d
    failed = block_failed.reshape(-1).to(torch.bool).cpu()
    idx = torch.arange(n, dtype=torch.int64)
    if dtype in ("fp16", "bf16"):
        spans = [(16 * idx, 16 * idx + 15)]
    else:
        nb = _INT_BITS[dtype]
        g = _groups(shape, group_size)
        row = _SCALE_BITS + g * nb
        v, j = idx // g, idx % g
        first = v * row + _SCALE_BITS + j * nb
        spans = [(v * row, v * row + _SCALE_BITS - 1), (first, first + nb - 1)]
    # a span is shorter than a block, so it touches the blocks of its first and last bit only
    lost = torch.zeros(n, dtype=torch.bool)
    for a, b in spans:
        lost |= failed[a // block_bits] | failed[b // block_bits]
    return lost.reshape(shape)


def decode_payload(bits: torch.Tensor, like: EncodedPayload) -> torch.Tensor:
    """Inverse of :func:`encode_payload` for received ``bits`` laid out like ``like``.

    Returns a float32 tensor of ``like.shape``. Corrupted bits can decode to NaN/Inf for float
    formats; :func:`phy.DigitalLink.send_tensor` masks those.
    """
    if bits.numel() != like.num_bits:
        raise ValueError(
            f"bits has {bits.numel()} entries, the payload layout needs {like.num_bits}"
        )
    if like.dtype in ("fp16", "bf16"):
        u = _bits_to_uint(bits.reshape(-1, 16))
        s16 = torch.where(u >= 2**15, u - 2**16, u).to(torch.int16)
        tdt = _FLOAT_DTYPES[like.dtype]
        return s16.view(tdt).to(torch.float32).reshape(like.shape)
    nb = _INT_BITS[like.dtype]
    g = like.group_size
    rows = bits.reshape(-1, _SCALE_BITS + g * nb)
    su = _bits_to_uint(rows[:, :_SCALE_BITS])
    scale = torch.where(su >= 2**15, su - 2**16, su).to(torch.int16).view(torch.bfloat16)
    qu = _bits_to_uint(rows[:, _SCALE_BITS:].reshape(-1, g, nb))
    q = torch.where(qu >= 2 ** (nb - 1), qu - 2**nb, qu).to(torch.float32)
    return (q * scale.to(torch.float32)[:, None]).reshape(like.shape)


def lost_elements(bit_lost: torch.Tensor, like: EncodedPayload) -> torch.Tensor:
    """Elements that depend on a lost bit: bool ``[num_bits]`` → bool of ``like.shape``."""
    if like.dtype in ("fp16", "bf16"):
        return bit_lost.reshape(-1, 16).any(-1).reshape(like.shape)
    nb = _INT_BITS[like.dtype]
    g = like.group_size
    rows = bit_lost.reshape(-1, _SCALE_BITS + g * nb)
    scale_lost = rows[:, :_SCALE_BITS].any(-1)
    elem_lost = rows[:, _SCALE_BITS:].reshape(-1, g, nb).any(-1) | scale_lost[:, None]
    return elem_lost.reshape(like.shape)
