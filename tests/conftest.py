"""Shared fixtures: the bundled examples."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
CANONICAL = EXAMPLES / "squirrel_or_cat.yaml"


@pytest.fixture(scope="session")
def canonical_path() -> Path:
    return CANONICAL


@pytest.fixture(scope="session")
def canonical():
    from worldmodel.load import load_scenario

    return load_scenario(CANONICAL)
