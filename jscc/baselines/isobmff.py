"""Compact transport of HEIF/AVIF files: the ISOBMFF boxes that describe the codec
configuration are deflate-coded against a template.

An HEIF (HEVC) or AVIF (AV1) still image is an ISO base media file: ``ftyp`` and ``meta``
boxes (brand, item info, location, properties, the decoder configuration record) then the
``mdat`` box holding the coded picture. For a 256x256 picture these boxes take ~360 bytes, as
much as 20 % of a 2 KB budget, while BPG, the format the field compares against, spends ~10
bytes on its header. Almost all of those bytes are the same for every picture of a given size
coded with the same settings, and the receiver knows the settings. So the boxes before the
coded picture are sent as raw deflate with a preset dictionary: the same boxes of a template
file (a flat grey picture of the same size, same settings) that both ends build. That brings
them to ~15 bytes; the coded picture itself is sent as is.

Wire format: ``uvarint(len(deflated header)) + deflated header + payload``. Trailing zero
bytes after it (padding to whole code blocks) are ignored by the decoders.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Callable

import numpy as np
import torch
from PIL import Image

__all__ = ["ContainerError", "decode_picture", "header_dictionary", "pack", "split_header",
           "unpack"]


class ContainerError(ValueError):
    """Bytes that are not a valid packed ISOBMFF file."""


def split_header(data: bytes) -> tuple[bytes, bytes]:
    """``(boxes up to and including the mdat box header, mdat payload and the rest)``."""
    pos = 0
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos:pos + 4], "big")
        kind = data[pos + 4:pos + 8]
        header = 8
        if size == 1:  # 64-bit size follows
            if pos + 16 > len(data):
                break
            size, header = int.from_bytes(data[pos + 8:pos + 16], "big"), 16
        if kind == b"mdat":
            return data[:pos + header], data[pos + header:]
        if size < header:
            break
        pos += size
    raise ContainerError("no mdat box: not an ISOBMFF (HEIF/AVIF) file")


def _uvarint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def header_dictionary(*templates: bytes) -> bytes:
    """The preset dictionary of :func:`pack`: the header boxes of the template files (several
    when the encoder's settings change the boxes, e.g. with and without adaptive
    quantization)."""
    return b"".join(split_header(t)[0] for t in templates)


def pack(data: bytes, dictionary: bytes) -> bytes:
    """``data`` (a HEIF/AVIF file) with its header boxes deflated against ``dictionary``
    (:func:`header_dictionary`)."""
    header, payload = split_header(data)
    c = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, zdict=dictionary)
    packed = c.compress(header) + c.flush()
    return _uvarint(len(packed)) + packed + payload


def unpack(data: bytes, dictionary: bytes) -> bytes:
    """Inverse of :func:`pack` (trailing padding is kept: the decoders ignore it)."""
    length, shift, pos = 0, 0, 0
    while True:
        if pos >= len(data) or shift > 28:
            raise ContainerError("truncated header length")
        byte = data[pos]
        pos += 1
        length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    if pos + length > len(data) or length == 0:
        raise ContainerError("truncated header")
    d = zlib.decompressobj(-15, zdict=dictionary)
    try:
        header = d.decompress(data[pos:pos + length]) + d.flush()
    except zlib.error as e:
        raise ContainerError(f"corrupt header: {e}") from None
    return header + data[pos + length:]


def decode_picture(data: bytes, shape: tuple[int, ...] | torch.Size,
                   dictionary: Callable[[int, int], bytes],
                   open_rgb: Callable[[io.BytesIO], Image.Image],
                   error: type[ValueError]) -> torch.Tensor:
    """``[3, H, W]`` float32 in [0, 1] from a packed stream (zero padding allowed): unpack with
    ``dictionary(H, W)``, decode with ``open_rgb`` (a file -> RGB picture); any failure, or a
    picture of another size, raises ``error``."""
    h, w = int(shape[-2]), int(shape[-1])
    try:
        im = open_rgb(io.BytesIO(unpack(bytes(data), dictionary(h, w))))
    except (ContainerError, ValueError, RuntimeError, OSError, SyntaxError) as e:
        raise error(f"not a decodable picture: {e}") from None
    if im.size != (w, h):
        raise error(f"decoded picture is {im.size[0]}x{im.size[1]}, expected {w}x{h}")
    return torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0).permute(2, 0, 1)
