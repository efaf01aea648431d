"""Split inference at a layer boundary (the baseline of the expert split): exactness with
ideal links, the payload per token, degradation on noisy links, bad input, and its rows in
``semcom wdmoe``."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from wdmoe_link import default_topology, load_moe, tiny_task
from wdmoe_link.split_layer import SplitAtLayer, parse_split_baseline


@pytest.fixture(scope="module")
def model():
    return load_moe("tiny")


def test_ideal_split_equals_the_unsplit_model(model) -> None:
    """Ideal links carry the activation exactly: logits equal bit for bit, at every cut."""
    x = torch.randint(0, 250, (2, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = model(x).logits
        for cut in range(1, model.config.num_hidden_layers):
            with SplitAtLayer(model, cut, default_topology(4, seed=0), "ideal"):
                out = model(x).logits
            assert torch.equal(out, ref)
        assert torch.equal(model(x).logits, ref)  # the hook is gone after the block


def test_payload_per_token_and_latency(model) -> None:
    """One row of D values per token crosses once per forward: 16 D bits per generated token
    in bf16 on ideal links, the same at every cut; the latency grows as the SNR falls."""
    task = tiny_task("test", size=6)
    d = model.config.hidden_size
    reports = {}
    for snr in (0.0, 20.0):
        topo = default_topology(4, seed=0, link_snr_db=snr)
        reports[snr] = SplitAtLayer(model, 2, topo, "ideal").evaluate(task)
    r = reports[20.0]
    assert r.bits_ul_per_token == 16 * d and r.bits_dl_per_token == 0
    assert r.accuracy == 1.0 and r.experts_lost == 0 and r.policy == "split:2"
    assert reports[0.0].latency_per_token_mean_s > r.latency_per_token_mean_s
    # a digital link quantized to int4 at 0 dB loses rows and accuracy; at 30 dB none
    bad = SplitAtLayer(model, 2, default_topology(4, seed=0, link_snr_db=-5.0),
                       "digital:int4").evaluate(tiny_task("test", size=20))
    good = SplitAtLayer(model, 2, default_topology(4, seed=0, link_snr_db=30.0),
                        "digital:int4").evaluate(tiny_task("test", size=20))
    assert bad.experts_lost > 0 and bad.accuracy < good.accuracy
    assert good.experts_lost == 0


def test_bad_input(model) -> None:
    topo = default_topology(4, seed=0)
    with pytest.raises(ValueError, match=r"cut must be an int in \[1, 3\]"):
        SplitAtLayer(model, 4, topo)
    with pytest.raises(ValueError, match="device must be an int"):
        SplitAtLayer(model, 1, topo, device=9)
    with pytest.raises(ValueError, match="analog"):
        SplitAtLayer(model, 1, topo, "analog+cddm")
    with pytest.raises(ValueError, match="split:<cut>"):
        parse_split_baseline("layer:2")


def test_wdmoe_table_holds_the_split_baseline(tmp_path: Path) -> None:
    from experiments.recipes.wdmoe import run_wdmoe

    res = run_wdmoe(policies=["topk"], baselines=["split:2"], transports=["ideal"],
                    snr_db=[10.0], limit=4, out=tmp_path, progress=False)
    with (Path(res.path) / "results.csv").open() as f:
        rows = {r["policy_spec"]: r for r in csv.DictReader(f)}
    assert set(rows) == {"topk", "split:2"}
    assert float(rows["split:2"]["accuracy"]) == 1.0
    # one activation per token against the experts' payloads of every MoE layer
    assert float(rows["split:2"]["bits_ul_per_token"]) < float(rows["topk"]["bits_ul_per_token"])
    assert "split:2" in (Path(res.path) / "summary.md").read_text()
    with pytest.raises(ValueError, match="the cut must be in"):
        run_wdmoe(policies=["topk"], baselines=["split:9"], limit=2, out=tmp_path,
                  progress=False)
