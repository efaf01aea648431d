"""Latency and memory of a batch of requests at one edge node, and its feasibility test.

A batch ``S`` served at quantization level ``q`` takes, for every member,

    T(S) = T_UL(S) + T_cmp(S, q) + T_DL(S)
    T_UL = sum_{n in S} c_n^UL,   T_DL = sum_{n in S} c_n^DL        (min-max bandwidth split)
    T_cmp = max(F_pre / F, W_q / BW) + max(F_dec / F, B_dec / BW)    (roofline per phase)

with ``c_n`` the full-band airtimes (:mod:`wdmoe_link.edge.links`), the prefill and decode FLOPs
and decode bytes of :class:`~wdmoe_link.edge.DecoderShape` at batch ``b = |S|``, padded prompt
``s = max prompt`` and batch output ``o = max output``. ``S`` is feasible at ``q`` when

* every member accepts ``q`` (``accuracy_floor <= accuracy(q)``);
* weights and KV cache fit: ``W_q + KV(b, s, o) <= memory``;
* ``T(S) <= deadline_n`` for every member, i.e. ``T(S) <= min deadline``.

Every term grows when a user joins, and the minimum deadline can only fall, so a superset of
an infeasible batch is infeasible: the property tree search prunes on. Latencies in s, memory
in bytes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .links import EdgeLinks
from .node import EdgeNode, QuantLevel
from .request import Request

__all__ = ["BatchCost", "NodeProblem"]


@dataclass(frozen=True)
class BatchCost:
    """The cost of one batch at one level (s, bytes) and whether it is feasible."""

    feasible: bool
    reason: str
    latency_s: float
    uplink_s: float
    compute_s: float
    downlink_s: float
    memory_bytes: float


class NodeProblem:
    """One node's view of a set of requests: per-request constants and the batch test.

    Args:
        requests: the requests (indices into this sequence name them).
        node: the edge node.
        links: the rate model of the uplink and downlink.
    """

    def __init__(self, requests: Sequence[Request], node: EdgeNode,
                 links: EdgeLinks | None = None) -> None:
        if not isinstance(node, EdgeNode):
            raise TypeError(f"node must be an EdgeNode, got {type(node).__name__}")
        for i, r in enumerate(requests):
            if not isinstance(r, Request):
                raise TypeError(f"requests[{i}] must be a Request, got {type(r).__name__}")
        self.requests = tuple(requests)
        self.node = node
        self.links = links or EdgeLinks()
        self.ul_s, self.dl_s = self.links.airtimes(self.requests, node)
        self.prompt = [r.prompt_tokens for r in self.requests]
        self.output = [r.output_tokens for r in self.requests]
        self.deadline = [r.deadline_s for r in self.requests]
        self.floor = [r.accuracy_floor for r in self.requests]
        m = node.model
        self._kv_per_token = m.kv_bytes_per_token(node.kv_bits)
        self._weights = {lv: m.weight_bytes(lv.weight_bits) for lv in node.levels}

    def __len__(self) -> int:
        return len(self.requests)

    # ---------------------------------------------------------------------------- terms

    def compute_s(self, batch: int, prompt_tokens: int, output_tokens: int,
                  level: QuantLevel) -> float:
        """Prefill + decode time (s) of a batch at ``level`` (roofline per phase)."""
        node, m = self.node, self.node.model
        f, bw = node.compute_flops, node.memory_bandwidth_bytes_s
        w = self._weights[level]
        pre = max(m.prefill_flops(batch, prompt_tokens) / f, w / bw)
        steps = max(output_tokens - 1, 0)
        dec_bytes = steps * (w + batch * (prompt_tokens + output_tokens / 2.0)
                             * self._kv_per_token)
        dec = max(m.decode_flops(batch, prompt_tokens, output_tokens) / f, dec_bytes / bw)
        return pre + dec

    def memory_bytes(self, batch: int, prompt_tokens: int, output_tokens: int,
                     level: QuantLevel) -> float:
        """Weights at ``level`` plus the batch's KV cache (bytes)."""
        return self._weights[level] + batch * (prompt_tokens + output_tokens) \
            * self._kv_per_token

    def fits(self, batch: int, ul_s: float, dl_s: float, prompt_tokens: int,
             output_tokens: int, min_deadline_s: float, level: QuantLevel) -> bool:
        """The feasibility test on a batch's aggregates (the schedulers' inner loop)."""
        if self.memory_bytes(batch, prompt_tokens, output_tokens, level) \
                > self.node.memory_bytes:
            return False
        t = ul_s + dl_s
        if t > min_deadline_s:
            return False
        return t + self.compute_s(batch, prompt_tokens, output_tokens, level) <= min_deadline_s

    def serves(self, index: int, level: QuantLevel) -> bool:
        """Request ``index`` accepts ``level`` and its links can carry it."""
        return (self.floor[index] <= level.accuracy and math.isfinite(self.ul_s[index])
                and math.isfinite(self.dl_s[index]))

    # ---------------------------------------------------------------------------- a batch

    def evaluate(self, batch: Iterable[int], level: QuantLevel) -> BatchCost:
        """The full cost of ``batch`` (request indices) at ``level``, with the first violated
        constraint as ``reason`` ("" when feasible)."""
        idx = sorted(set(int(i) for i in batch))
        if any(i < 0 or i >= len(self) for i in idx):
            raise ValueError(f"batch holds indices outside [0, {len(self) - 1}]: {idx}")
        if level not in self._weights:
            raise ValueError(f"level {level} is not one of the node's levels {self.node.levels}")
        if not idx:
            return BatchCost(True, "", 0.0, 0.0, 0.0, 0.0, 0.0)
        b = len(idx)
        s = max(self.prompt[i] for i in idx)
        o = max(self.output[i] for i in idx)
        ul = sum(self.ul_s[i] for i in idx)
        dl = sum(self.dl_s[i] for i in idx)
        cmp = self.compute_s(b, s, o, level)
        mem = self.memory_bytes(b, s, o, level)
        lat = ul + cmp + dl
        reason = ""
        low = [i for i in idx if self.floor[i] > level.accuracy]
        dead = [i for i in idx if not (math.isfinite(self.ul_s[i])
                                       and math.isfinite(self.dl_s[i]))]
        if low:
            reason = (f"accuracy: requests {low} need more than {level.accuracy:.4f} "
                      f"({level.weight_bits:g}-bit weights)")
        elif dead:
            reason = f"link: no MCS meets the BLER target for requests {dead}"
        elif mem > self.node.memory_bytes:
            reason = (f"memory: {mem / 1e9:.2f} GB of weights and KV cache > "
                      f"{self.node.memory_bytes / 1e9:.2f} GB")
        elif lat > min(self.deadline[i] for i in idx):
            reason = (f"deadline: batch latency {lat:.3f} s > the tightest deadline "
                      f"{min(self.deadline[i] for i in idx):.3f} s")
        return BatchCost(reason == "", reason, lat, ul, cmp, dl, mem)
