"""The compiled layered kernel against a plain per-check implementation of the same algorithm.

The reference below walks the lifted parity checks one at a time, with explicit variable
indices and "all other edges" minima and sign products: no vectors, no cyclic views, no
min-sum shortcut. After a fixed number of layered iterations the kernel's posteriors must
equal it (min-sum: to float32 rounding; boxplus: 1e-4 relative, since phi's sums may be
reassociated).
"""

from __future__ import annotations

import numpy as np
import pytest
from sionna.phy.fec.ldpc import LDPC5GEncoder

from phy import CPULDPC5GDecoder
from phy import _ldpc_kernel as kernel
from phy.ldpc import qc_structure


def _phi(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, kernel._PHI_MIN, kernel._PHI_MAX)
    return -np.log(np.tanh(0.5 * x))


def _reference(llr: np.ndarray, row_ptr: np.ndarray, cols: np.ndarray, shifts: np.ndarray,
               z: int, num_iter: int, rule: int, scale: float, offset: float,
               llr_max: float) -> np.ndarray:
    post = np.clip(llr.astype(np.float64), -llr_max, llr_max)
    c2v = np.zeros((cols.shape[0], z))
    for _ in range(num_iter):
        for r in range(row_ptr.shape[0] - 1):
            edges = np.arange(row_ptr[r], row_ptr[r + 1])
            for i in range(z):
                v = cols[edges] * z + (i + shifts[edges]) % z
                t = post[v] - c2v[edges, i]
                neg = t < 0
                for j, e in enumerate(edges):
                    others = np.delete(np.arange(len(edges)), j)
                    if rule == kernel.CN_MINSUM:
                        mag = scale * max(np.abs(t[others]).min() - offset, 0.0)
                    else:
                        mag = _phi(max(_phi(np.abs(t[others])).sum(), 0.0))
                    mag = min(mag, llr_max)
                    c = -mag if neg[others].sum() % 2 else mag
                    c2v[e, i] = c
                    post[v[j]] = t[j] + c
    return post


@pytest.mark.parametrize("rule, scale, offset", [(kernel.CN_MINSUM, 1.0, 0.5),
                                                 (kernel.CN_MINSUM, 0.75, 0.0),
                                                 (kernel.CN_BOXPLUS, 1.0, 0.0)])
def test_kernel_equals_a_per_check_reference(rule: int, scale: float, offset: float) -> None:
    enc = LDPC5GEncoder(40, 100)                   # base graph 2, z = 4: every shift matters
    dec = CPULDPC5GDecoder(enc)
    row_ptr, cols, shifts = dec._qc_row_ptr, dec._qc_cols, dec._qc_shifts
    z = dec._qc_z
    assert row_ptr.shape[0] > 2 and np.unique(shifts % z).size > 1
    n = int(cols.max() + 1) * z
    rng = np.random.default_rng(0)
    # noisy LLRs with ties in magnitude (rounded to 0.5), so that two edges often share the
    # row minimum: the case the argmin-free update must get right
    llr = np.round(rng.normal(1.0, 2.5, size=(3, n)) * 2) / 2
    llr = llr.astype(np.float32)
    out = np.empty_like(llr)
    iters = np.empty(3, dtype=np.int32)
    kernel.KERNELS[rule](llr, row_ptr, cols, shifts, z, 4, scale, offset, 20.0, False, out,
                         iters)
    assert (iters == 4).all()
    for b in range(3):
        ref = _reference(llr[b], row_ptr, cols, shifts, z, 4, rule, scale, offset, 20.0)
        tol = 1e-5 if rule == kernel.CN_MINSUM else 1e-4
        np.testing.assert_allclose(out[b], ref, rtol=tol, atol=tol)


def test_early_stop_ends_on_a_codeword() -> None:
    """With early stopping, a block that stops before the limit has hard decisions that
    satisfy every parity check of the matrix."""
    enc = LDPC5GEncoder(200, 400)
    dec = CPULDPC5GDecoder(enc)
    row_ptr, cols, shifts, z = dec._qc_row_ptr, dec._qc_cols, dec._qc_shifts, dec._qc_z
    h = dec.pcm.toarray() if hasattr(dec.pcm, "toarray") else np.asarray(dec.pcm)
    assert (qc_structure(h, z)[1] == cols).all()
    rng = np.random.default_rng(1)
    # the all-zero codeword on BPSK + AWGN at Es/N0 = 3 dB: consistent LLRs, N(4, 8)
    llr = rng.normal(4.0, 8.0 ** 0.5, size=(16, h.shape[1])).astype(np.float32)
    out = np.empty_like(llr)
    iters = np.empty(16, dtype=np.int32)
    kernel.KERNELS[kernel.CN_MINSUM](llr, row_ptr, cols, shifts, z, 50, 1.0, 0.5, 20.0, True,
                                     out, iters)
    stopped = iters < 50
    assert stopped.sum() >= 12
    hard = (out <= 0).astype(np.int64)
    syndrome = (hard[stopped] @ h.T.astype(np.int64)) % 2
    assert not syndrome.any()
