"""`crux` starts fast: help, schema and validate import no torch, pyro, textual, web framework or Ray.

The commands import their engines when they run, not when the command line is read, so that
`crux --help` and `crux validate FILE` cost a fraction of a second rather than torch's import.
Each command runs in a fresh interpreter under ``-X importtime`` (which lists every module
imported) through what the ``crux`` script runs, and must also exit 0 with its usual output.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from tests.conftest import CANONICAL, ROOT

HEAVY = ("torch", "pyro", "textual", "fastapi", "uvicorn", "numpy", "scipy", "ray")
"""Never imported to read the command line, show help, print the schema or validate a file
(Ray, an optional extra, not even by ``crux serve --help``)."""

ENTRY = "import sys; from crux.dialogue.cli.app import main; sys.argv[0] = 'crux'; main()"
"""What the installed ``crux`` script runs."""

_IMPORTED = re.compile(r"^import time:\s+\d+\s+\|\s+\d+\s+\|\s*(\S+)\s*$")


def run(*args: object) -> tuple[subprocess.CompletedProcess, set[str]]:
    """``crux ARGS`` in a fresh interpreter: the finished process, and the top-level package of
    every module it imported."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", ENTRY, *map(str, args)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )
    imported = {m.group(1).split(".")[0] for line in done.stderr.splitlines() if (m := _IMPORTED.match(line))}
    return done, imported


def messages(done: subprocess.CompletedProcess) -> str:
    """stderr without the import-time lines."""
    return "\n".join(line for line in done.stderr.splitlines() if not line.startswith("import time:"))


COMMANDS = [
    pytest.param(("--help",), "Crux: find out whether", id="help"),
    pytest.param(("ask", "--help"), "what happens if", id="ask-help"),
    pytest.param(("schema",), '"$schema"', id="schema"),
    pytest.param(("validate", CANONICAL), "ok: 7 variables, 4 facts", id="validate-scenario"),
    pytest.param(("validate", ROOT / "tests/data/asia.bif.gz"), "ok: 8 variables, 0 facts", id="validate-bif"),
    pytest.param(("validate", ROOT / "tests/data/alarm.bif.gz", "--json"), '"variables": 37', id="validate-bif-json"),
]


@pytest.mark.parametrize(("args", "shown"), COMMANDS)
def test_reading_the_command_line_imports_no_engine(args, shown):
    done, imported = run(*args)
    assert done.returncode == 0, messages(done)
    assert shown in done.stdout
    assert messages(done) == ""
    assert imported.isdisjoint(HEAVY), sorted(imported & set(HEAVY))
    assert "crux" in imported  # the import-time lines were read


def test_every_commands_help_imports_no_engine():
    """Each command's --help in one interpreter: typer needs only the signatures."""
    script = (
        "import sys\nfrom typer.testing import CliRunner\nfrom crux.dialogue.cli.app import app\n"
        "codes = [CliRunner().invoke(app, [*c.split(), '--help']).exit_code for c in sys.argv[1:]]\n"
        f"print(codes, sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    names = ["ask", "validate", "schema", "session", "replay", "beliefs", "demo", "init", "values",
             "values infer", "values elicit", "learn", "watch", "serve"]
    done = subprocess.run(
        [sys.executable, "-c", script, *names], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{[0] * len(names)} []"


def test_a_bad_file_is_reported_without_torch(tmp_path):
    """validate reports every problem of a BIF network as `crux ask` would, without torch."""
    bad = tmp_path / "bad.bif"
    bad.write_text(
        "network n {}\nvariable a { type discrete [ 2 ] { yes, no }; }\n"
        "probability ( a ) { table 0.5, 0.4; }\nprobability ( b ) { table 1; }\n"
    )
    done, imported = run("validate", bad, "--json")
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert [p["msg"] for p in report["problems"]] == [
        "line 3: sums to 0.9, not 1",
        "line 4: unknown variable 'b' (valid: a)",
    ]
    assert imported.isdisjoint(HEAVY), sorted(imported & set(HEAVY))


def test_asking_still_imports_the_engine():
    """The counter-check: the lazy imports are taken when a command computes."""
    done, imported = run("ask", CANONICAL, "what happens if action=brake", "--json")
    assert done.returncode == 0, messages(done)
    assert json.loads(done.stdout)["query"]["do"] == {"action": "brake"}
    assert "torch" in imported
