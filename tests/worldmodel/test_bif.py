"""BIF networks: every file in tests/data loads; bad files give line-numbered problems."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crux.dialogue.cli.app import app
from crux.worldmodel.bif import read_bif
from crux.worldmodel.errors import CruxError, ModelError
from crux.worldmodel.model import load_model

DATA = Path(__file__).resolve().parent.parent / "data"
SIZES = {"asia": 8, "cancer": 5, "earthquake": 5, "sachs": 11, "survey": 6, "alarm": 37, "child": 20}


@pytest.mark.parametrize("name", sorted(SIZES))
def test_networks_load(name):
    model = load_model(DATA / f"{name}.bif.gz")
    net = model.network
    assert len(net.order) == SIZES[name]
    assert model.parties == ("world",) and net.decision is None
    world = model.beliefs("world")
    assert world.certain
    for var in net.order:
        rows = world.mean(var)
        assert rows.shape == net.shape(var)
        assert rows.sum(-1).sub(1).abs().max() < 1e-12
        assert all(net.order.index(p) < net.order.index(var) for p in net.parents[var])  # topological


def test_state_names_with_punctuation():
    net = load_model(DATA / "child.bif.gz").network
    assert "Asy/Patch" in net.states["LungParench"] or any("Asy/Patch" in s for s in net.states.values())


def test_asia_numbers_as_written():
    net, world, name = read_bif(DATA / "asia.bif.gz")
    assert name == "unknown"
    assert world.mean("asia").tolist() == [0.01, 0.99]
    assert world.mean("tub")[net.row_index("tub", "yes")].tolist() == [0.05, 0.95]


BAD = """network x {
}
variable a {
  type discrete [ 2 ] { y, n };
}
variable b {
  type discrete [ 2 ] { y, n };
}
probability ( a | c ) {
  (y) 0.5, 0.5;
}
probability ( b | a ) {
  (y) 0.5, 0.6;
  (m) 0.5, 0.5;
}
"""


def test_every_problem_with_its_line(tmp_path):
    path = tmp_path / "bad.bif"
    path.write_text(BAD)
    with pytest.raises(ModelError) as err:
        load_model(path)
    lines = str(err.value).splitlines()
    assert lines == [
        f"{path}: probability.a: line 9: unknown parent 'c' (valid: a, b)",
        f"{path}: probability.b.y: line 13: sums to 1.1, not 1",
        f"{path}: probability.b.m: line 14: (m) is not a combination of the states of a",
        f"{path}: probability.b: line 12: missing row (n)",
    ]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("variable a {\n  type discrete [ 2 ] { y, n }\n}\n", "line 3: expected ';', found '}'"),
        ("variable a {\n  type discrete [ 3 ] { y, n };\n}\nprobability ( a ) {\n  table 0.5, 0.5;\n}\n", "declares [3] states but lists 2"),
        ("variable a {\n  type discrete [ 2 ] { y, n };\n}\n", "has no probability block"),
        ("bogus", "expected `network`, `variable` or `probability`, found 'bogus'"),
        (
            "variable a {\n type discrete [ 2 ] { y, n };\n}\nvariable b {\n type discrete [ 2 ] { y, n };\n}\n"
            "probability ( a | b ) {\n (y) 0.5, 0.5;\n (n) 0.5, 0.5;\n}\nprobability ( b | a ) {\n (y) 0.5, 0.5;\n (n) 0.5, 0.5;\n}\n",
            "cycle",
        ),
        ("variable a {\n  type discrete [ 2 ] { y, n };\n}\nprobability ( a ) {\n  table 0.5, x;\n}\n", "'x' is not a number"),
    ],
)
def test_bad_files(tmp_path, text, needle):
    path = tmp_path / "bad.bif"
    path.write_text(text)
    with pytest.raises(ModelError, match=None) as err:
        load_model(path)
    assert needle in str(err.value)


def test_unreadable_files(tmp_path):
    with pytest.raises(CruxError, match="no such file"):
        load_model(tmp_path / "none.bif")
    broken = tmp_path / "broken.bif.gz"
    broken.write_bytes(b"not gzip")
    with pytest.raises(CruxError, match="cannot read a BIF network"):
        load_model(broken)


def test_cli_validate_and_ask_on_bif(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["validate", str(DATA / "alarm.bif.gz")])
    assert result.exit_code == 0 and result.stdout.strip() == "ok: 37 variables, 0 facts"
    plain = tmp_path / "asia.bif"
    plain.write_bytes(gzip.decompress((DATA / "asia.bif.gz").read_bytes()))
    result = runner.invoke(app, ["ask", str(plain), "what happens if smoke=yes given xray=yes", "--json"])
    assert result.exit_code == 0, result.stderr
    import json

    answer = json.loads(result.stdout)
    assert answer["query"]["as"] == "world"
    assert set(answer["outcomes"]) == {"asia", "tub", "lung", "bronc", "either", "dysp"}
    for dist in answer["outcomes"].values():
        assert [list(pair) for pair in zip(dist["p"], dist["p"])] == dist["interval"]  # point numbers, point intervals
    result = runner.invoke(app, ["ask", str(plain), "--do", "smoke=yes", "--as", "agent"])
    assert result.exit_code == 1 and "world" in result.stderr
    bad = tmp_path / "bad.bif"
    bad.write_text(BAD)
    result = runner.invoke(app, ["validate", str(bad)])
    assert result.exit_code == 1 and len(result.stderr.strip().splitlines()) == 4


@pytest.mark.parametrize(
    "command, bif",
    [(["validate"], True), (["ask"], True), (["serve", "--port", "0"], True), (["session"], False), (["beliefs"], False)],
)
def test_unknown_model_format_names_bif_where_the_command_takes_it(tmp_path, command, bif):
    """ask, validate and serve take a BIF network too, and their error for an unknown suffix says
    so; the commands that need a scenario name its formats alone, and a BIF file gets their own
    refusal."""
    path = tmp_path / "model.txt"
    path.write_text("crux: 1\n")
    result = CliRunner().invoke(app, [*command, str(path)])
    scenario = f"error: {path}: unknown model format '.txt': use a scenario file (.yaml, .yml, .json)"
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr == scenario + (" or a Bayesian network (.bif, .bif.gz)" if bif else "") + "\n"
