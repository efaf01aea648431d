"""Compiled layered belief propagation for quasi-cyclic LDPC codes (numba).

Why this is written by hand: Sionna's ``LDPC5GDecoder`` is a batched PyTorch graph of gathers
and scatters over every edge. On a CPU it decodes 0.04–0.09 Mbit/s per core (k = 1024, 20
iterations), so every digital experiment waits on it. This kernel runs the same code (the
parity-check matrix Sionna builds) as a layered decoder over the base graph: for each block row
the ``Z`` parity checks of its lifted rows are independent, so their messages are processed as
contiguous vectors of length ``Z`` (a cyclic shift of the posterior is two contiguous slices),
which the compiler turns into SIMD loops. Blocks are decoded in parallel threads, each with its
own edge memory that fits in the cache, and a block stops after the first iteration that ends
with hard decisions satisfying every check (a check that gives up at the first unsatisfied
block row, so it costs little before convergence and saves the confirming iteration after).

Two rules keep the loops vectorized. Every inner loop indexes views (``post[a:b]``) by its own
loop counter only: an index computed from loaded values (``post[base + s + i]``) makes numba
emit a negative-index wrap-around per element, which stops SIMD (2.4x slower end to end).
And min-sum keeps no argmin: the edge whose magnitude equals the row minimum receives the
second minimum, which is the same message (on ties both minima are equal).

Conventions: LLRs here are ``log p(0) / p(1)`` (positive means bit 0; a hard decision is 1
where the LLR is <= 0, as in Sionna). The decoder class in :mod:`phy.ldpc` converts from
Sionna's logits.
"""

from __future__ import annotations

import numba
import numpy as np

#: Check-node rules: normalized/offset min-sum, and exact sum-product (boxplus).
CN_MINSUM = 0
CN_BOXPLUS = 1

# phi(x) = -log(tanh(x / 2)) is its own inverse; arguments are kept in [_PHI_MIN, _PHI_MAX]
# so that phi stays finite (phi(_PHI_MIN) ~ 16.6, phi(_PHI_MAX) ~ 1.6e-7).
_PHI_MIN = np.float32(1.2e-7)
_PHI_MAX = np.float32(16.6)


@numba.njit(inline="always", fastmath=True, cache=True)
def _phi(x: float) -> float:
    x = min(max(x, _PHI_MIN), _PHI_MAX)
    return -np.log(np.tanh(np.float32(0.5) * x))


@numba.njit(inline="always", fastmath=True, cache=True)
def _gather_minus(post: np.ndarray, base: int, s: int, z: int, c: np.ndarray,
                  dst: np.ndarray) -> None:
    """``dst[i] = post[base + (i + s) % z] - c[i]`` as two contiguous loops over views."""
    head = z - s
    src_a = post[base + s:base + z]
    src_b = post[base:base + s]
    c_b = c[head:]
    dst_b = dst[head:]
    for i in range(head):
        dst[i] = src_a[i] - c[i]
    for i in range(s):
        dst_b[i] = src_b[i] - c_b[i]


@numba.njit(inline="always", fastmath=True, cache=True)
def _scatter(src: np.ndarray, base: int, s: int, z: int, post: np.ndarray) -> None:
    """``post[base + (i + s) % z] = src[i]`` as two contiguous loops over views."""
    head = z - s
    dst_a = post[base + s:base + z]
    dst_b = post[base:base + s]
    src_b = src[head:]
    for i in range(head):
        dst_a[i] = src[i]
    for i in range(s):
        dst_b[i] = src_b[i]


@numba.njit(inline="always", fastmath=True, cache=True)
def _is_codeword(post: np.ndarray, row_ptr: np.ndarray, cols: np.ndarray, shifts: np.ndarray,
                 z: int, par: np.ndarray) -> bool:
    """Whether the hard decisions of ``post`` satisfy every check (``par``: scratch ``[z]``).

    Stops at the first unsatisfied block row, so a block far from a codeword costs about one
    row; a block that has just converged is confirmed here instead of by one more iteration
    without flips."""
    zero = np.float32(0.0)
    one = np.float32(1.0)
    for r in range(row_ptr.shape[0] - 1):
        for i in range(z):
            par[i] = one
        for e in range(row_ptr[r], row_ptr[r + 1]):
            base = cols[e] * z
            s = shifts[e]
            head = z - s
            src_a = post[base + s:base + z]
            src_b = post[base:base + s]
            par_b = par[head:]
            for i in range(head):
                par[i] = -par[i] if src_a[i] <= zero else par[i]
            for i in range(s):
                par_b[i] = -par_b[i] if src_b[i] <= zero else par_b[i]
        bad = zero
        for i in range(z):
            bad += one if par[i] < zero else zero
        if bad > zero:
            return False
    return True


def _build_kernel(cn_rule: int):
    """The compiled decoder for one check-node rule.

    The rule is a closure constant, so the compiler removes the branch on it: a run-time
    branch inside the edge loops stops their vectorization (about 13x slower)."""

    @numba.njit(parallel=True, fastmath=True, cache=True)
    def decode_layered(llr: np.ndarray, row_ptr: np.ndarray, cols: np.ndarray,
                       shifts: np.ndarray, z: int, num_iter: int, scale: float, offset: float,
                       llr_max: float, early_stop: bool, out: np.ndarray,
                       iterations: np.ndarray) -> None:
        """Decode every row of ``llr`` into ``out`` (posterior LLRs).

        Args:
            llr: channel LLRs ``[B, N]`` float32, ``N = nb * z``.
            row_ptr: ``[mb + 1]`` start of each base-graph row in ``cols``/``shifts``.
            cols: base-graph column of each non-zero block.
            shifts: cyclic shift of each non-zero block: lifted row ``r * z + i`` checks
                variable ``cols[e] * z + (i + shifts[e]) % z``.
            z: lifting size.
            num_iter: maximum layered iterations (one iteration visits every block row).
            scale, offset: min-sum magnitude ``scale * max(min - offset, 0)`` (unused by the
                exact rule).
            llr_max: clipping of channel LLRs and check-to-variable messages.
            early_stop: stop a block after the first iteration that ends on a codeword (its
                hard decisions satisfy every check).
            out: posterior LLRs ``[B, N]`` float32, written.
            iterations: iterations run per block ``[B]`` int32, written.
        """
        num_blocks, n = llr.shape
        mb = row_ptr.shape[0] - 1
        num_edge_blocks = cols.shape[0]
        max_deg = 0
        for r in range(mb):
            max_deg = max(max_deg, row_ptr[r + 1] - row_ptr[r])
        big = np.float32(3.0e38)
        zero = np.float32(0.0)
        one = np.float32(1.0)
        lmax = np.float32(llr_max)
        sc = np.float32(scale)
        off = np.float32(offset)
        for b in numba.prange(num_blocks):
            post = np.empty(n, dtype=np.float32)
            for v in range(n):
                post[v] = min(max(llr[b, v], -lmax), lmax)
            c2v = np.zeros((num_edge_blocks, z), dtype=np.float32)
            t = np.empty((max_deg, z), dtype=np.float32)   # variable-to-check messages
            min1 = np.empty(z, dtype=np.float32)   # smallest |t| of each check (boxplus: phi sum)
            min2 = np.empty(z, dtype=np.float32)   # second smallest |t|
            mag1 = np.empty(z, dtype=np.float32)   # outgoing magnitudes from min1 and min2
            mag2 = np.empty(z, dtype=np.float32)
            sgn = np.empty(z, dtype=np.float32)    # product of the signs of t
            par = np.empty(z, dtype=np.float32)    # syndrome scratch of _is_codeword
            new = np.empty(z, dtype=np.float32)    # updated posteriors of one block column
            done_iter = num_iter
            for it in range(num_iter):
                for r in range(mb):
                    e0 = row_ptr[r]
                    deg = row_ptr[r + 1] - e0
                    for i in range(z):
                        min1[i] = big if cn_rule == CN_MINSUM else zero
                        min2[i] = big
                        sgn[i] = one
                    for j in range(deg):
                        e = e0 + j
                        tj = t[j]
                        _gather_minus(post, cols[e] * z, shifts[e], z, c2v[e], tj)
                        for i in range(z):
                            m = tj[i]
                            sgn[i] = -sgn[i] if m < zero else sgn[i]
                            a = abs(m)
                            if cn_rule == CN_MINSUM:
                                min2[i] = min(min2[i], max(min1[i], a))
                                min1[i] = min(min1[i], a)
                            else:
                                min1[i] += _phi(a)  # boxplus: min1 holds the row's phi sum
                    if cn_rule == CN_MINSUM:
                        for i in range(z):
                            mag1[i] = min(sc * max(min1[i] - off, zero), lmax)
                            mag2[i] = min(sc * max(min2[i] - off, zero), lmax)
                    for j in range(deg):
                        e = e0 + j
                        tj = t[j]
                        ce = c2v[e]
                        for i in range(z):
                            m = tj[i]
                            if cn_rule == CN_MINSUM:
                                mag = mag2[i] if abs(m) == min1[i] else mag1[i]
                            else:
                                mag = min(_phi(max(min1[i] - _phi(abs(m)), zero)), lmax)
                            neg = (sgn[i] < zero) != (m < zero)
                            c = -mag if neg else mag
                            ce[i] = c
                            new[i] = m + c
                        _scatter(new, cols[e] * z, shifts[e], z, post)
                if early_stop and _is_codeword(post, row_ptr, cols, shifts, z, par):
                    done_iter = it + 1
                    break
            for v in range(n):
                out[b, v] = post[v]
            iterations[b] = done_iter

    return decode_layered


#: ``KERNELS[cn_rule](llr, row_ptr, cols, shifts, z, num_iter, scale, offset, llr_max,
#: early_stop, out, iterations)``: see :func:`_build_kernel`.
KERNELS = {CN_MINSUM: _build_kernel(CN_MINSUM), CN_BOXPLUS: _build_kernel(CN_BOXPLUS)}
