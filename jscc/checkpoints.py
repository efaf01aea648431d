"""Reading Lightning checkpoints with one clear error when the file is not what was expected.

A checkpoint path typed by hand can point at anything: a missing file, a truncated download,
a text file, or a checkpoint of another kind (a CDDM one where a JSCC codec is expected).
:func:`read_checkpoint` turns each case into one :class:`CheckpointError` that names the file
and what was expected, instead of an unpickling traceback or a ``state_dict`` key dump.

Kinds are recognized by the hyper-parameters their Lightning module saves; packages register
their own kinds with :func:`register_kind` (``cddm`` registers its stages).

Every file is opened with ``torch.load(..., weights_only=True)`` (tensors and plain containers
only), so a checkpoint from elsewhere cannot run code; :func:`read_torch_file` and
:func:`read_safetensors` give the same one-error treatment to the package's other weight files.
"""

from __future__ import annotations

import contextvars
import os
from pathlib import Path
from typing import Any

import torch

__all__ = ["CheckpointError", "checkpoint_kind", "load_jscc_module", "read_checkpoint",
           "read_safetensors", "read_torch_file", "register_kind"]


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable or of the wrong kind."""


#: kind → (hyper-parameter names that identify it, description for messages)
_KINDS: dict[str, tuple[frozenset[str], str]] = {}


def register_kind(kind: str, keys: set[str] | frozenset[str], description: str) -> None:
    """Declare a checkpoint kind by the hyper-parameter names its module always saves."""
    _KINDS[kind] = (frozenset(keys), description)


register_kind("jscc", {"codec", "cbr", "train_snr_db", "power_norm"},
              "JSCC codec checkpoint (written by semcom train-jscc)")


def checkpoint_kind(checkpoint: dict[str, Any]) -> str | None:
    """The registered kind whose hyper-parameters ``checkpoint`` holds (None if none fits)."""
    hp = set(checkpoint.get("hyper_parameters") or {})
    for kind, (keys, _) in _KINDS.items():
        if keys <= hp:
            return kind
    return None


def _describe(kind: str | None) -> str:
    return _KINDS[kind][1] if kind in _KINDS else "checkpoint of no known semcom kind"


def read_checkpoint(path: str | os.PathLike, expected: str | None = None) -> dict[str, Any]:
    """Load a Lightning checkpoint dict (on the CPU), checking its kind.

    Args:
        path: the ``.ckpt`` file.
        expected: a registered kind (``"jscc"``, ``"cddm"``, ...) or None for any.

    Raises:
        CheckpointError: the file is missing, not a readable checkpoint, or of another kind.
    """
    p = Path(path)
    want = _describe(expected) if expected else "Lightning checkpoint"
    if not p.is_file():
        raise CheckpointError(f"checkpoint {p} does not exist (expected a {want})")
    ck = read_torch_file(p, want)
    if not isinstance(ck, dict) or "state_dict" not in ck:
        raise CheckpointError(f"{p} is not a Lightning checkpoint (no state_dict); expected a "
                              f"{want}")
    if expected is not None:
        kind = checkpoint_kind(ck)
        if kind != expected:
            raise CheckpointError(f"{p} is a {_describe(kind)}, expected a {want}")
    return ck


def read_torch_file(path: str | os.PathLike, expected: str) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU.

    Raises:
        CheckpointError: the file is missing or unreadable (truncated, not a torch file, or
            holding objects other than tensors and plain containers); the message names the
            file and ``expected`` (e.g. ``"a hyperprior ladder"``).
    """
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p} does not exist (expected {_article(expected)})")
    try:
        return torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle, zip and torch errors differ by the kind of damage
        raise CheckpointError(f"{p} is not readable ({type(e).__name__}: {str(e)[:200]}); "
                              f"expected {_article(expected)}") from None


def read_safetensors(path: str | os.PathLike, expected: str) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file (on the CPU).

    Raises:
        CheckpointError: the file is missing or not a readable safetensors file; the message
            names the file and ``expected``.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p} does not exist (expected {_article(expected)})")
    try:
        return load_file(str(p))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{p} is not a readable safetensors file ({e}); expected "
                              f"{_article(expected)}") from None


def _article(what: str) -> str:
    return what if what.split(" ", 1)[0] in ("a", "an", "the") else f"a {what}"


def load_module(cls: type, path: str | os.PathLike, **overrides: Any) -> Any:
    """``cls.load_from_checkpoint(path)`` on the CPU, in eval mode, in an empty context.

    Inside ``LightningCLI`` (a CDDM module that loads its codec while the CLI instantiates it)
    Lightning's ``save_hyperparameters`` reads the hyper-parameters the CLI gave the outer
    module from a context variable; a module loaded there would take those instead of its
    checkpoint's own. An empty :class:`contextvars.Context` keeps every load independent."""
    return contextvars.Context().run(
        lambda: cls.load_from_checkpoint(path, map_location="cpu", weights_only=True,
                                         **overrides).eval())


def load_jscc_module(path: str | os.PathLike, **overrides: Any) -> Any:
    """A :class:`jscc.lightning.JSCCModule` from its checkpoint (CPU, eval mode)."""
    from .lightning import JSCCModule

    read_checkpoint(path, "jscc")
    return load_module(JSCCModule, path, **overrides)
