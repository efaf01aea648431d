"""The byte vocabulary of the shipped models as a Hugging Face tokenizer.

:class:`~wdmoe_link.tasks.ByteTokenizer` maps UTF-8 bytes to ids 0..255 and puts BOS, EOS and
PAD at 256..258. Libraries built on ``transformers`` (lm-evaluation-harness, ``generate``)
need a ``PreTrainedTokenizer``: :class:`HFByteTokenizer` is the same mapping behind that
interface. A token is one byte, written as the Latin-1 character of the same code, so any
text round-trips through its UTF-8 bytes. It needs no vocabulary file.
"""

from __future__ import annotations

from typing import Any, ClassVar

from transformers import PreTrainedTokenizer

from .tasks import ByteTokenizer

__all__ = ["HFByteTokenizer"]

_BYTES = ByteTokenizer.num_bytes


class HFByteTokenizer(PreTrainedTokenizer):
    """``PreTrainedTokenizer`` over :class:`~wdmoe_link.tasks.ByteTokenizer`'s ids.

    ``tokenizer("ab").input_ids == [256, 97, 98]`` (BOS first, as the shipped models were
    trained; ``add_special_tokens=False`` leaves it out).
    """

    model_input_names: ClassVar[list[str]] = ["input_ids", "attention_mask"]

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("bos_token", "<s>")
        kwargs.setdefault("eos_token", "</s>")
        kwargs.setdefault("pad_token", "<pad>")
        kwargs.setdefault("clean_up_tokenization_spaces", False)
        self._special = {kwargs["bos_token"]: ByteTokenizer.bos_id,
                         kwargs["eos_token"]: ByteTokenizer.eos_id,
                         kwargs["pad_token"]: ByteTokenizer.pad_id}
        self._special_by_id = {v: k for k, v in self._special.items()}
        super().__init__(**kwargs)

    @property
    def vocab_size(self) -> int:
        return ByteTokenizer.vocab_size

    def get_vocab(self) -> dict[str, int]:
        vocab = {chr(b): b for b in range(_BYTES)}
        vocab.update(self._special)
        return vocab

    def _tokenize(self, text: str, **kwargs: Any) -> list[str]:
        return [chr(b) for b in text.encode("utf-8")]

    def _convert_token_to_id(self, token: str) -> int:
        if token in self._special:
            return self._special[token]
        if len(token) == 1 and ord(token) < _BYTES:
            return ord(token)
        raise KeyError(f"{token!r} is not a byte token of HFByteTokenizer")

    def _convert_id_to_token(self, index: int) -> str:
        if 0 <= index < _BYTES:
            return chr(index)
        if index in self._special_by_id:
            return self._special_by_id[index]
        raise IndexError(f"token id must be in [0, {ByteTokenizer.vocab_size - 1}], got {index}")

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        """UTF-8 text of the byte tokens; special tokens appear as their text (``"<s>"``)."""
        out: list[str] = []
        run = bytearray()
        for t in tokens:
            if len(t) == 1 and ord(t) < _BYTES:
                run.append(ord(t))
            else:
                out.append(run.decode("utf-8", errors="replace"))
                run = bytearray()
                out.append(t)
        out.append(run.decode("utf-8", errors="replace"))
        return "".join(out)

    def build_inputs_with_special_tokens(self, token_ids_0: list[int],
                                         token_ids_1: list[int] | None = None) -> list[int]:
        out = [ByteTokenizer.bos_id, *token_ids_0]
        return out if token_ids_1 is None else [*out, *token_ids_1]

    def save_vocabulary(self, save_directory: str,
                        filename_prefix: str | None = None) -> tuple[str, ...]:
        return ()  # the mapping is fixed: nothing to save
