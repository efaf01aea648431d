"""Real text that every machine has offline: the Python standard library's own source.

:func:`stdlib_files` lists the ``.py`` files of the running interpreter's standard library
(test suites, IDLE and demo folders excluded) and splits them *by module* into ``train``,
``val`` and ``test`` (a hash of the path relative to the library root: 90 / 5 / 5 %), so the
held-out modules are never seen in training. :class:`TextCorpus` holds a split as byte ids
(:class:`~wdmoe_link.tasks.ByteTokenizer`; files separated by EOS) and draws training windows;
:func:`evaluate_text` scores a causal LM on it, optionally through a split-execution dispatcher,
in bits per byte and next-byte accuracy.

The exact files depend on the Python version (recorded by the training script); the split of
a given path does not.
"""

from __future__ import annotations

import math
import sysconfig
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F

from .tasks import ByteTokenizer

__all__ = ["EXCLUDED_DIRS", "TextCorpus", "TextScore", "evaluate_text", "stdlib_files",
           "stdlib_root"]

TextSplit = Literal["train", "val", "test"]

#: Folders of the standard library that are not library modules (tests, demos, IDE, vendored).
EXCLUDED_DIRS: frozenset[str] = frozenset({
    "test", "tests", "idle_test", "idlelib", "turtledemo", "lib2to3", "ensurepip",
    "site-packages", "dist-packages", "__pycache__", "__phello__",
})

_TOK = ByteTokenizer()


def stdlib_root() -> Path:
    """The running interpreter's standard-library folder."""
    return Path(sysconfig.get_paths()["stdlib"]).resolve()


def _split_of(rel: str) -> TextSplit:
    h = zlib.crc32(rel.encode()) % 20
    return "test" if h == 0 else "val" if h == 1 else "train"


def stdlib_files(split: TextSplit, root: Path | None = None) -> list[Path]:
    """Sorted ``.py`` files of ``split`` under ``root`` (default :func:`stdlib_root`)."""
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
    root = stdlib_root() if root is None else Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"standard-library folder {str(root)!r} does not exist")
    out = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if any(part in EXCLUDED_DIRS for part in rel.parts[:-1]):
            continue
        if _split_of(rel.as_posix()) == split:
            out.append(path)
    return out


class TextCorpus:
    """One split of a text corpus as byte ids (files joined with EOS), held in memory.

    Args:
        split: ``"train"``, ``"val"`` or ``"test"``.
        root: folder of ``.py`` files (default: the standard library).
        max_bytes: keep at most this many bytes (the first files in sorted order).
    """

    def __init__(self, split: TextSplit, root: Path | None = None,
                 max_bytes: int | None = None) -> None:
        files = stdlib_files(split, root)
        if not files:
            raise ValueError(f"no .py files in split {split!r} under {root or stdlib_root()}")
        if max_bytes is not None and (isinstance(max_bytes, bool) or max_bytes < 1):
            raise ValueError(f"max_bytes must be None or >= 1, got {max_bytes!r}")
        chunks: list[torch.Tensor] = []
        total = 0
        for path in files:
            data = path.read_bytes()
            if not data:  # empty __init__.py files
                continue
            chunks.append(torch.frombuffer(bytearray(data), dtype=torch.uint8).to(torch.int16))
            chunks.append(torch.tensor([_TOK.eos_id], dtype=torch.int16))
            total += len(data) + 1
            if max_bytes is not None and total >= max_bytes:
                break
        ids = torch.cat(chunks)
        self.ids = ids[:max_bytes] if max_bytes is not None else ids
        self.split = split
        self.num_files = len(chunks) // 2

    def __len__(self) -> int:
        return int(self.ids.numel())

    def sample(self, batch_size: int, length: int, generator: torch.Generator) -> torch.Tensor:
        """``[batch_size, length + 1]`` int64 windows at random offsets, each starting with BOS
        (so ``length`` predicted positions)."""
        if length < 1 or length + 1 > len(self):
            raise ValueError(f"length must be in [1, {len(self) - 1}], got {length}")
        start = torch.randint(0, len(self) - length, (batch_size,), generator=generator)
        offsets = start[:, None] + torch.arange(length)[None]
        body = self.ids[offsets].long()
        bos = torch.full((batch_size, 1), _TOK.bos_id, dtype=torch.long)
        return torch.cat([bos, body], dim=1)

    def windows(self, length: int, max_windows: int | None = None) -> torch.Tensor:
        """Consecutive non-overlapping windows from the start, ``[W, length + 1]`` with BOS."""
        n = len(self) // length
        if max_windows is not None:
            n = min(n, max_windows)
        if n < 1:
            raise ValueError(f"the corpus ({len(self)} bytes) is shorter than one window of "
                             f"{length}")
        body = self.ids[: n * length].long().reshape(n, length)
        return torch.cat([torch.full((n, 1), _TOK.bos_id, dtype=torch.long), body], dim=1)


@dataclass(frozen=True)
class TextScore:
    """Held-out scores of a causal LM on byte text.

    Attributes:
        bits_per_byte: mean cross-entropy of the next byte, in bits.
        accuracy: share of positions whose arg-max prediction is the next byte.
        num_bytes: predicted positions.
    """

    bits_per_byte: float
    accuracy: float
    num_bytes: int


@torch.no_grad()
def evaluate_text(model: Any, corpus: TextCorpus, *, length: int = 128,
                  max_windows: int | None = 64, batch_size: int = 16,
                  dispatcher: Any = None) -> TextScore:
    """Bits per byte and next-byte accuracy of ``model`` on ``corpus``'s first windows.

    Args:
        model: a causal LM over :class:`~wdmoe_link.tasks.ByteTokenizer` ids.
        corpus: the text.
        length: predicted bytes per window (each window starts with BOS).
        max_windows: windows scored (``None``: the whole corpus).
        batch_size: windows per forward pass.
        dispatcher: a split-execution dispatcher (e.g. :class:`~wdmoe_link.system.WDMoESystem`)
            whose ``begin_step``/``end_step`` bracket each forward (one prefill each).
    """
    if batch_size < 1 or length < 1:
        raise ValueError(f"batch_size and length must be >= 1, got {batch_size}, {length}")
    w = corpus.windows(length, max_windows)
    device = next(model.parameters()).device
    nll, correct, count = 0.0, 0, 0
    for i in range(0, w.shape[0], batch_size):
        ids = w[i:i + batch_size].to(device)
        if dispatcher is not None:
            dispatcher.begin_step("prefill", int(ids[:, :-1].numel()))
        logits = model(input_ids=ids[:, :-1]).logits.float()
        if dispatcher is not None:
            dispatcher.end_step()
        target = ids[:, 1:]
        nll += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1),
                                     reduction="sum"))
        correct += int((logits.argmax(-1) == target).sum())
        count += int(target.numel())
    return TextScore(bits_per_byte=nll / count / math.log(2), accuracy=correct / count,
                     num_bytes=count)
