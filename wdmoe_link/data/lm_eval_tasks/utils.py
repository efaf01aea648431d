"""Loads the JSONL beside this file (lm-eval ``custom_dataset``; nothing is downloaded)."""

from pathlib import Path

import datasets

_HERE = Path(__file__).resolve().parent


def load_arith(**kwargs):
    """The held-out arithmetic problems of the shipped tiny model as a ``DatasetDict``."""
    return datasets.load_dataset("json", data_files={"test": str(_HERE / "arith_test.jsonl")})


def load_stdlib(**kwargs):
    """The held-out standard-library modules of the shipped text model (one document per file,
    read from the running interpreter; see wdmoe_link.text)."""
    from wdmoe_link.text import stdlib_files

    docs = [{"text": p.read_text(encoding="utf-8", errors="replace")}
            for p in stdlib_files("test")]
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(docs)})
