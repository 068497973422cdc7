"""Crux installs as one package: ``crux`` and its subpackages, nothing else at the top level."""

from __future__ import annotations

import os
import subprocess
import sys


def _python(code: str, cwd) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_outside_the_checkout_only_crux_is_importable(tmp_path):
    found = _python("import crux.oracle, crux.worldmodel, crux.beliefs, crux.values, crux.dialogue; print('ok')", tmp_path)
    assert found.returncode == 0 and found.stdout.strip() == "ok", found.stderr
    for name in ("values", "oracle", "worldmodel", "beliefs", "dialogue"):
        missing = _python(f"import {name}", tmp_path)
        assert missing.returncode != 0 and "ModuleNotFoundError" in missing.stderr, name


def test_the_public_api_answers_as_the_readme_shows(tmp_path, canonical_path):
    code = (
        "from crux import Oracle, Query, load_model\n"
        f"model = load_model({str(canonical_path)!r})\n"
        "answer = Oracle(model, device='cpu', samples=50).ask(Query(do={'action': 'swerve'}, given={'road': 'wet'}, as_='agent'))\n"
        "print(answer.outcomes['crash'].states)\n"
        "import sys; print('torch' in sys.modules)\n"
    )
    ran = _python(code, tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.splitlines() == ["['safe', 'crash']", "True"]
    light = _python("import crux, sys; print('torch' in sys.modules, sorted(crux.__all__)[:3])", tmp_path)
    assert light.stdout.split()[0] == "False"  # the names load on first use
