"""semcom.wdmoe_link: an MoE language model split between a base station and devices, its
hidden states carried over the simulated physical layer of :mod:`phy`.

The BS runs embeddings, attention, norms, the routers and the LM head; expert ``e`` runs on
device ``expert_map[e]``. Every MoE layer sends each used device one downlink payload (the
expert inputs of its rows) and receives one uplink payload (the expert outputs), through an
ideal (Shannon-rate), digital (LDPC, MCS, HARQ) or analog transport. Policies drop experts
whose gate weight is not worth their latency and split the bandwidth.

Usage::

    from wdmoe_link import WDMoESystem, default_topology, load_moe, tiny_task

    model = load_moe("tiny")
    system = WDMoESystem(model, default_topology(), transports="digital:bf16",
                         policy="wlr:0.2")
    report = system.evaluate(tiny_task("test", size=50))
    print(report.to_dict())

Modules: :mod:`.routing` (routing, expert banks, dispatch interface), :mod:`.split` (split
execution of HF MoE models), :mod:`.tasks` and :mod:`.tiny` (offline tasks, decoding, the
shipped tiny model), :mod:`.topology` and :mod:`.latency` (cell and latency model),
:mod:`.policies` and :mod:`.link_aware` (expert selection and bandwidth), :mod:`.transports`
(payloads over the links), :mod:`.system` (the whole split system and its reports),
:mod:`.split_layer` (the layer-split baseline), :mod:`.text` (the text corpus and its scoring),
:mod:`.harness` (lm-evaluation-harness) and :mod:`.edge` (batched LLM serving at edge nodes
and its schedulers).
"""

from __future__ import annotations

from .denoise import HiddenStateCDDM, load_hidden_cddm, save_hidden_cddm
from .latency import AirtimeModel, DeviceCost, ShannonAirtime, equal_split, optimal_bandwidth
from .link_aware import LinkAware
from .policies import (
    WLR,
    Decision,
    Joint,
    Policy,
    TopK,
    available_policies,
    parse_policy,
    register_policy,
)
from .routing import Dispatcher, ExpertBank, LocalDispatcher, Routing, TopNDispatcher
from .split import NotMoECheckpointError, SplitMoE, UnsupportedMoEError, load_moe
from .system import LayerRecord, Report, StepRecord, WDMoESystem
from .tasks import ArithmeticTask, ByteTokenizer, EvalResult, evaluate_accuracy, generate_greedy
from .tiny import TINY_DIR, build_tiny_model, tiny_task
from .topology import Device, Topology, default_topology, homogeneous_topology
from .transports import (
    AnalogTransport,
    Delivery,
    DigitalTransport,
    IdealTransport,
    LinkPlan,
    Transport,
    available_denoisers,
    parse_transport,
    register_denoiser,
)

__all__ = [
    "TINY_DIR",
    "WLR",
    "AirtimeModel",
    "AnalogTransport",
    "ArithmeticTask",
    "ByteTokenizer",
    "Decision",
    "Delivery",
    "Device",
    "DeviceCost",
    "DigitalTransport",
    "Dispatcher",
    "EvalResult",
    "ExpertBank",
    "HiddenStateCDDM",
    "IdealTransport",
    "Joint",
    "LayerRecord",
    "LinkAware",
    "LinkPlan",
    "LocalDispatcher",
    "NotMoECheckpointError",
    "Policy",
    "Report",
    "Routing",
    "ShannonAirtime",
    "SplitMoE",
    "StepRecord",
    "TopK",
    "TopNDispatcher",
    "Topology",
    "Transport",
    "UnsupportedMoEError",
    "WDMoESystem",
    "available_denoisers",
    "available_policies",
    "build_tiny_model",
    "default_topology",
    "equal_split",
    "evaluate_accuracy",
    "generate_greedy",
    "homogeneous_topology",
    "load_hidden_cddm",
    "load_moe",
    "optimal_bandwidth",
    "parse_policy",
    "parse_transport",
    "register_denoiser",
    "register_policy",
    "save_hidden_cddm",
    "tiny_task",
]
