"""Tokenizer, arithmetic task generation, greedy decoding with dispatcher steps, accuracy of
the shipped tiny model."""

from __future__ import annotations

import re

import pytest
import torch

from wdmoe_link.routing import LocalDispatcher, TopNDispatcher
from wdmoe_link.split import SplitMoE, load_moe
from wdmoe_link.tasks import (
    ArithmeticTask,
    ByteTokenizer,
    Example,
    evaluate_accuracy,
    generate_greedy,
    load_tokenizer,
)
from wdmoe_link.tiny import TINY_TASK, build_tiny_model, tiny_task, tiny_training_record


class StepLog(LocalDispatcher):
    """Records begin/end events and layer calls in order."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[tuple] = []

    def begin_step(self, phase, num_tokens):  # type: ignore[override]
        assert not self.in_step, "begin_step while a step is open"
        super().begin_step(phase, num_tokens)
        self.events.append(("begin", phase, num_tokens))

    def end_step(self) -> None:
        assert self.in_step, "end_step without begin_step"
        super().end_step()
        self.events.append(("end",))

    def moe_layer(self, layer, x, routing, experts):  # type: ignore[override]
        assert self.in_step, "MoE layer outside a step"
        self.events.append(("layer", layer, x.shape[0]))
        return super().moe_layer(layer, x, routing, experts)


@pytest.fixture(scope="module")
def random_model() -> torch.nn.Module:
    return build_tiny_model(seed=7, num_hidden_layers=2)


@pytest.fixture(scope="module")
def shipped() -> torch.nn.Module:
    return load_moe("tiny")


# -- tokenizer ---------------------------------------------------------------------------


def test_byte_tokenizer_round_trip() -> None:
    tok = ByteTokenizer()
    for text in ["", "123+456=", "héllo wörld ✓\n", "\x00\xff"]:
        ids = tok.encode(text)
        assert ids[0] == tok.bos_id == 256
        assert ids[1:] == list(text.encode("utf-8"))
        assert tok.decode(ids) == text
    ids = tok.encode("ab", add_bos=False, add_eos=True)
    assert ids == [97, 98, 257]
    assert tok.decode([97, tok.pad_id, 98, tok.eos_id]) == "ab"
    assert tok.vocab_size == 259 and tok.pad_id == 258


def test_load_tokenizer_without_files(tmp_path) -> None:
    assert isinstance(load_tokenizer(tmp_path, vocab_size=259), ByteTokenizer)
    assert isinstance(load_tokenizer(None), ByteTokenizer)
    with pytest.raises(ValueError, match="vocab_size=100"):
        load_tokenizer(tmp_path, vocab_size=100)


# -- task --------------------------------------------------------------------------------


def test_task_is_deterministic_and_correct() -> None:
    a = ArithmeticTask("test", size=50, seed=4, digits=3, ops="+-")
    b = ArithmeticTask("test", size=50, seed=4, digits=3, ops="+-")
    c = ArithmeticTask("test", size=50, seed=5, digits=3, ops="+-")
    assert a.examples == b.examples
    assert a.examples != c.examples
    ops = set()
    for ex in a:
        m = re.fullmatch(r"(\d{3})([+-])(\d{3})=", ex.prompt)
        assert m is not None, ex.prompt
        x, op, y = int(m.group(1)), m.group(2), int(m.group(3))
        ops.add(op)
        assert int(ex.answer) == (x + y if op == "+" else x - y) >= 0
        assert ex.answer == str(int(ex.answer))
    assert ops == {"+", "-"}


def test_splits_are_disjoint() -> None:
    test = {ex.prompt for ex in ArithmeticTask("test", size=300, seed=0, digits=2)}
    val = {ex.prompt for ex in ArithmeticTask("val", size=300, seed=0, digits=2)}
    train = {ex.prompt for ex in ArithmeticTask("train", size=3000, seed=0, digits=2)}
    assert test and val and train
    assert not (test & val) and not (test & train) and not (val & train)


def test_task_options_and_scoring() -> None:
    t = ArithmeticTask("val", size=20, seed=1, digits=4, min_digits=1, few_shot=2)
    assert t.prefix.count("\n") == 2
    assert all(ex.prompt.startswith(t.prefix) for ex in t)
    assert t.max_answer_chars == 5
    assert t.score("579", "579") and t.score(" 579\n12+3=15", "579")
    assert not t.score("5790", "579") and not t.score("", "579") and not t.score("57", "579")
    for kwargs in ({"digits": 0}, {"ops": "*"}, {"split": "dev"}, {"size": -1},
                   {"min_digits": 5}):
        with pytest.raises(ValueError):
            ArithmeticTask(**kwargs)


# -- decoding ----------------------------------------------------------------------------


@torch.no_grad()
def _greedy_without_cache(model, ids: torch.Tensor, n: int) -> torch.Tensor:
    seq = ids
    for _ in range(n):
        nxt = model(input_ids=seq).logits[:, -1].argmax(-1, keepdim=True)
        seq = torch.cat([seq, nxt], dim=1)
    return seq[:, ids.shape[1]:]


def test_generate_greedy_steps_and_kv_cache(random_model) -> None:
    ids = torch.tensor([[256, *b"12+34="], [256, *b"98+76="]])
    log = StepLog()
    with SplitMoE(random_model, log):
        out = generate_greedy(random_model, ids, 5, dispatcher=log, eos_id=None)
    assert out.shape == (2, 5)
    assert torch.equal(out, _greedy_without_cache(random_model, ids, 5))
    steps = [e for e in log.events if e[0] == "begin"]
    assert steps == [("begin", "prefill", 14)] + [("begin", "decode", 2)] * 4
    # every step: begin, one call per MoE layer on all its tokens, end
    expected = []
    for _, phase, n in steps:
        expected += [("begin", phase, n), ("layer", 0, n), ("layer", 1, n), ("end",)]
    assert log.events == expected


def test_generate_greedy_stops_at_eos(random_model) -> None:
    ids = torch.tensor([256, *b"5+5="])
    first = generate_greedy(random_model, ids, 3, eos_id=None)
    assert first.shape == (3,)
    log = StepLog()
    out = generate_greedy(random_model, ids, 3, dispatcher=log, eos_id=int(first[0]))
    assert out.tolist() == [int(first[0])]
    assert log.steps == [("prefill", 5)]
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate_greedy(random_model, ids, 0)


def test_batched_equals_single(random_model) -> None:
    task = ArithmeticTask("test", size=12, seed=2, digits=2)
    one = evaluate_accuracy(random_model, task, progress=False, batch_size=1,
                            max_new_tokens=4)
    many = evaluate_accuracy(random_model, task, progress=False, batch_size=5,
                             max_new_tokens=4)
    assert one.predictions == many.predictions and one.n == 12


# -- shipped model -----------------------------------------------------------------------


def test_shipped_model_accuracy(shipped) -> None:
    res = evaluate_accuracy(shipped, tiny_task("test", size=200), progress=False,
                            batch_size=100)
    assert res.n == 200 and len(res.per_example) == 200
    assert res.accuracy >= 0.95
    rec = tiny_training_record()
    assert rec["test_accuracy"] >= 0.95
    assert {k: rec["task"][k] for k in TINY_TASK} == TINY_TASK


def test_shipped_model_split_per_request(shipped) -> None:
    task = tiny_task("test", size=20, seed=3)
    ref = evaluate_accuracy(shipped, task, progress=False, batch_size=20)
    log = StepLog()
    with SplitMoE(shipped, log):
        split = evaluate_accuracy(shipped, task, dispatcher=log, progress=False)
    assert split.predictions == ref.predictions
    prefills = [e for e in log.events if e[:2] == ("begin", "prefill")]
    assert len(prefills) == 20 and all(e[2] == 9 for e in prefills)  # BOS + "123+456="


def test_dropping_experts_changes_accuracy(shipped) -> None:
    task = tiny_task("test", size=200, seed=1)
    clean = evaluate_accuracy(shipped, task, progress=False, batch_size=200).accuracy
    with SplitMoE(shipped, TopNDispatcher(1)):
        top1 = evaluate_accuracy(shipped, task, progress=False, batch_size=200).accuracy
    assert top1 < clean


def test_evaluate_plain_examples(shipped) -> None:
    res = evaluate_accuracy(shipped, [Example("111+222=", "333"), Example("100+100=", "201")],
                            progress=False)
    assert res.per_example == [True, False] and res.accuracy == 0.5


@pytest.mark.slow
def test_shipped_model_accuracy_full(shipped) -> None:
    res = evaluate_accuracy(shipped, tiny_task("test", size=2000), progress=False,
                            batch_size=500)
    assert res.accuracy >= 0.95
