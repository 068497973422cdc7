"""The user documentation stays true: README.md and docs/*.md are run, not just read.

- Every ``$ crux ...`` line of a ```console block runs in-process (typer's CliRunner), page by
  page and in order, from a scratch folder holding copies of the files the pages name
  (``examples/``, ``docs/examples/``, ``tests/data/``), so what a command writes lands there and
  relative paths read as from the repository's root.  Its exit code is 0, or the one a
  ``# exits N`` comment shows, and each line shown under it is in its output, in order (lines
  may be left out between them): white space is not compared, every number and word is;
  ``...`` stands for text left out of a line.  Lines shown as ``: ANSWER`` after a question
  are typed in as the answers.  Only the commands in SKIPPED do not run.
- Every ```python block of docs/python.md runs, in order, in one namespace, from the
  repository's root; what it prints must be exactly its ``# `` comment lines at column 0.
- No link leaves the repository, and every relative link reaches a file (and heading).
- The scenario page names every property of ``crux schema``.
- Every file of docs/examples/ is used by a page, and its scenarios validate (but the one with
  mistakes).
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shlex
import shutil
from pathlib import Path

import pytest
import torch
from crux.dialogue.cli.app import app
from typer.testing import CliRunner

from tests.conftest import ROOT

DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
COPIED = ("examples", "docs/examples", "tests/data")
"""What the pages' commands read, copied into each page's scratch folder."""

SKIPPED = {
    # a server runs until it is stopped; tests/oracle/test_server*.py test it
    "crux serve examples/squirrel_or_cat.yaml tests/data/asia.bif.gz --port 8799": "a server",
    "crux serve examples/squirrel_or_cat.yaml tests/data/alarm.bif.gz --port 8765": "a server",
    # requests to that server from another terminal
    "curl -s localhost:8799/ask -H 'content-type: application/json' -d '{\"do\": {\"action\": \"swerve\"}, "
    '"given": {"road": "wet"}, "outcomes": ["crash"], "as": "human"}\'': "a client of crux serve",
    "curl -s localhost:8799/models/asia/ask -H 'content-type: application/json' -d '{\"given\": "
    '{"smoke": "yes"}, "outcomes": ["lung"]}\'': "a client of crux serve",
    "curl -s localhost:8799/health": "a client of crux serve",
    "curl -s localhost:8765/ask -H 'content-type: application/json' -d '{\"do\": {\"action\": \"swerve\"}, "
    '"given": {"road": "wet"}, "as": "human"}\'': "a client of crux serve",
}
"""Commands that cannot run in a test, exactly as the pages write them (comments dropped)."""

FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
EXITS = re.compile(r"#\s*exits\s+(\d+)\s*$")
ANSWER = re.compile(r"^: (.*)$")
ELISION = "..."


def blocks(page: Path, language: str) -> list[str]:
    return [body for lang, body in FENCE.findall(page.read_text(encoding="utf-8")) if lang == language]


def commands(page: Path) -> list[tuple[str, list[str], int]]:
    """(command, the lines shown after it, the exit code shown) for each ``$`` line, in order."""
    out: list[tuple[str, list[str], int]] = []
    for body in blocks(page, "console"):
        lines = iter(body.splitlines())
        shown: list[str] | None = None
        for line in lines:
            if line.startswith("$ "):
                command = line[2:]
                while command.endswith("\\"):
                    command = command[:-1] + next(lines).strip()
                code = EXITS.search(command)
                shown = []
                out.append((command, shown, int(code.group(1)) if code else 0))
            else:
                assert shown is not None, f"{page.name}: output before any command in a console block: {line!r}"
                shown.append(line)
    return out


def _squash(text: str) -> str:
    return " ".join(text.split())


def assert_shown(shown: list[str], output: str, where: str) -> None:
    """Each line shown appears in the output, in order, white space aside; ``...`` elides."""
    actual = _squash(output)
    position = 0
    for fragment in (part for line in shown for part in line.split(ELISION)):
        fragment = _squash(fragment)
        if not fragment:
            continue
        found = actual.find(fragment, position)
        assert found >= 0, f"{where}: shown but not in the output:\n  {fragment}\n--- the output ---\n{output}"
        position = found + len(fragment)


@pytest.fixture()
def on_cpu(monkeypatch):
    """`--device auto` means the CPU here, as the pages show it, even on a machine with a GPU."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def _page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


CONSOLE_PAGES = [page for page in PAGES if blocks(page, "console")]


@pytest.mark.parametrize("page", CONSOLE_PAGES, ids=_page_id)
def test_console_blocks_run(page, tmp_path, monkeypatch, on_cpu):
    for folder in COPIED:
        shutil.copytree(ROOT / folder, tmp_path / folder)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    ran = 0
    for command, shown, code in commands(page):
        args = shlex.split(command, comments=True)
        key = shlex.join(args)
        if key in SKIPPED or command in SKIPPED:
            continue
        assert args[0] == "crux", f"{page.name}: `{command}` is not a crux command; run it or list it in SKIPPED"
        answers = [m.group(1) for line in shown if (m := ANSWER.match(line))]
        result = runner.invoke(app, args[1:], input="".join(f"{a}\n" for a in answers) or None)
        where = f"{page.name}: $ {command}"
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise AssertionError(f"{where}: raised") from result.exception
        assert result.exit_code == code, f"{where}: exit code {result.exit_code}, shown {code}\n{result.output}"
        assert "Traceback" not in result.output, where
        assert_shown(shown, result.output, where)
        ran += 1
    assert ran, f"{page.name}: no command ran"


def test_skipped_commands_are_on_the_pages():
    """SKIPPED lists nothing the pages no longer show, so it cannot hide a command by accident."""
    shown = {shlex.join(shlex.split(c, comments=True)) for page in PAGES for c, _, _ in commands(page)}
    shown |= {c for page in PAGES for c, _, _ in commands(page)}
    assert set(SKIPPED) <= shown, set(SKIPPED) - shown


def test_python_page_runs(monkeypatch, on_cpu):
    """docs/python.md's blocks run in order in one namespace and print what they show."""
    monkeypatch.chdir(ROOT)
    namespace: dict = {"__name__": "docs_python"}
    for number, code in enumerate(blocks(DOCS / "python.md", "python"), 1):
        expected = [line[2:] if line.startswith("# ") else "" for line in code.splitlines() if line.startswith("#")]
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(compile(code, f"docs/python.md, block {number}", "exec"), namespace)  # noqa: S102
        assert printed.getvalue().splitlines() == expected, f"docs/python.md, block {number}"


LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_links_stay_in_the_repository(page):
    text = re.sub(r"^```.*?^```", "", page.read_text(encoding="utf-8"), flags=re.MULTILINE | re.DOTALL)
    assert "../shared" not in text and "shared/spec" not in text, f"{page.name} points at the spec outside the repository"
    for target in LINK.findall(text):
        if re.match(r"^[a-z]+:", target):  # https: and the like
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        assert file.is_relative_to(ROOT), f"{page.name}: {target} leaves the repository"
        assert file.exists(), f"{page.name}: {target} does not exist"
        if anchor and file.suffix == ".md":
            assert anchor in _anchors(file), f"{page.name}: {target}: no heading #{anchor} in {file.name}"


def _anchors(page: Path) -> set[str]:
    """GitHub's anchors of a page's headings."""
    text = re.sub(r"^```.*?^```", "", page.read_text(encoding="utf-8"), flags=re.MULTILINE | re.DOTALL)
    out = set()
    for heading in re.findall(r"^#+ +(.+?) *$", text, flags=re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.lower().replace("`", "")).replace(" ", "-")
        out.add(slug)
    return out


def _properties(schema: object) -> set[str]:
    found: set[str] = set()
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key == "properties" and isinstance(value, dict):
                found |= set(value)
            found |= _properties(value)
    elif isinstance(schema, list):
        for value in schema:
            found |= _properties(value)
    return found


def test_scenario_page_names_every_key_of_the_schema():
    result = CliRunner().invoke(app, ["schema"])
    assert result.exit_code == 0, result.output
    keys = _properties(json.loads(result.stdout))
    assert len(keys) > 40
    page = (DOCS / "scenario.md").read_text(encoding="utf-8")
    missing = sorted(key for key in keys if f"`{key}`" not in page and f"`{key}:" not in page)
    assert not missing, f"docs/scenario.md does not name these keys of `crux schema`: {missing}"


def test_docs_examples_are_used_and_valid():
    """docs/examples/ holds what the pages use; its scenarios validate, but for the one with mistakes."""
    pages = "".join(page.read_text(encoding="utf-8") for page in PAGES)
    runner = CliRunner()
    for file in sorted((DOCS / "examples").iterdir()):
        assert f"docs/examples/{file.name}" in pages or f"(examples/{file.name})" in pages, f"{file.name} is used by no page"
        if file.suffix == ".yaml":
            result = runner.invoke(app, ["validate", str(file)])
            assert result.exit_code == (1 if file.name == "broken.yaml" else 0), result.output
