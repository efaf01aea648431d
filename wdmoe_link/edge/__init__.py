"""semcom.wdmoe_link.edge: batched LLM serving at edge nodes, its requests and links over
:mod:`phy`, and the schedulers that choose each node's batch.

One concept per module: :mod:`.model_shape` (FLOPs, bytes and KV cache of a decoder from its
config), :mod:`.request` (a user's request), :mod:`.node` (an edge node and its quantization
levels), :mod:`.quantization` (quantized weights and their measured accuracy), :mod:`.links`
(uplink/downlink airtime from ``phy`` or Shannon), :mod:`.cost` (a batch's latency, memory and
feasibility), :mod:`.schedulers` (OT, OT-GAH, brute force, baselines) and :mod:`.instances`
(seeded random instances).

Usage::

    from wdmoe_link.edge import gah_schedule, random_instance

    requests, nodes = random_instance(num_users=40, num_nodes=3, seed=0)
    assignment = gah_schedule(requests, nodes)
    print(assignment.throughput, [s.batch for s in assignment.schedules])
"""

from __future__ import annotations

from .cost import BatchCost, NodeProblem
from .links import BITS_PER_TOKEN, LINK_MODELS, EdgeLinks, min_max_split
from .model_shape import LLAMA2_7B, DecoderShape
from .node import EdgeNode, QuantLevel
from .quantization import measure_levels, measured_levels, quantize_weights
from .request import Request
from .schedulers import (
    BRUTE_FORCE_MAX_USERS,
    BRUTE_FORCE_MAX_USERS_ASSIGNMENT,
    OT_ORDERS,
    SCHEDULERS,
    Assignment,
    Schedule,
    available_schedulers,
    brute_force_assignment,
    brute_force_schedule,
    gah_schedule,
    greedy_assignment,
    ot_schedule,
    run_scheduler,
    sweep_schedule,
)

__all__ = [
    "BITS_PER_TOKEN",
    "BRUTE_FORCE_MAX_USERS",
    "BRUTE_FORCE_MAX_USERS_ASSIGNMENT",
    "LINK_MODELS",
    "LLAMA2_7B",
    "OT_ORDERS",
    "SCHEDULERS",
    "Assignment",
    "BatchCost",
    "DecoderShape",
    "EdgeLinks",
    "EdgeNode",
    "NodeProblem",
    "QuantLevel",
    "Request",
    "Schedule",
    "available_schedulers",
    "brute_force_assignment",
    "brute_force_schedule",
    "gah_schedule",
    "greedy_assignment",
    "measure_levels",
    "measured_levels",
    "min_max_split",
    "ot_schedule",
    "quantize_weights",
    "random_instance",
    "run_scheduler",
    "sweep_schedule",
]

from .instances import random_instance
