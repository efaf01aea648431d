"""Loads the JSONL beside this file (lm-eval ``custom_dataset``; nothing is downloaded)."""

from pathlib import Path

import datasets

_HERE = Path(__file__).resolve().parent


def load_arith(**kwargs):
    """The held-out arithmetic problems of the shipped tiny model as a ``DatasetDict``."""
    return datasets.load_dataset("json", data_files={"test": str(_HERE / "arith_test.jsonl")})
