"""The README's two commands stay true: CI runs the test command verbatim."""

from __future__ import annotations

import re

from tests.conftest import ROOT


def _commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    return re.findall(r"```bash\n(.+?)\n```", readme)


def test_readme_has_the_two_commands():
    setup_and_demo, tests = _commands()[:2]
    assert setup_and_demo.endswith("crux demo") and "pip install torch==2.13.0" in setup_and_demo
    assert tests.endswith("python -m pytest") and '".[dev,ray]"' in tests  # the Ray back end's tests run too


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert _commands()[1] in ci
