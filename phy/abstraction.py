"""Link abstraction: :class:`DigitalLink` results without decoding, from BLER curves.

System-level simulators do not decode every code block: they map the SNR a block sees to a
block error probability with a table of link-level curves, then draw the CRC outcome. That is
:class:`AbstractDigitalLink`: the constructor, results and ``send_bits``/``send_tensor``
contract of :class:`~phy.digital.DigitalLink` (it *is* one, with ``send_bits`` replaced), the
channel uses and HARQ bookkeeping of the decoded link, and each block's CRC outcome drawn from
:func:`phy.bler.load_bler_table`'s curves:

- AWGN: the ``awgn`` curve at the block's SNR.
- Block fading (``RayleighFading("frame")``, or a coherence of at least one code block): each
  transmission draws its own gain ``h`` (Sionna's flat-fading generator, like the decoded
  link), the block's SNR is ``snr_db + 10 log10 |h|^2``, looked up on the ``awgn`` curve.
- Per-symbol Rayleigh (``RayleighFading("symbol")``): the ``rayleigh`` curve at the average SNR.
- Chase HARQ: the linear sum of the SNRs of the combined transmissions (the LLRs of identical
  copies add up). This is exact for QPSK; for 16QAM and above the decoded link combines bit
  LLRs, which loses against symbol-level combining, so the abstraction is optimistic there
  (about 0.5 dB for qam64 MCS 10 with two transmissions). Incremental redundancy has no such
  one-line model here and is refused.

Information bits pass through intact where the CRC passes. Where it fails, the block is
flagged exactly as a decoded failure is (``ok = False``; ``send_tensor`` marks its elements
lost) and its bits are replaced by random ones: the abstraction models block errors, not the
bit errors inside a failed block.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .bler import BlerTable, load_bler_table
from .channels import AWGN, Channel, RayleighFading
from .checks import all_finite
from .codeblock import check_block_bits
from .digital import DigitalLink, DigitalResult, TensorResult
from .memo import Memo
from .payload import lost_elements_of_blocks, payload_bits, payload_values

__all__ = ["AbstractDigitalLink", "send_tensors"]


class AbstractDigitalLink(DigitalLink):
    """A :class:`DigitalLink` whose CRC outcomes come from BLER curves instead of decoding.

    Args:
        channel, mcs, table, block_bits, max_transmissions, harq, ...: as
            :class:`DigitalLink` (decoder options are accepted and unused).
        bler_table: the curves (default: the shipped table, :func:`phy.load_bler_table`).
            The curve of the link's MCS and channel model must exist; between the table's
            block sizes the BLER is interpolated in ``log k`` (:meth:`phy.BlerTable.bler_at`).
    """

    def __init__(self, channel: Channel, mcs: Any = 0, *, bler_table: BlerTable | None = None,
                 **kwargs: Any) -> None:
        super().__init__(channel, mcs, **kwargs)
        if self.harq == "ir" and self.max_transmissions > 1:
            raise ValueError("harq='ir' has no link abstraction here; use harq='chase' or the "
                             "decoded DigitalLink")
        self.bler_table = load_bler_table() if bler_table is None else bler_table
        self._bler_memo: Memo[float] = Memo(4096)  # (block bits, SNR dB) -> BLER (phy.memo)
        self._curve_channel, self._block_fading = self._fading_model(channel)
        if not self.bler_table.block_sizes(self._curve_channel, self.mcs.table, self.mcs.index):
            raise ValueError(f"the BLER table has no curve for {self.mcs.name} on "
                             f"{self._curve_channel!r}; regenerate it with "
                             "semcom make-bler-table")

    def _fading_model(self, channel: Channel) -> tuple[str, bool]:
        """(curve channel, block fading?) for ``channel``."""
        if isinstance(channel, AWGN):
            return "awgn", False
        if isinstance(channel, RayleighFading):
            if channel.coherence == "symbol":
                return "rayleigh", False
            if channel.coherence == "frame" or \
                    int(channel.coherence) >= self.channel_uses_per_block():
                return "awgn", True
            raise ValueError(
                f"RayleighFading(coherence={channel.coherence}) changes gain inside a code "
                f"block ({self.channel_uses_per_block()} channel uses): no abstraction; use "
                "coherence 'symbol', 'frame' or >= the block length")
        raise ValueError(f"no link abstraction for {channel!r}; use AWGN or RayleighFading")

    def __repr__(self) -> str:
        return "Abstract" + super().__repr__()

    def _bler(self, snr_db: np.ndarray | torch.Tensor, k: int) -> np.ndarray:
        """BLER of blocks of ``k`` bits at ``snr_db`` (dB, ``[B]``), from the curve (float64
        array ``[B]``)."""
        s = (snr_db.detach().cpu().double().numpy() if isinstance(snr_db, torch.Tensor)
             else np.asarray(snr_db, dtype=np.float64))
        lo, hi = float(s.min()), float(s.max())
        if lo == hi:  # every block at one SNR (no block fading): one remembered lookup
            return np.full(s.size, self._bler_one(lo, k))
        b = self.bler_table.bler_at(self.mcs, s, self._curve_channel, block_bits=k)
        return np.asarray(b, dtype=np.float64)

    def _bler_one(self, snr_db: float, k: int) -> float:
        """BLER of a block of ``k`` bits at ``snr_db`` (dB) from the curve, remembered."""
        return self._bler_memo.get((k, snr_db), lambda: float(self.bler_table.bler_at(
            self.mcs, snr_db, self._curve_channel, block_bits=k)))

    def _draw_outcomes(self, snr: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(ok, transmissions)`` of blocks of ``k`` bits at ``snr`` (dB, float64 ``[B]``):
        the CRC outcome of each transmission drawn from the curve at the combined SNR."""
        ok, transmissions = _draw_outcomes_many(
            [self], [k], np.zeros(snr.numel(), dtype=np.int64), snr.cpu())
        return torch.from_numpy(ok), torch.from_numpy(transmissions)

    @torch.no_grad()
    def send_bits(self, bits: torch.Tensor, snr_db: float | torch.Tensor) -> DigitalResult:
        """Like :meth:`DigitalLink.send_bits`, with CRC outcomes drawn from the BLER curves."""
        num_blocks, k, snr = self._check_blocks(bits, snr_db, "cpu")
        snr = snr.to(torch.float64).expand(num_blocks) if snr.dim() == 0 else \
            snr.to(torch.float64)
        ok, transmissions = self._draw_outcomes(snr, k)
        u = bits.to(dtype=torch.float32, device="cpu")
        noise = torch.randint(0, 2, u.shape).to(torch.float32)
        bits_hat = torch.where(ok[:, None], u, noise).to(self.device)
        uses = self.channel_uses_per_block(k)
        return DigitalResult(bits_hat=bits_hat, ok=ok.to(self.device),
                             transmissions=transmissions.to(self.device),
                             channel_uses=(transmissions * uses).to(self.device))

    @torch.no_grad()
    def send_tensor(self, t: torch.Tensor, snr_db: float | torch.Tensor,
                    dtype: str = "bf16", *, group_size: int | None = None,
                    fill_value: float = 0.0) -> TensorResult:
        """:meth:`DigitalLink.send_tensor` without the bit string.

        A block's bits arrive intact or the block is flagged lost, so the received values are
        the payload format's round trip of ``t`` (:func:`phy.payload_values`) wherever no lost
        block touches them (:func:`phy.lost_elements_of_blocks`). The random draws are the
        ones :meth:`send_bits` makes for the same blocks (outcomes, then the replacement bits
        of each batch of ``max_batch_blocks``), so the result equals the bit-level path's for
        the same seed, bit for bit (tested), at a fraction of its cost.
        """
        snr64 = self._tensor_snr(snr_db, dtype, fill_value).cpu().to(torch.float64)
        values, nbits = payload_values(t, dtype, group_size)
        k = self.block_bits
        check_block_bits("k (information bits per block)", k)
        num_blocks = -(-nbits // k)
        block_ok = torch.empty(num_blocks, dtype=torch.bool)
        transmissions = torch.empty(num_blocks, dtype=torch.int64)
        for start in range(0, num_blocks, self.max_batch_blocks):
            n = min(self.max_batch_blocks, num_blocks - start)
            ok, tx = self._draw_outcomes(snr64.expand(n), k)
            torch.randint(0, 2, (n, k), dtype=torch.bool)  # send_bits' replacement bits
            block_ok[start:start + n] = ok
            transmissions[start:start + n] = tx
        return self._values_result(values, block_ok, transmissions, nbits, dtype, group_size,
                                   fill_value, t.device)

    def _values_result(self, values: torch.Tensor, block_ok: torch.Tensor,
                       transmissions: torch.Tensor, nbits: int, dtype: str,
                       group_size: int | None, fill_value: float,
                       device: torch.device) -> TensorResult:
        """The :class:`TensorResult` of a payload's round-trip ``values`` whose blocks
        arrived as ``block_ok`` (the elements a failed block touches are lost)."""
        values = values.cpu()
        if bool(block_ok.all()):
            lost = torch.zeros(values.shape, dtype=torch.bool)
        else:
            lost = lost_elements_of_blocks(~block_ok, self.block_bits, tuple(values.shape),
                                           dtype, group_size)
        return self._tensor_result(values, lost, block_ok, transmissions, nbits, fill_value,
                                   device)


def send_tensors(links: Sequence[AbstractDigitalLink], ts: Sequence[torch.Tensor],
                 snr_db: Sequence[float], dtype: str = "bf16", *,
                 group_size: int | None = None, fill_value: float = 0.0) -> list[TensorResult]:
    """:meth:`AbstractDigitalLink.send_tensor` of several payloads, each over its own link
    (e.g. one MCS per device), with the CRC outcomes of all their code blocks drawn at once.

    This is what a system-level simulator does for one slot: every block's outcome comes from
    its own link's curve at its own SNR (Chase combining and block fading as in
    :meth:`~AbstractDigitalLink.send_tensor`), but each HARQ round makes one random draw for
    all pending blocks of all payloads instead of one per payload. The results therefore have
    the same distribution as sending payload after payload, not the same values for a seed
    (the per-payload path also draws the replacement bits that :meth:`send_bits` needs); with
    no block error they are identical.

    Args:
        links: one :class:`AbstractDigitalLink` per payload (links may repeat).
        ts: the payloads (any real tensors).
        snr_db: one SNR (dB, Es/N0) per payload.
        dtype, group_size, fill_value: as :meth:`DigitalLink.send_tensor`.

    Raises:
        ValueError: lengths differ, a link is not an :class:`AbstractDigitalLink`, or any
            per-payload argument is invalid (as :meth:`~DigitalLink.send_tensor` checks it).
    """
    if not (len(links) == len(ts) == len(snr_db)):
        raise ValueError(f"links, ts and snr_db must have one entry per payload, got "
                         f"{len(links)}, {len(ts)} and {len(snr_db)}")
    for link in links:
        if not isinstance(link, AbstractDigitalLink):
            raise ValueError(f"send_tensors needs AbstractDigitalLink links, got "
                             f"{type(link).__name__}")
    if not links:
        return []
    # the checks and float32 rounding of send_tensor's SNR, once for all payloads
    if any(isinstance(s, bool) for s in snr_db):
        raise TypeError(f"snr_db must hold numbers (dB), got {list(snr_db)!r}")
    snrs = links[0]._tensor_snr(torch.tensor([float(s) for s in snr_db]), dtype,
                                fill_value, per_payload=True).tolist()
    payloads, stacked = _payload_values_many(ts, dtype, group_size)
    counts = [-(-nbits // link.block_bits) for link, (_, nbits) in
              zip(links, payloads, strict=True)]
    # every block of every payload: the payload it belongs to
    owner = np.repeat(np.arange(len(links)), counts)
    if any(link._block_fading for link in links):
        ok_np, tx_np = _draw_outcomes_many(links, [link.block_bits for link in links],
                                           owner, np.repeat(np.asarray(snrs), counts))
    else:
        ok_np, tx_np = _draw_payload_outcomes(links, owner, snrs)
    ok, transmissions = torch.from_numpy(ok_np), torch.from_numpy(tx_np)
    if stacked is not None and bool(ok_np.all()) and all_finite(stacked):
        # the common case, every block delivered and every value finite: nothing is lost,
        # so the results are built without a mask per payload (same values as below)
        lost = torch.zeros(stacked.shape, dtype=torch.bool).split(
            [t.shape[0] for t in ts])
        tx_sum = np.bincount(owner, weights=tx_np, minlength=len(links)).astype(
            np.int64).tolist()
        results = []
        start = 0
        for i, (link, t, (values, nbits), n) in enumerate(
                zip(links, ts, payloads, counts, strict=True)):
            k = link.block_bits
            results.append(TensorResult(
                t_hat=values.to(t.device), lost=lost[i].to(t.device),
                block_ok=ok[start:start + n], transmissions=transmissions[start:start + n],
                channel_uses=tx_sum[i] * link.channel_uses_per_block(k), payload_bits=nbits,
                info_bits=n * k, num_lost=0))
            start += n
        return results
    results = []
    start = 0
    for link, t, (values, nbits), n in zip(links, ts, payloads, counts, strict=True):
        block_ok = ok[start:start + n]
        tx = transmissions[start:start + n]
        start += n
        results.append(link._values_result(values, block_ok, tx, nbits, dtype, group_size,
                                           fill_value, t.device))
    return results


def _payload_values_many(ts: Sequence[torch.Tensor], dtype: str, group_size: int | None
                         ) -> tuple[list[tuple[torch.Tensor, int]], torch.Tensor | None]:
    """``([payload_values(t, dtype, group_size) for t in ts], stacked)``, in one call on the
    payloads stacked along their first dimension when that changes nothing: same trailing
    shape, dtype and device, none empty, and every quantization vector inside one row (float
    formats; integer formats with one vector per row or ``group_size`` dividing a row).
    ``stacked``: the values of all payloads in one tensor (theirs are its slices), or None
    when they were computed payload by payload."""
    first = ts[0] if ts else None
    stackable = (
        len(ts) > 1 and isinstance(first, torch.Tensor) and first.dim() >= 1
        and all(isinstance(t, torch.Tensor) and t.shape[1:] == first.shape[1:]
                and t.dtype == first.dtype and t.device == first.device and t.numel() > 0
                for t in ts))
    if stackable and group_size is not None:
        stackable = (isinstance(group_size, int) and not isinstance(group_size, bool)
                     and group_size >= 1 and first[0].numel() % group_size == 0)
    if not stackable:
        return [payload_values(t, dtype, group_size) for t in ts], None
    values, _ = payload_values(torch.cat(list(ts)), dtype, group_size)
    group = group_size or first.shape[-1]  # elements per quantization vector (int formats)
    return [(v, int(payload_bits(t.numel(), dtype, group)))
            for v, t in zip(values.split([t.shape[0] for t in ts]), ts, strict=True)], values


def _draw_payload_outcomes(links: Sequence[AbstractDigitalLink], owner: np.ndarray,
                           snr_db: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_draw_outcomes_many` of payloads over links without block fading, payload
    ``p``'s blocks (``owner == p``) at ``snr_db[p]``: the same draws and outcomes, with one
    remembered curve lookup per (payload, round) instead of one per block (all blocks of a
    payload share their combined SNR in every round)."""
    num_blocks = owner.size
    snr_lin = 10.0 ** (np.asarray(snr_db, dtype=np.float64) / 10.0)
    combined = np.zeros(len(links))
    ok = np.zeros(num_blocks, dtype=bool)
    transmissions = np.zeros(num_blocks, dtype=np.int64)
    pending = np.arange(num_blocks)
    max_tx = np.array([link.max_transmissions for link in links])
    for r in range(int(max_tx.max()) if len(links) else 0):
        pending = pending[max_tx[owner[pending]] > r]  # links may differ in HARQ depth
        if pending.size == 0:
            break
        live = np.unique(owner[pending]).tolist()
        combined[live] += snr_lin[live]
        transmissions[pending] += 1
        bler_of = np.empty(len(links))
        for p in live:
            link = links[p]
            snr_eff_db = 10.0 * math.log10(max(float(combined[p]), 1e-30))
            bler_of[p] = link._bler_one(snr_eff_db, link.block_bits)
        passed = torch.rand(pending.size, dtype=torch.float64).numpy() >= bler_of[
            owner[pending]]
        ok[pending] = passed
        pending = pending[~passed]
    return ok, transmissions


def _draw_outcomes_many(links: Sequence[AbstractDigitalLink], block_bits: Sequence[int],
                        owner: np.ndarray | torch.Tensor, snr: np.ndarray | torch.Tensor
                        ) -> tuple[np.ndarray, np.ndarray]:
    """``(ok, transmissions)`` of blocks of ``block_bits[owner]`` bits sent over
    ``links[owner]`` at ``snr`` (dB, float64 ``[B]``): each HARQ round draws the gains of
    block-fading links, then one uniform number per pending block, compared with the block's
    BLER on its link's curve at the combined SNR (Chase: linear sum of the transmissions'
    SNRs)."""
    # NumPy rather than torch: the arrays hold one entry per code block of one layer's
    # payloads (tens to thousands), where a torch call's dispatch costs more than its work.
    owner_np = owner.numpy() if isinstance(owner, torch.Tensor) else np.asarray(owner)
    snr_np = (snr.numpy() if isinstance(snr, torch.Tensor)
              else np.asarray(snr, dtype=np.float64))
    num_blocks = snr_np.size
    snr_lin = 10.0 ** (snr_np / 10.0)
    combined = np.zeros(num_blocks)
    ok = np.zeros(num_blocks, dtype=bool)
    transmissions = np.zeros(num_blocks, dtype=np.int64)
    pending = np.arange(num_blocks)
    max_tx = np.array([link.max_transmissions for link in links])
    # payloads that share a link and block size form one group (one curve lookup per round)
    groups: dict[tuple[int, int], int] = {}
    heads: list[tuple[AbstractDigitalLink, int]] = []
    group_ids = []
    for link, k in zip(links, block_bits, strict=True):
        g = groups.setdefault((id(link), int(k)), len(groups))
        if g == len(heads):
            heads.append((link, int(k)))
        group_ids.append(g)
    group_of = np.array(group_ids)
    for r in range(int(max_tx.max())):
        pending = pending[max_tx[owner_np[pending]] > r]  # links may differ in HARQ depth
        if pending.size == 0:
            break
        grp = group_of[owner_np[pending]]
        one_group = bool((grp == grp[0]).all())
        sels = ([(*heads[int(grp[0])], slice(None))] if one_group else
                [(*heads[g], grp == g) for g in np.unique(grp).tolist()])
        gain = np.ones(pending.size)
        for link, _, sel in sels:
            if link._block_fading:
                n_sel = pending.size if one_group else int(sel.sum())
                h = link.channel.draw_h((n_sel, 1)).reshape(-1).cpu()
                gain[sel] = h.abs().square().to(torch.float64).numpy()
        combined[pending] += snr_lin[pending] * gain
        transmissions[pending] += 1
        snr_eff_db = 10.0 * np.log10(np.maximum(combined[pending], 1e-30))
        bler = np.empty(pending.size)
        for link, k, sel in sels:
            bler[sel] = link._bler(snr_eff_db[sel], k)
        passed = torch.rand(pending.size, dtype=torch.float64).numpy() >= bler
        ok[pending] = passed
        pending = pending[~passed]
    return ok, transmissions
