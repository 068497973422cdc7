"""Fixtures for the scenario-loader tests: the canonical example and a way to write variants of it."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "squirrel_or_cat.yaml"


@pytest.fixture(scope="session")
def example_path() -> Path:
    """The canonical valid scenario shipped with the project."""
    return EXAMPLE


@pytest.fixture(scope="session")
def _example_data() -> dict[str, Any]:
    return yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))


@pytest.fixture
def example(_example_data: dict[str, Any]) -> dict[str, Any]:
    """A fresh, mutable copy of the canonical example as plain data."""
    return copy.deepcopy(_example_data)


@pytest.fixture
def write(tmp_path: Path) -> Callable[..., Path]:
    """``write(data_or_text, name="scenario.yaml")``: a file in tmp_path.

    A ``str`` is written as it is (for YAML-specific input); anything else is
    dumped as JSON for a ``.json`` name and as YAML otherwise.
    """

    def _write(content: Any, name: str = "scenario.yaml") -> Path:
        path = tmp_path / name
        if isinstance(content, str):
            text = content
        elif path.suffix == ".json":
            text = json.dumps(content, indent=2)
        else:
            text = yaml.safe_dump(content, sort_keys=False, allow_unicode=True)
        path.write_text(text, encoding="utf-8")
        return path

    return _write
