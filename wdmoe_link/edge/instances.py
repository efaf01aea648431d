"""Seeded random instances of the edge batching problem.

Parameter ranges follow the papers (the goodput follow-up of "Beyond the Cloud"): prompts of
{128, 256, 512} tokens, outputs of lambda times a maximum, lambda in {0.5, 0.75, 1}, maximum in
{128, 256, 512, 1024}, users uniform within 300 m. Deadlines, accuracy floors and node hardware
are ours (the papers do not publish them): deadlines uniform in ``deadline_s``; each user's
floor is the accuracy of one of the node's levels, drawn uniformly, so a third of the users
need 16-bit weights with the default three levels; nodes drawn from the hardware choices
below, one at the centre or several on a ring of 150 m.
"""

from __future__ import annotations

import math
import random
from typing import Any

from .node import EdgeNode, QuantLevel
from .request import Request

__all__ = [
    "CELL_RADIUS_M",
    "MAX_OUTPUT_TOKENS",
    "OUTPUT_FRACTIONS",
    "PROMPT_TOKENS",
    "random_instance",
]

PROMPT_TOKENS: tuple[int, ...] = (128, 256, 512)
OUTPUT_FRACTIONS: tuple[float, ...] = (0.5, 0.75, 1.0)
MAX_OUTPUT_TOKENS: tuple[int, ...] = (128, 256, 512, 1024)
CELL_RADIUS_M: float = 300.0
#: Node hardware choices: memory (bytes), FLOP/s, memory bandwidth (byte/s).
NODE_MEMORY_BYTES: tuple[float, ...] = (24e9, 40e9, 80e9)
NODE_FLOPS: tuple[float, ...] = (50e12, 100e12, 200e12)
NODE_MEMORY_BANDWIDTH: tuple[float, ...] = (0.5e12, 1.0e12, 2.0e12)
NODE_RING_RADIUS_M: float = 150.0


def random_instance(num_users: int, num_nodes: int = 1, seed: int = 0, *,
                    deadline_s: tuple[float, float] = (5.0, 30.0),
                    bandwidth_hz: float | None = None,
                    levels: tuple[QuantLevel, ...] | None = None,
                    node_overrides: dict[str, Any] | None = None,
                    ) -> tuple[list[Request], list[EdgeNode]]:
    """``num_users`` requests and ``num_nodes`` nodes, the same for the same arguments.

    Args:
        num_users: requests (>= 0).
        num_nodes: edge nodes (>= 1).
        seed: the random seed.
        deadline_s: (low, high) of the uniform deadlines (s).
        bandwidth_hz: UL and DL bandwidth of every node (Hz; None: the node default).
        levels: quantization levels of every node (None: the measured table).
        node_overrides: EdgeNode fields set on every node (e.g. ``{"memory_bytes": 40e9}``).
    """
    if isinstance(num_users, bool) or not isinstance(num_users, int) or num_users < 0:
        raise ValueError(f"num_users must be an int >= 0, got {num_users!r}")
    if isinstance(num_nodes, bool) or not isinstance(num_nodes, int) or num_nodes < 1:
        raise ValueError(f"num_nodes must be an int >= 1, got {num_nodes!r}")
    lo, hi = (float(x) for x in deadline_s)
    if not (0.0 < lo <= hi and math.isfinite(hi)):
        raise ValueError(f"deadline_s must be (low, high) with 0 < low <= high s, got "
                         f"{deadline_s!r}")
    # separate streams: the nodes do not depend on num_users, and the first n users of an
    # instance are the same for every num_users >= n (curves over users are nested)
    node_rng, user_rng = random.Random(f"{seed}:nodes"), random.Random(f"{seed}:users")
    extra: dict[str, Any] = dict(node_overrides or {})
    if bandwidth_hz is not None:
        extra.update(ul_bandwidth_hz=bandwidth_hz, dl_bandwidth_hz=bandwidth_hz)
    if levels is not None:
        extra["levels"] = tuple(levels)
    nodes = []
    for k in range(num_nodes):
        if num_nodes == 1:
            pos = (0.0, 0.0)
        else:
            a = 2.0 * math.pi * k / num_nodes
            pos = (NODE_RING_RADIUS_M * math.cos(a), NODE_RING_RADIUS_M * math.sin(a))
        fields = {"memory_bytes": node_rng.choice(NODE_MEMORY_BYTES),
                  "compute_flops": node_rng.choice(NODE_FLOPS),
                  "memory_bandwidth_bytes_s": node_rng.choice(NODE_MEMORY_BANDWIDTH),
                  "position_m": pos, "name": f"EN{k}", **extra}
        nodes.append(EdgeNode(**fields))
    accuracies = sorted({lv.accuracy for lv in nodes[0].levels})
    requests = []
    for _ in range(num_users):
        r = CELL_RADIUS_M * math.sqrt(user_rng.random())
        a = 2.0 * math.pi * user_rng.random()
        out = max(1, round(user_rng.choice(OUTPUT_FRACTIONS)
                           * user_rng.choice(MAX_OUTPUT_TOKENS)))
        requests.append(Request(prompt_tokens=user_rng.choice(PROMPT_TOKENS), output_tokens=out,
                                deadline_s=user_rng.uniform(lo, hi),
                                accuracy_floor=user_rng.choice(accuracies),
                                position_m=(r * math.cos(a), r * math.sin(a))))
    return requests, nodes
