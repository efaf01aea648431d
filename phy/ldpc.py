"""A fast CPU decoder for Sionna's 5G LDPC codes.

:class:`CPULDPC5GDecoder` is Sionna's :class:`~sionna.phy.fec.ldpc.LDPC5GDecoder` with only the
message-passing kernel replaced. Everything around it stays Sionna's: rate recovery (the 5G bit
de-interleaver, the punctured ``2Z`` systematic bits, filler bits, shortening), the HARQ
circular-buffer combining of redundancy versions, the pruned parity-check matrix and the
output formatting. Sionna's ``LDPC5GDecoder.call`` hands the reassembled mother-code LLRs to
``LDPCBPDecoder.call``; this class puts :class:`_CompiledLayeredBP` between the two in the
method resolution order, so that call runs the compiled kernel of :mod:`phy._ldpc_kernel`.

Why: Sionna's PyTorch graph decodes 0.04–0.09 Mbit/s per CPU core; the compiled layered kernel
is two to three orders of magnitude faster on the same blocks (``experiments/bench_link.py``).
Sionna's decoder stays the reference (tests compare the two) and the GPU path.

Decoding rules (``cn_update``):

- ``"offset-minsum"`` (default): ``max(min - offset, 0)`` (``offset`` 0.5, Sionna's value).
  Within 0.25 dB of Sionna's flooding sum-product at every modulation and block size tested
  (``tests/test_ldpc_cpu.py``).
- ``"minsum"``: normalized min-sum, ``scale * min`` (``scale`` 0.75 by default). Sensitive to
  the scale: at k = 8448, QPSK, R = 0.37 it loses about 0.3 dB at 0.75 and more at 0.8.
- ``"boxplus"``: exact sum-product (``2 atanh(prod tanh(x / 2))``), about 15x slower.

The schedule is layered (one base-graph row at a time), which converges in about half the
iterations of Sionna's default flooding schedule.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from sionna.phy.fec.ldpc import LDPC5GDecoder, LDPC5GEncoder
from sionna.phy.fec.ldpc.decoding import LDPCBPDecoder

from . import _ldpc_kernel as kernel
from .checks import check_choice, check_positive_int

__all__ = ["CPU_CN_UPDATES", "DEFAULT_CPU_CN_UPDATE", "CPULDPC5GDecoder", "qc_structure"]

#: Check-node rule of :class:`CPULDPC5GDecoder` unless one is given.
DEFAULT_CPU_CN_UPDATE = "offset-minsum"

#: Check-node rules of :class:`CPULDPC5GDecoder` and the Sionna rule built alongside.
CPU_CN_UPDATES = {"minsum": (kernel.CN_MINSUM, "minsum"),
                  "offset-minsum": (kernel.CN_MINSUM, "offset-minsum"),
                  "boxplus": (kernel.CN_BOXPLUS, "boxplus-phi")}


def qc_structure(pcm: np.ndarray | sp.spmatrix, z: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The base graph of a quasi-cyclic parity-check matrix.

    Returns ``(row_ptr, cols, shifts)``: non-zero ``z × z`` block ``e`` of base row ``r``
    (``row_ptr[r] <= e < row_ptr[r + 1]``) sits in base column ``cols[e]`` and is the identity
    cyclically shifted by ``shifts[e]``: lifted row ``r z + i`` checks variable
    ``cols[e] z + (i + shifts[e]) mod z``.

    Raises:
        ValueError: when the matrix is not made of ``z × z`` circulant permutations.
    """
    h = sp.csr_matrix(pcm)
    m, n = h.shape
    if m % z or n % z:
        raise ValueError(f"parity-check matrix {m}x{n} is not a multiple of z={z}")
    coo = h.tocoo()
    rows, cols_all = coo.row.astype(np.int64), coo.col.astype(np.int64)
    br, bc = rows // z, cols_all // z
    shift = (cols_all % z - rows % z) % z
    key = br * (n // z) + bc
    order = np.lexsort((rows % z, key))
    key, shift, ri = key[order], shift[order], rows[order] % z
    uniq, start, count = np.unique(key, return_index=True, return_counts=True)
    if np.any(count != z) or np.any(ri != np.tile(np.arange(z), len(uniq))):
        raise ValueError("parity-check matrix is not quasi-cyclic with circulant permutations "
                         f"of size z={z}")
    block_shift = shift[start]
    if np.any(shift != np.repeat(block_shift, z)):
        raise ValueError(f"parity-check matrix is not quasi-cyclic: its blocks are not cyclic "
                         f"shifts of size z={z}")
    base_rows = uniq // (n // z)
    row_ptr = np.searchsorted(base_rows, np.arange(m // z + 1)).astype(np.int64)
    return row_ptr, (uniq % (n // z)).astype(np.int64), block_shift.astype(np.int64)


class _CompiledLayeredBP(LDPCBPDecoder):
    """The BP kernel of :class:`CPULDPC5GDecoder` (see the module docstring)."""

    def call(self, llr_ch: torch.Tensor, /, *, num_iter: int | None = None,
             msg_v2c: torch.Tensor | None = None) -> torch.Tensor:
        if msg_v2c is not None:
            raise ValueError("msg_v2c: CPULDPC5GDecoder keeps no decoder state; use Sionna's "
                             "LDPC5GDecoder for iterative detection and decoding")
        iters = self._num_iter if num_iter is None else int(num_iter)
        shape = llr_ch.shape
        # Sionna's logits are log p(1)/p(0); the kernel takes log p(0)/p(1).
        llr = (-llr_ch.detach().reshape(-1, shape[-1])).to("cpu", torch.float32).contiguous()
        llr_np = llr.numpy()
        post = np.empty_like(llr_np)
        it_run = np.empty(llr_np.shape[0], dtype=np.int32)
        kernel.KERNELS[self._cn_rule](
            llr_np, self._qc_row_ptr, self._qc_cols, self._qc_shifts, self._qc_z, iters,
            self._scale, self._offset,
            float(self._llr_max if self._llr_max is not None else 1e30), self._early_stop,
            post, it_run)
        self.last_iterations = torch.from_numpy(it_run)
        x = torch.from_numpy(post)
        x = (x <= 0).to(self.dtype) if self._hard_out else -x
        return x.reshape(shape).to(llr_ch.device)


class CPULDPC5GDecoder(LDPC5GDecoder, _CompiledLayeredBP):
    """5G LDPC decoder with Sionna's rate recovery and a compiled layered BP kernel.

    Args:
        encoder: the :class:`~sionna.phy.fec.ldpc.LDPC5GEncoder` of the code.
        cn_update: ``"offset-minsum"`` (default), ``"minsum"`` (normalized) or ``"boxplus"``.
        num_iter: maximum layered iterations.
        scale: normalization of ``"minsum"`` (0 < scale <= 1).
        offset: offset of ``"offset-minsum"`` (>= 0).
        early_stop: stop each block once its hard decisions form a codeword.
        hard_out, return_infobits, harq_mode, llr_max: as in Sionna's ``LDPC5GDecoder``.

    After each call, ``last_iterations`` holds the iterations each block took ``[B]``.
    """

    def __init__(self, encoder: LDPC5GEncoder, cn_update: str = DEFAULT_CPU_CN_UPDATE, *,
                 num_iter: int = 20, scale: float = 0.75, offset: float = 0.5,
                 early_stop: bool = True, hard_out: bool = True, return_infobits: bool = True,
                 harq_mode: bool = False, llr_max: float | None = 20.0) -> None:
        check_choice("cn_update", cn_update, tuple(CPU_CN_UPDATES))
        check_positive_int("num_iter", num_iter, minimum=1, maximum=1000)
        if not 0.0 < scale <= 1.0:
            raise ValueError(f"scale must be in (0, 1], got {scale}")
        if offset < 0.0:
            raise ValueError(f"offset must be >= 0, got {offset}")
        rule, sionna_rule = CPU_CN_UPDATES[cn_update]
        # The layered schedule makes Sionna prune the parity-check matrix to whole z x z
        # blocks, which the kernel needs; Sionna's own layered machinery is built but unused.
        super().__init__(encoder, cn_update=sionna_rule, cn_schedule="layered",
                         hard_out=hard_out, return_infobits=return_infobits,
                         num_iter=num_iter, llr_max=llr_max, harq_mode=harq_mode, device="cpu")
        self._cn_rule = rule
        self._scale = float(scale) if cn_update == "minsum" else 1.0
        self._offset = float(offset) if cn_update == "offset-minsum" else 0.0
        self._early_stop = bool(early_stop)
        self._qc_z = int(encoder.z)
        self._qc_row_ptr, self._qc_cols, self._qc_shifts = qc_structure(self.pcm, self._qc_z)
        self.last_iterations = torch.zeros(0, dtype=torch.int32)
