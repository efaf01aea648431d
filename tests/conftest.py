"""Shared test fixtures: every test starts from a fixed seed."""

from __future__ import annotations

import pytest

import phy


@pytest.fixture(autouse=True)
def _seed() -> None:
    phy.set_seed(1234)
