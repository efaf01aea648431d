"""Offline evaluation tasks, tokenizers and greedy decoding for split MoE language models.

Everything here runs without downloads: :class:`ByteTokenizer` needs no files and
:class:`ArithmeticTask` generates its examples from a seed. The same code evaluates any local
Hugging Face causal LM (a checkpoint directory with its own tokenizer files is used through
:class:`HFTokenizer`).

Decoding goes through :func:`generate_greedy`, which brackets every forward pass with
``dispatcher.begin_step(...)`` / ``dispatcher.end_step()`` so that a split-execution dispatcher
can account the latency of the prefill and of each generated token separately.

Usage::

    model = load_moe("tiny")
    task = ArithmeticTask(split="test", size=200, seed=0)
    result = evaluate_accuracy(model, task)        # EvalResult(accuracy, n, per_example, ...)
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import torch
from torch import Tensor

from .routing import Dispatcher

__all__ = [
    "ArithmeticTask",
    "ByteTokenizer",
    "EvalResult",
    "Example",
    "HFTokenizer",
    "TextTokenizer",
    "evaluate_accuracy",
    "generate_greedy",
    "load_tokenizer",
]

Split = Literal["train", "val", "test"]

#: Share of all problems (percent) reserved for the held-out ``val`` and ``test`` splits.
_TEST_PERCENT = 5
_VAL_PERCENT = 5

_TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer.model",
    "tokenizer_config.json",
    "vocab.json",
    "spiece.model",
)


# --------------------------------------------------------------------------------------------
# Tokenizers
# --------------------------------------------------------------------------------------------


class TextTokenizer(Protocol):
    """What the evaluation code needs from a tokenizer."""

    bos_id: int | None
    eos_id: int | None

    def encode(self, text: str, add_bos: bool = True) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...


class ByteTokenizer:
    """Byte-level tokenizer: ids 0..255 are the UTF-8 bytes, then BOS, EOS and PAD.

    No vocabulary files: the mapping is fixed, so a model trained with it can be shipped as
    weights plus ``config.json`` only. ``vocab_size`` is 259.
    """

    num_bytes: int = 256
    bos_id: int = 256
    eos_id: int = 257
    pad_id: int = 258
    vocab_size: int = 259

    def encode(self, text: str, add_bos: bool = True, add_eos: bool = False) -> list[int]:
        """UTF-8 bytes of ``text`` as ids, optionally framed by BOS / EOS."""
        ids = list(text.encode("utf-8"))
        if add_bos:
            ids.insert(0, self.bos_id)
        if add_eos:
            ids.append(self.eos_id)
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        """Text of the byte ids in ``ids``; special ids are skipped, bad UTF-8 is replaced."""
        data = bytes(int(i) for i in ids if 0 <= int(i) < self.num_bytes)
        return data.decode("utf-8", errors="replace")

    def __repr__(self) -> str:
        return "ByteTokenizer(vocab_size=259)"


class HFTokenizer:
    """Adapter from a Hugging Face tokenizer to :class:`TextTokenizer`."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.bos_id: int | None = tokenizer.bos_token_id
        self.eos_id: int | None = tokenizer.eos_token_id

    @classmethod
    def from_dir(cls, path: str | Path) -> HFTokenizer:
        """Load the tokenizer files of a local checkpoint directory (never downloads)."""
        from transformers import AutoTokenizer

        return cls(AutoTokenizer.from_pretrained(str(path), local_files_only=True))

    def encode(self, text: str, add_bos: bool = True) -> list[int]:
        ids = list(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        if add_bos and self.bos_id is not None:
            ids.insert(0, int(self.bos_id))
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode([int(i) for i in ids], skip_special_tokens=True)

    def __repr__(self) -> str:
        return f"HFTokenizer({type(self.tokenizer).__name__})"


def load_tokenizer(path: str | Path | None, vocab_size: int | None = None) -> TextTokenizer:
    """Tokenizer for a checkpoint: its own HF tokenizer files if present, else bytes.

    Args:
        path: checkpoint directory (``None``: no directory, use the byte tokenizer).
        vocab_size: the model's vocabulary size; the byte tokenizer needs at least 259 ids.

    Raises:
        ValueError: no tokenizer files and a vocabulary too small for byte ids.
    """
    if path is not None:
        p = Path(path)
        if p.is_dir() and any((p / name).is_file() for name in _TOKENIZER_FILES):
            return HFTokenizer.from_dir(p)
    if vocab_size is not None and vocab_size < ByteTokenizer.vocab_size:
        raise ValueError(
            f"no tokenizer files in {path!s} and vocab_size={vocab_size} is too small for the "
            f"byte tokenizer (needs >= {ByteTokenizer.vocab_size}); pass a tokenizer explicitly"
        )
    return ByteTokenizer()


def _tokenizer_for(model: torch.nn.Module) -> TextTokenizer:
    config = getattr(model, "config", None)
    path = getattr(config, "_name_or_path", None) or getattr(model, "name_or_path", None)
    vocab = getattr(config, "vocab_size", None)
    return load_tokenizer(path or None, vocab)


# --------------------------------------------------------------------------------------------
# Arithmetic task
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Example:
    """One prompt and its exact expected answer (both plain text)."""

    prompt: str
    answer: str


def _problem_split(a: int, op: str, b: int) -> Split:
    """Split a problem belongs to, from a stable hash of its text (same on every platform).

    A keyed hash of the problem, not the draw order, decides the split, so the held-out
    problems never appear in training however many training examples are drawn.
    """
    digest = hashlib.blake2b(f"{a}{op}{b}".encode(), digest_size=8).digest()
    bucket = int.from_bytes(digest, "little") % 100
    if bucket < _TEST_PERCENT:
        return "test"
    if bucket < _TEST_PERCENT + _VAL_PERCENT:
        return "val"
    return "train"


class ArithmeticTask:
    """Multi-digit integer arithmetic with exact-match answers, generated from a seed.

    A problem is ``a <op> b`` with ``op`` in ``ops`` ('+' addition, '-' subtraction with
    ``a >= b`` so results are non-negative); operands have between ``min_digits`` and ``digits``
    decimal digits (uniform over that integer range). The prompt is ``"123+456="`` and the answer
    ``"579"``. About 5 % of all problems form the ``test`` split and another 5 % ``val``,
    chosen by a hash of the problem, so the splits are disjoint.

    Args:
        split: ``"train"``, ``"val"`` or ``"test"``.
        size: number of examples held in :attr:`examples` (0 for a pure sampler).
        seed: seed of the example draw (Python ``random.Random``, platform independent).
        digits: maximum operand length in decimal digits, 1..9.
        ops: operators to draw from, a non-empty string over ``"+-"``.
        min_digits: minimum operand length (default ``digits``: fixed-width operands).
        few_shot: solved ``train`` problems prepended to each prompt, one per line (for general
            LMs; 0 for models trained on the task).
    """

    def __init__(
        self,
        split: Split = "test",
        size: int = 200,
        seed: int = 0,
        digits: int = 3,
        ops: str = "+",
        min_digits: int | None = None,
        few_shot: int = 0,
    ) -> None:
        if split not in ("train", "val", "test"):
            raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ValueError(f"size must be an int >= 0, got {size!r}")
        if isinstance(digits, bool) or not isinstance(digits, int) or not 1 <= digits <= 9:
            raise ValueError(f"digits must be an int in [1, 9], got {digits!r}")
        min_digits = digits if min_digits is None else min_digits
        if not isinstance(min_digits, int) or not 1 <= min_digits <= digits:
            raise ValueError(
                f"min_digits must be an int in [1, digits={digits}], got {min_digits!r}"
            )
        if not ops or any(o not in "+-" for o in ops):
            raise ValueError(f"ops must be a non-empty string over '+-', got {ops!r}")
        if isinstance(few_shot, bool) or not isinstance(few_shot, int) or few_shot < 0:
            raise ValueError(f"few_shot must be an int >= 0, got {few_shot!r}")
        self.split: Split = split
        self.seed = int(seed)
        self.digits = digits
        self.min_digits = min_digits
        self.ops = ops
        self.few_shot = few_shot
        self._lo = 0 if min_digits == 1 else 10 ** (min_digits - 1)
        self._hi = 10**digits - 1
        prefix = ""
        if few_shot:
            shots_rng = random.Random(f"{self.seed}-shots")
            shots = [self._draw(shots_rng, "train") for _ in range(few_shot)]
            prefix = "".join(f"{ex.prompt}{ex.answer}\n" for ex in shots)
        self.prefix = prefix
        rng = random.Random(f"{self.seed}-{split}")
        self.examples: list[Example] = [
            Example(prefix + ex.prompt, ex.answer)
            for ex in (self._draw(rng, split) for _ in range(size))
        ]

    # -- generation ------------------------------------------------------------------------

    def _draw(self, rng: random.Random, split: Split) -> Example:
        while True:
            a = rng.randint(self._lo, self._hi)
            b = rng.randint(self._lo, self._hi)
            op = self.ops[rng.randrange(len(self.ops))]
            if op == "-" and a < b:
                a, b = b, a
            if _problem_split(a, op, b) == split:
                result = a + b if op == "+" else a - b
                return Example(f"{a}{op}{b}=", str(result))

    def sample(self, rng: random.Random, n: int) -> list[Example]:
        """``n`` fresh examples of this split drawn with ``rng`` (no few-shot prefix)."""
        return [self._draw(rng, self.split) for _ in range(n)]

    @property
    def max_answer_chars(self) -> int:
        """Longest possible answer in characters (digits + 1 for a carry)."""
        return self.digits + 1

    @property
    def stop_text(self) -> str:
        """Text that ends an answer besides EOS (a newline)."""
        return "\n"

    def config(self) -> dict[str, Any]:
        """The constructor arguments (to record next to results)."""
        return {
            "split": self.split, "size": len(self.examples), "seed": self.seed,
            "digits": self.digits, "ops": self.ops, "min_digits": self.min_digits,
            "few_shot": self.few_shot,
        }

    # -- scoring ---------------------------------------------------------------------------

    _LEADING_INT = re.compile(r"\s*(-?\d+)")

    def score(self, prediction: str, answer: str) -> bool:
        """Exact match of the integer at the start of ``prediction`` with ``answer``."""
        m = self._LEADING_INT.match(prediction)
        return m is not None and m.group(1) == answer

    # -- sequence protocol -----------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> Example:
        return self.examples[i]

    def __iter__(self) -> Iterator[Example]:
        return iter(self.examples)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"ArithmeticTask({args})"


# --------------------------------------------------------------------------------------------
# Greedy decoding
# --------------------------------------------------------------------------------------------


@torch.inference_mode()
def generate_greedy(
    model: torch.nn.Module,
    input_ids: Tensor,
    max_new_tokens: int,
    dispatcher: Dispatcher | None = None,
    eos_id: int | None = ByteTokenizer.eos_id,
    stop_ids: Sequence[int] = (),
    pad_id: int | None = None,
) -> Tensor:
    """Greedy decoding with a KV cache, one dispatcher step per forward pass.

    The prompt is processed in one prefill pass bracketed by
    ``dispatcher.begin_step("prefill", B * T)`` / ``end_step()``; every generated token is one
    decode pass bracketed by ``begin_step("decode", B)`` / ``end_step()``. Rows that finished
    early stay in the batch (their further tokens are ``pad_id``) until every row has stopped.
    Written here rather than with ``model.generate`` so that each forward pass is exactly one
    dispatcher step and nothing else runs the model.

    Args:
        model: a Hugging Face causal LM (``model(input_ids, past_key_values, use_cache,
            logits_to_keep)``).
        input_ids: ``[B, T]`` or ``[T]`` prompt ids, all rows of equal length (no padding).
        max_new_tokens: maximum number of generated tokens per row, >= 1.
        dispatcher: notified of every step (``None``: no notifications).
        eos_id: id that ends a row (``None``: none); the EOS token itself is returned.
        stop_ids: further ids that end a row (returned like EOS).
        pad_id: filler after a row has stopped (default ``eos_id`` or 0).

    Returns:
        ``[B, n]`` int64 generated ids (prompt excluded), ``n <= max_new_tokens``; 1-D if the
        input was 1-D.
    """
    from transformers import DynamicCache

    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) \
            or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be an int >= 1, got {max_new_tokens!r}")
    squeeze = input_ids.dim() == 1
    ids = input_ids.unsqueeze(0) if squeeze else input_ids
    if ids.dim() != 2 or ids.shape[1] < 1:
        raise ValueError(
            f"input_ids must be [B, T] with T >= 1, got shape {tuple(input_ids.shape)}"
        )
    device = next(model.parameters()).device
    ids = ids.to(device=device, dtype=torch.long)
    batch, prompt_len = ids.shape
    stops = {int(s) for s in stop_ids}
    if eos_id is not None:
        stops.add(int(eos_id))
    fill = pad_id if pad_id is not None else (eos_id if eos_id is not None else 0)
    stop_t = torch.tensor(sorted(stops), dtype=torch.long, device=device)

    cache = DynamicCache(config=model.config)
    done = torch.zeros(batch, dtype=torch.bool, device=device)
    out: list[Tensor] = []
    step_input, phase, n_tokens = ids, "prefill", batch * prompt_len
    for _ in range(max_new_tokens):
        if dispatcher is not None:
            dispatcher.begin_step(phase, n_tokens)  # type: ignore[arg-type]
        logits = model(
            input_ids=step_input, past_key_values=cache, use_cache=True, logits_to_keep=1
        ).logits[:, -1, :]
        if dispatcher is not None:
            dispatcher.end_step()
        nxt = logits.argmax(dim=-1)
        nxt = torch.where(done, torch.full_like(nxt, fill), nxt)
        out.append(nxt)
        if stop_t.numel():
            done = done | torch.isin(nxt, stop_t)
        if bool(done.all()):
            break
        step_input, phase, n_tokens = nxt[:, None], "decode", batch
    result = torch.stack(out, dim=1)
    return result[0] if squeeze else result


# --------------------------------------------------------------------------------------------
# Accuracy
# --------------------------------------------------------------------------------------------


@dataclass
class EvalResult:
    """Exact-match accuracy of a model on a task.

    Attributes:
        accuracy: fraction of correct examples in [0, 1].
        n: number of examples evaluated.
        per_example: correctness of each example, in task order.
        predictions: decoded generated text of each example.
    """

    accuracy: float
    n: int
    per_example: list[bool] = field(default_factory=list)
    predictions: list[str] = field(default_factory=list)


def _cut_at_stop(ids: list[int], stops: set[int]) -> list[int]:
    for i, t in enumerate(ids):
        if t in stops:
            return ids[:i]
    return ids


def evaluate_accuracy(
    model: torch.nn.Module,
    task: ArithmeticTask | Sequence[Example],
    dispatcher: Dispatcher | None = None,
    limit: int | None = None,
    progress: bool = True,
    tokenizer: TextTokenizer | None = None,
    batch_size: int = 1,
    max_new_tokens: int | None = None,
) -> EvalResult:
    """Greedy exact-match accuracy of ``model`` on the examples of ``task``.

    Args:
        model: a Hugging Face causal LM (possibly split with a dispatcher attached).
        task: an :class:`ArithmeticTask` or any sequence of :class:`Example` (scored by exact
            match of the stripped prediction).
        dispatcher: passed to :func:`generate_greedy` (step notifications).
        limit: evaluate only the first ``limit`` examples (``None``: all).
        progress: show a tqdm progress bar.
        tokenizer: default: the checkpoint directory's HF tokenizer if it has one, else
            :class:`ByteTokenizer`.
        batch_size: prompts decoded together (only prompts of equal token length are batched;
            1 gives per-request decode steps).
        max_new_tokens: default: longest answer + 2 tokens.

    Returns:
        :class:`EvalResult`.
    """
    from tqdm.auto import tqdm

    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be None or an int >= 1 (examples), got {limit!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    tok = tokenizer if tokenizer is not None else _tokenizer_for(model)
    examples = list(task)[: limit if limit is not None else None]
    if max_new_tokens is None:
        longest = max((len(tok.encode(ex.answer, add_bos=False)) for ex in examples), default=1)
        max_new_tokens = longest + 2
    stop_text = getattr(task, "stop_text", "\n")
    stop_ids: list[int] = []
    if isinstance(tok, ByteTokenizer):
        stop_ids = tok.encode(stop_text, add_bos=False)
    stops = set(stop_ids) | ({tok.eos_id} if tok.eos_id is not None else set())

    def score(pred: str, answer: str) -> bool:
        if isinstance(task, ArithmeticTask):
            return task.score(pred, answer)
        return pred.strip() == answer.strip()

    encoded = [tok.encode(ex.prompt, add_bos=True) for ex in examples]
    # Group prompts of equal length into batches, keeping task order inside each group.
    order = sorted(range(len(examples)), key=lambda i: (len(encoded[i]), i))
    batches: list[list[int]] = []
    for i in order:
        if batches and len(batches[-1]) < batch_size \
                and len(encoded[batches[-1][0]]) == len(encoded[i]):
            batches[-1].append(i)
        else:
            batches.append([i])

    was_training = model.training
    model.eval()
    correct = [False] * len(examples)
    preds = [""] * len(examples)
    bar = tqdm(total=len(examples), desc="eval", unit="ex", disable=not progress, leave=False)
    try:
        for group in batches:
            ids = torch.tensor([encoded[i] for i in group], dtype=torch.long)
            gen = generate_greedy(
                model, ids, max_new_tokens, dispatcher=dispatcher, eos_id=tok.eos_id,
                stop_ids=stop_ids,
            )
            for row, i in enumerate(group):
                text = tok.decode(_cut_at_stop(gen[row].tolist(), stops))
                preds[i] = text
                correct[i] = score(text, examples[i].answer)
            bar.update(len(group))
            bar.set_postfix(acc=f"{sum(correct) / max(bar.n, 1):.3f}")
    finally:
        bar.close()
        model.train(was_training)
    n = len(examples)
    return EvalResult(sum(correct) / n if n else float("nan"), n, correct, preds)
