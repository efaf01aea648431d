"""The digital chain: CRC → 5G LDPC → QAM → channel → equalizer → demapper → LDPC → CRC (→ HARQ).

Every block is Sionna's: :class:`~sionna.phy.fec.crc.CRCEncoder`/``CRCDecoder`` (CRC24B, the
code-block CRC of TS 38.212), :class:`~sionna.phy.fec.ldpc.LDPC5GEncoder`/``LDPC5GDecoder``
(rate matching and the 5G bit interleaver for the QAM order) and
:class:`~sionna.phy.mapping.Mapper`. What is ours: the glue, retransmission bookkeeping, the
payload codecs, the demapper (:class:`phy.demapping.QAMDemapper`: Sionna's LLRs exactly, one PAM
dimension at a time, 18x faster for 256QAM) and the CPU LDPC kernel (:mod:`phy.ldpc`).

One *code block* carries ``k`` information bits plus the 24 CRC bits; its codeword has
``n = Qm * ceil((k + 24) / (R * Qm))`` coded bits, i.e. ``n / Qm`` channel uses, for an MCS with
modulation order ``Qm`` and target code rate ``R``. The effective information rate is therefore
``k / (n / Qm)`` bits per channel use, slightly below ``Qm * R`` because of the CRC and rounding.

HARQ (``max_transmissions > 1``): code blocks whose CRC fails are sent again over a fresh channel
realization, up to ``max_transmissions`` transmissions in all. ``harq="chase"`` (default) repeats
the same codeword and adds the LLRs of all copies (Chase combining); ``harq="ir"`` sends the
redundancy versions 0, 2, 3, 1 (TS 38.321 order) and decodes them jointly (incremental
redundancy, Sionna's ``harq_mode``). Every transmission's channel uses are counted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from sionna.phy import config as sionna_config
from sionna.phy.fec.crc import CRCDecoder, CRCEncoder
from sionna.phy.fec.ldpc import LDPC5GDecoder, LDPC5GEncoder
from sionna.phy.fec.scrambling import TB5GScrambler
from sionna.phy.mapping import Mapper
from sionna.phy.utils import ebnodb2no

from .channels import Channel
from .checks import all_finite, as_snr_db, check_bits, check_choice, check_positive_int
from .codeblock import (
    CRC_BITS,
    DEFAULT_BLOCK_BITS,
    channel_uses_per_block,
    check_block_bits,
    coded_bits,
    mother_code_inverse_rate,
)
from .demapping import QAMDemapper
from .equalization import zf_equalize
from .ldpc import CPU_CN_UPDATES, DEFAULT_CPU_CN_UPDATE, CPULDPC5GDecoder
from .mcs import MCS
from .payload import (
    PAYLOAD_DTYPES,
    bits_to_bytes,
    bytes_to_bits,
    decode_payload,
    encode_payload,
    lost_elements,
)

__all__ = ["DECODERS", "BytesResult", "DigitalLink", "DigitalResult", "TensorResult",
           "ebno_db_to_snr_db"]

#: LDPC decoders of :class:`DigitalLink` and their default check-node rule.
DECODERS = {"sionna": "boxplus-phi", "cpu": DEFAULT_CPU_CN_UPDATE}
_SIONNA_CN_UPDATES = ("boxplus-phi", "boxplus", "minsum", "offset-minsum")

_CRC = "CRC24B"
_RV_SEQUENCE = (0, 2, 3, 1)


def ebno_db_to_snr_db(ebno_db: float | torch.Tensor, num_bits_per_symbol: int,
                      code_rate: float) -> torch.Tensor:
    """Es/N0 (dB) for a given Eb/N0 (dB): ``snr_db = ebno_db + 10 log10(Qm · R)``.

    ``code_rate`` is the information bits per coded bit that Eb refers to (for a
    :class:`DigitalLink` use :meth:`DigitalLink.info_rate` / ``Qm``). Uses
    :func:`sionna.phy.utils.ebnodb2no` so the definition is Sionna's.
    """
    no = ebnodb2no(torch.as_tensor(ebno_db, dtype=torch.float32), num_bits_per_symbol,
                   code_rate)
    return -10.0 * torch.log10(torch.as_tensor(no, dtype=torch.float32))


@dataclass(frozen=True)
class DigitalResult:
    """Result of :meth:`DigitalLink.send_bits` for ``B`` code blocks of ``k`` bits.

    Attributes:
        bits_hat: decoded information bits ``[B, k]`` (float 0/1). Meaningful where ``ok``.
        ok: CRC passed after the last transmission, bool ``[B]``.
        transmissions: transmissions used per block, int64 ``[B]`` (1 … max_transmissions).
        channel_uses: complex channel uses spent per block, all transmissions, int64 ``[B]``.
    """

    bits_hat: torch.Tensor
    ok: torch.Tensor
    transmissions: torch.Tensor
    channel_uses: torch.Tensor

    @property
    def bler(self) -> float:
        """Fraction of blocks that failed after all transmissions (residual BLER)."""
        return float((~self.ok).float().mean())

    @property
    def total_channel_uses(self) -> int:
        return int(self.channel_uses.sum())


@dataclass(frozen=True)
class TensorResult:
    """Result of :meth:`DigitalLink.send_tensor`.

    Attributes:
        t_hat: received tensor, shape of the input, float32. Elements in ``lost`` hold
            ``fill_value`` (0 by default), never decoded garbage.
        lost: bool mask, shape of the input: the element depended on a code block that failed
            its CRC after every allowed transmission (or decoded to a non-finite number).
        block_ok: CRC result per code block ``[num_blocks]``.
        transmissions: transmissions per code block ``[num_blocks]``.
        channel_uses: complex channel uses of all transmissions of all blocks.
        payload_bits: bits of the serialized tensor (before padding to whole blocks).
        info_bits: information bits sent, ``num_blocks * k`` (payload plus padding).
        num_lost: elements in ``lost`` (``int(lost.sum())``, counted once by the link).
    """

    t_hat: torch.Tensor
    lost: torch.Tensor
    block_ok: torch.Tensor
    transmissions: torch.Tensor
    channel_uses: int
    payload_bits: int
    info_bits: int
    num_lost: int

    @property
    def num_blocks(self) -> int:
        return int(self.block_ok.numel())

    @property
    def lost_fraction(self) -> float:
        return float(self.lost.float().mean())


@dataclass(frozen=True)
class BytesResult:
    """Result of :meth:`DigitalLink.send_bytes` for ``S`` byte streams.

    Attributes:
        data: what the receiver holds per stream: every byte of the stream's code blocks (the
            stream, then its zero padding), as decoded. Meaningful where ``ok``.
        ok: bool ``[S]``, every code block of the stream passed its CRC.
        num_blocks: code blocks per stream, int64 ``[S]``.
        block_errors: failed code blocks per stream, int64 ``[S]``.
        transmissions: transmissions of all the stream's blocks, int64 ``[S]``.
        channel_uses: complex channel uses of all of them, int64 ``[S]``.
    """

    data: list[bytes]
    ok: torch.Tensor
    num_blocks: torch.Tensor
    block_errors: torch.Tensor
    transmissions: torch.Tensor
    channel_uses: torch.Tensor


@dataclass
class _BlockCodec:
    k: int
    n: int
    crc_enc: CRCEncoder
    crc_dec: CRCDecoder
    enc: LDPC5GEncoder
    dec: LDPC5GDecoder | CPULDPC5GDecoder
    #: LDPC mother-codeword length actually encoded (< n when bits are repeated).
    n_ldpc: int
    #: position in the LDPC codeword of every transmitted bit (``None``: no repetition).
    rep_index: torch.Tensor | None
    #: TS 38.211 7.3.1.1 bit scrambling of the ``n`` transmitted bits.
    scrambler: TB5GScrambler

    def decode(self, llr: torch.Tensor, **kwargs: object) -> torch.Tensor:
        """LDPC decoding on the decoder's device (the CPU decoder serves GPU links too)."""
        if isinstance(self.dec, CPULDPC5GDecoder) and llr.device.type != "cpu":
            return self.dec(llr.cpu(), **kwargs).to(llr.device)
        return self.dec(llr, **kwargs)

    def transmitted(self, cw: torch.Tensor) -> torch.Tensor:
        """The ``n`` bits on air of a codeword: repeated below the mother code, scrambled."""
        bits = cw if self.rep_index is None else cw[..., self.rep_index]
        return self.scrambler(bits)

    def combine(self, llr: torch.Tensor, descramble: bool = True) -> torch.Tensor:
        """Descramble the ``n`` LLRs on air and add those of repeated bits (maximum-ratio
        combining of the repetitions)."""
        if descramble:
            llr = self.scrambler(llr, binary=False)
        if self.rep_index is None:
            return llr
        out = torch.zeros(*llr.shape[:-1], self.n_ldpc, dtype=llr.dtype, device=llr.device)
        return out.index_add_(llr.dim() - 1, self.rep_index, llr)


class DigitalLink:
    """Bits or tensors over a channel with 5G LDPC, CRC, QAM and optional HARQ.

    Args:
        channel: a :class:`phy.Channel` (AWGN, RayleighFading, OFDMTDL, ...).
        mcs: an :class:`phy.MCS`, or an MCS index into ``table``.
        table: MCS table used when ``mcs`` is an int: ``"qam64"`` or ``"qam256"``.
        block_bits: information bits per code block used by :meth:`send_tensor` (CRC not
            included; ``k + 24 <= 8448``).
        num_iter: LDPC belief-propagation iterations.
        max_transmissions: 1 = no HARQ; ``> 1`` retransmits failed blocks.
        harq: ``"chase"`` (LLR combining of identical copies) or ``"ir"`` (incremental
            redundancy with redundancy versions 0, 2, 3, 1).
        demapping: ``"app"`` (exact LLRs) or ``"maxlog"``.
        decoder: ``"sionna"`` (Sionna's ``LDPC5GDecoder``, flooding schedule: the reference
            and the GPU path), ``"cpu"`` (:class:`phy.ldpc.CPULDPC5GDecoder`: Sionna's rate
            recovery around a compiled layered kernel, two orders of magnitude faster on a
            CPU) or ``"auto"`` (``"cpu"`` when the link runs on a CPU device).
        cn_update: check-node rule; default per decoder (:data:`DECODERS`). Sionna:
            ``"boxplus-phi"``, ``"boxplus"``, ``"minsum"``, ``"offset-minsum"``; cpu:
            ``"offset-minsum"`` (0.5), ``"minsum"`` (normalized, 0.75), ``"boxplus"``.
        max_batch_blocks: blocks decoded at once in :meth:`send_tensor` (bounds memory).
        device: Sionna device for the FEC and mapping blocks (default: Sionna's config).

    Example:
        >>> link = DigitalLink(AWGN(), mcs=MCS.custom(2, 0.5))
        >>> r = link.send_bits(torch.randint(0, 2, (100, 1024)).float(), snr_db=2.0)
        >>> r.ok.float().mean(), r.channel_uses[0]      # BLER and cost of each block
    """

    def __init__(self, channel: Channel, mcs: MCS | int = 0, *,
                 table: str = "qam64", block_bits: int = DEFAULT_BLOCK_BITS, num_iter: int = 20,
                 max_transmissions: int = 1, harq: Literal["chase", "ir"] = "chase",
                 demapping: Literal["app", "maxlog"] = "app",
                 decoder: Literal["auto", "sionna", "cpu"] = "auto",
                 cn_update: str | None = None, max_batch_blocks: int = 256,
                 device: str | None = None) -> None:
        if not callable(channel):
            raise TypeError(f"channel must be a phy channel, got {type(channel).__name__}")
        self.channel = channel
        if isinstance(mcs, MCS):
            self.mcs = mcs
        elif isinstance(mcs, int) and not isinstance(mcs, bool):
            self.mcs = MCS.from_index(mcs, table=table)
        else:
            raise TypeError(f"mcs must be a phy.MCS or an int MCS index, got {mcs!r}")
        self.block_bits = check_block_bits("block_bits", block_bits)
        self.num_iter = check_positive_int("num_iter", num_iter, minimum=1, maximum=1000)
        self.max_transmissions = check_positive_int("max_transmissions", max_transmissions,
                                                    minimum=1, maximum=16)
        self.harq = check_choice("harq", harq, ("chase", "ir"))
        if self.harq == "ir" and self.max_transmissions > len(_RV_SEQUENCE):
            raise ValueError(
                f"max_transmissions must be <= {len(_RV_SEQUENCE)} with harq='ir' "
                f"(redundancy versions {list(_RV_SEQUENCE)}), got {self.max_transmissions}"
            )
        self.demapping = check_choice("demapping", demapping, ("app", "maxlog"))
        self.max_batch_blocks = check_positive_int("max_batch_blocks", max_batch_blocks)
        self.device = device if device is not None else getattr(channel, "device",
                                                                sionna_config.device)
        check_choice("decoder", decoder, ("auto", *DECODERS))
        if decoder == "auto":
            decoder = "cpu" if torch.device(self.device).type == "cpu" else "sionna"
        self.decoder = decoder
        rules = CPU_CN_UPDATES if decoder == "cpu" else _SIONNA_CN_UPDATES
        self.cn_update = check_choice(f"cn_update (decoder={decoder!r})",
                                      DECODERS[decoder] if cn_update is None else cn_update,
                                      tuple(rules))
        qm = self.mcs.modulation_order
        self._mapper = Mapper("qam", qm, device=self.device)
        self._demapper = QAMDemapper(self.demapping, qm, device=self.device)
        self._codecs: dict[int, _BlockCodec] = {}

    def __repr__(self) -> str:
        return (f"DigitalLink({self.channel!r}, mcs={self.mcs.name}, block_bits={self.block_bits}, "
                f"max_transmissions={self.max_transmissions}, harq={self.harq!r}, "
                f"decoder={self.decoder!r})")

    # ------------------------------------------------------------------ geometry
    def coded_bits(self, k: int | None = None) -> int:
        """Coded bits ``n`` of one codeword carrying ``k`` information bits (+ CRC)."""
        return coded_bits(self.mcs, self.block_bits if k is None else k)

    def channel_uses_per_block(self, k: int | None = None) -> int:
        """Complex channel uses of one transmission of a code block of ``k`` info bits."""
        return channel_uses_per_block(self.mcs, self.block_bits if k is None else k)

    def info_rate(self, k: int | None = None) -> float:
        """Information bits per channel use of one transmission: ``k / (n / Qm)``."""
        k = self.block_bits if k is None else k
        return k / self.channel_uses_per_block(k)

    def _codec(self, k: int) -> _BlockCodec:
        codec = self._codecs.get(k)
        if codec is not None:
            return codec
        n = self.coded_bits(k)
        k_crc = k + CRC_BITS
        if k_crc / n > 0.95:  # pragma: no cover - MCS rates are <= 0.926
            raise ValueError(
                f"code rate {(k_crc / n):.3f} of {self.mcs.name} with k={k} exceeds the 5G LDPC "
                "limit 0.95; choose a lower MCS or more information bits"
            )
        crc_enc = CRCEncoder(_CRC, device=self.device)
        crc_dec = CRCDecoder(crc_enc, device=self.device)
        qm = self.mcs.modulation_order
        # Sionna's 5G encoder stops at the mother code: rate 1/5 for base graph 2, 1/3 for
        # base graph 1 (which Sionna picks above 3824 bits). Lower rates (qam64 MCS 0:
        # R = 0.117) repeat the mother codeword cyclically, as the circular buffer of
        # TS 38.212 rate matching does; the receiver adds the repeated LLRs.
        inv_rate = mother_code_inverse_rate(k_crc)
        n_ldpc = n if k_crc * inv_rate >= n else qm * ((inv_rate * k_crc) // qm)
        rep_index = None if n_ldpc == n else torch.arange(n, device=self.device) % n_ldpc
        enc = LDPC5GEncoder(k_crc, n_ldpc, num_bits_per_symbol=qm, device=self.device)
        if self.decoder == "cpu":
            dec = CPULDPC5GDecoder(enc, self.cn_update, num_iter=self.num_iter,
                                   harq_mode=self.harq == "ir")
        else:
            dec = LDPC5GDecoder(enc, cn_update=self.cn_update, num_iter=self.num_iter,
                                hard_out=True, return_infobits=True,
                                harq_mode=self.harq == "ir", device=self.device)
        # Data are scrambled before the mapper as in 5G, so that the symbols are uniform over
        # the constellation whatever the payload (a bf16 tensor's exponent bits are far from
        # uniform, and Gray-mapped QAM protects its bit positions unequally).
        scrambler = TB5GScrambler(channel_type="PDSCH", binary=True, device=self.device)
        codec = _BlockCodec(k=k, n=n, crc_enc=crc_enc, crc_dec=crc_dec, enc=enc, dec=dec,
                            n_ldpc=n_ldpc, rep_index=rep_index, scrambler=scrambler)
        self._codecs[k] = codec
        return codec

    # ------------------------------------------------------------------ bits
    @staticmethod
    def _check_blocks(bits: torch.Tensor, snr_db: float | torch.Tensor, device: str
                      ) -> tuple[int, int, torch.Tensor]:
        """``(num_blocks, k, snr_db)`` of a :meth:`send_bits` call, inputs checked; the SNR is
        a scalar or one value per block."""
        check_bits("bits", bits)
        if bits.dim() != 2:
            raise ValueError(f"bits must have shape [B, k] (one code block per row), got "
                             f"{tuple(bits.shape)}")
        num_blocks, k = bits.shape
        check_block_bits("k (information bits per block)", k)
        snr = as_snr_db(snr_db, (num_blocks,), device=device)
        if snr.dim() == 1 and snr.shape[0] == 1 and num_blocks != 1:
            snr = snr.expand(num_blocks)
        return num_blocks, k, snr

    @torch.no_grad()
    def send_bits(self, bits: torch.Tensor, snr_db: float | torch.Tensor) -> DigitalResult:
        """Send code blocks: ``bits`` [B, k] of 0/1 at ``snr_db`` (Es/N0 in dB, scalar or [B])."""
        num_blocks, k, snr = self._check_blocks(bits, snr_db, self.device)
        codec = self._codec(k)
        u = bits.to(device=self.device, dtype=torch.float32)
        c = codec.enc(codec.crc_enc(u), rv=list(_RV_SEQUENCE[: self.max_transmissions])) \
            if self.harq == "ir" else codec.enc(codec.crc_enc(u))
        uses = codec.n // self.mcs.modulation_order

        bits_hat = torch.zeros_like(u)
        ok = torch.zeros(num_blocks, dtype=torch.bool, device=self.device)
        transmissions = torch.zeros(num_blocks, dtype=torch.int64, device=self.device)
        llr_store: list[torch.Tensor] = []  # IR: per transmission; Chase: running sum
        pending = torch.arange(num_blocks, device=self.device)
        for t in range(self.max_transmissions):
            cw = c[pending, t] if self.harq == "ir" else c[pending]
            x = self._mapper(codec.transmitted(cw))
            snr_t = snr[pending] if snr.dim() == 1 else snr
            out = self.channel(x, snr_t)
            x_eq, no_eff = zf_equalize(out.y, out.h, out.no)
            llr = codec.combine(self._demapper(x_eq, no_eff))
            transmissions[pending] += 1
            if self.harq == "ir":
                llr_store.append(torch.zeros(num_blocks, codec.n_ldpc, device=self.device))
                llr_store[t][pending] = llr
                stacked = torch.stack([s[pending] for s in llr_store], dim=1)
                dec_in = stacked if t > 0 else stacked[:, 0]
                u_crc = codec.decode(dec_in, rv=list(_RV_SEQUENCE[: t + 1]))
            else:
                if t == 0:
                    llr_store.append(torch.zeros(num_blocks, codec.n_ldpc,
                                                 device=self.device))
                llr_store[0][pending] += llr
                u_crc = codec.decode(llr_store[0][pending])
            u_hat, crc_ok = codec.crc_dec(u_crc)
            bits_hat[pending] = u_hat.to(bits_hat.dtype)
            crc_ok = crc_ok.reshape(-1)
            ok[pending] = crc_ok
            pending = pending[~crc_ok]
            if pending.numel() == 0:
                break
        return DigitalResult(bits_hat=bits_hat, ok=ok, transmissions=transmissions,
                             channel_uses=transmissions * uses)

    @torch.no_grad()
    def send_bytes(self, streams: Sequence[bytes], snr_db: float | Sequence[float] | torch.Tensor,
                   *, num_blocks: int | None = None, k: int | None = None) -> BytesResult:
        """Send byte streams (entropy-coded images, files) in code blocks of ``k`` bits.

        Each stream is zero-padded to whole code blocks: ``num_blocks`` per stream (a fixed
        budget; every stream must fit in it) or, with ``None``, as few as hold it. Blocks of
        all streams are sent in batches of ``max_batch_blocks``, each at its stream's SNR.

        Args:
            streams: the byte strings.
            snr_db: Es/N0 in dB, a scalar or one value per stream.
            num_blocks: code blocks per stream (``None``: ``ceil(8 len / k)``).
            k: information bits per block (default ``block_bits``).
        """
        k = self.block_bits if k is None else check_block_bits("k", k)
        streams = list(streams)
        if not all(isinstance(b, (bytes, bytearray)) for b in streams):
            raise TypeError("streams must be a sequence of bytes objects")
        num = len(streams)
        if not isinstance(snr_db, (int, float, torch.Tensor)):
            snr_db = torch.tensor([float(v) for v in snr_db])
        snr = as_snr_db(snr_db, (num,), device="cpu").reshape(-1).expand(num)
        if num_blocks is not None:
            check_positive_int("num_blocks", num_blocks, minimum=0)
            too_long = [i for i, b in enumerate(streams) if 8 * len(b) > num_blocks * k]
            if too_long:
                raise ValueError(f"stream {too_long[0]} ({len(streams[too_long[0]])} bytes) "
                                 f"does not fit in num_blocks={num_blocks} blocks of k={k} bits")
            counts = [num_blocks] * num
        else:
            counts = [-(-8 * len(b) // k) for b in streams]
        total = sum(counts)
        blocks = torch.zeros(total, k)
        block_snr = torch.empty(total)
        start = 0
        for b, c, s in zip(streams, counts, snr.tolist(), strict=True):
            if c:
                blocks[start:start + c] = bytes_to_bits(bytes(b), c * k).reshape(c, k)
                block_snr[start:start + c] = s
            start += c
        bits_hat = torch.zeros_like(blocks)
        block_ok = torch.ones(total, dtype=torch.bool)
        tx = torch.zeros(total, dtype=torch.int64)
        for lo in range(0, total, self.max_batch_blocks):
            sl = slice(lo, min(lo + self.max_batch_blocks, total))
            r = self.send_bits(blocks[sl], block_snr[sl].to(self.device))
            bits_hat[sl], block_ok[sl], tx[sl] = r.bits_hat.cpu(), r.ok.cpu(), \
                r.transmissions.cpu()
        owner = torch.repeat_interleave(torch.arange(num), torch.tensor(counts, dtype=torch.long))
        errors = torch.zeros(num, dtype=torch.int64).index_add_(0, owner, (~block_ok).long())
        transmissions = torch.zeros(num, dtype=torch.int64).index_add_(0, owner, tx)
        data, start = [], 0
        for c in counts:
            data.append(bits_to_bytes(bits_hat[start:start + c].reshape(-1)))
            start += c
        return BytesResult(data=data, ok=errors == 0,
                           num_blocks=torch.tensor(counts, dtype=torch.int64),
                           block_errors=errors, transmissions=transmissions,
                           channel_uses=transmissions * self.channel_uses_per_block(k))

    @torch.no_grad()
    def block_errors(self, num_blocks: int, snr_db: float | torch.Tensor,
                     k: int | None = None) -> torch.Tensor:
        """Which of ``num_blocks`` code blocks of ``k`` information bits fail one transmission
        at ``snr_db`` (Es/N0 in dB, scalar or ``[num_blocks]``), bool ``[num_blocks]``.

        The Monte-Carlo estimator of link curves and BLER tables: the same channel, demapper
        and decoder as :meth:`send_bits`, fed the all-zero codeword with a uniformly random
        scrambling sequence on the coded bits (flipped before the mapper, the LLR signs
        flipped back after the demapper). The transmitted symbols are then uniform over the
        constellation, as for random data, and for a linear code, a channel made symmetric by
        the scrambling and a decoder that treats both signs alike (belief propagation and its
        min-sum forms), the failure probability does not depend on the codeword. It skips the
        CRC and LDPC encoders, which cost more than the decoder on a CPU. A block fails where
        any decoded information or CRC bit is not 0 (a decoding that lands on another codeword
        with a valid CRC counts as a failure here, an undetected error in :meth:`send_bits`).
        One transmission only: HARQ outcomes follow from :meth:`send_bits`.
        """
        k = self.block_bits if k is None else k
        check_block_bits("k (information bits per block)", k)
        num_blocks = check_positive_int("num_blocks", num_blocks)
        snr = as_snr_db(snr_db, (num_blocks,), device=self.device)
        codec = self._codec(k)
        scramble = torch.randint(0, 2, (num_blocks, codec.n), device=self.device,
                                 dtype=torch.float32)
        out = self.channel(self._mapper(scramble), snr)
        x_eq, no_eff = zf_equalize(out.y, out.h, out.no)
        # the random sequence stands in for the data scrambling of send_bits
        llr = codec.combine(self._demapper(x_eq, no_eff) * (1.0 - 2.0 * scramble),
                            descramble=False)
        kwargs = {"rv": [_RV_SEQUENCE[0]]} if self.harq == "ir" else {}
        return (codec.decode(llr, **kwargs).reshape(num_blocks, -1) != 0).any(dim=1)

    # ------------------------------------------------------------------ tensors
    @torch.no_grad()
    def send_tensor(self, t: torch.Tensor, snr_db: float | torch.Tensor,
                    dtype: str = "bf16", *, group_size: int | None = None,
                    fill_value: float = 0.0) -> TensorResult:
        """Serialize ``t``, send it in code blocks of ``block_bits`` bits, rebuild it.

        Args:
            t: real tensor (any shape). NaN/Inf are refused.
            snr_db: Es/N0 in dB (scalar; every block sees the same average SNR).
            dtype: payload format, ``"bf16"``, ``"fp16"``, ``"int8"`` or ``"int4"``
                (see :mod:`phy.payload`).
            group_size: elements per quantization vector for integer formats
                (default: the last axis).
            fill_value: value written into lost elements (finite).
        """
        snr = self._tensor_snr(snr_db, dtype, fill_value)
        payload = encode_payload(t, dtype, group_size)
        k = self.block_bits
        nbits = payload.num_bits
        num_blocks = -(-nbits // k)
        padded = torch.zeros(num_blocks * k, dtype=torch.float32, device=self.device)
        padded[:nbits] = payload.bits.to(self.device)
        blocks = padded.reshape(num_blocks, k)
        bits_hat = torch.empty_like(blocks)
        block_ok = torch.empty(num_blocks, dtype=torch.bool, device=self.device)
        transmissions = torch.empty(num_blocks, dtype=torch.int64, device=self.device)
        for start in range(0, num_blocks, self.max_batch_blocks):
            sl = slice(start, min(start + self.max_batch_blocks, num_blocks))
            r = self.send_bits(blocks[sl], snr)
            bits_hat[sl] = r.bits_hat
            block_ok[sl] = r.ok
            transmissions[sl] = r.transmissions
        bit_lost = (~block_ok)[:, None].expand(num_blocks, k).reshape(-1)[:nbits]
        values = decode_payload(bits_hat.reshape(-1)[:nbits].cpu(), payload)
        return self._tensor_result(values, lost_elements(bit_lost.cpu(), payload), block_ok,
                                   transmissions, nbits, fill_value, t.device)

    def _tensor_snr(self, snr_db: float | torch.Tensor, dtype: str,
                    fill_value: float, *, per_payload: bool = False) -> torch.Tensor:
        """The checked scalar SNR of a :meth:`send_tensor` call (``dtype`` and ``fill_value``
        checked too); ``per_payload``: a 1-D tensor of them, one per payload of a batch."""
        check_choice("dtype", dtype, PAYLOAD_DTYPES)
        snr = as_snr_db(snr_db, None, device=self.device)
        if snr.dim() != int(per_payload):
            raise ValueError(f"snr_db must be a scalar for send_tensor, got shape "
                             f"{tuple(snr.shape)}")
        if not math.isfinite(float(fill_value)):
            raise ValueError(f"fill_value must be finite, got {fill_value}")
        return snr

    def _tensor_result(self, values: torch.Tensor, lost: torch.Tensor, block_ok: torch.Tensor,
                       transmissions: torch.Tensor, nbits: int, fill_value: float,
                       device: torch.device) -> TensorResult:
        """:class:`TensorResult` of received ``values`` whose ``lost`` elements (and any
        non-finite one) become ``fill_value``."""
        if not all_finite(values):
            lost = lost | ~torch.isfinite(values)
        num_lost = int(lost.sum())
        if num_lost:
            values = torch.where(lost, torch.full_like(values, float(fill_value)), values)
        k = self.block_bits
        return TensorResult(
            t_hat=values.to(device),
            lost=lost.to(device),
            block_ok=block_ok.cpu(),
            transmissions=transmissions.cpu(),
            channel_uses=int(transmissions.sum()) * self.channel_uses_per_block(k),
            payload_bits=nbits,
            info_bits=block_ok.numel() * k,
            num_lost=num_lost,
        )
