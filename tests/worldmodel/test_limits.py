"""Hostile model files: every one is refused with a CruxError that names the file and the place,
quickly, and without allocating what the file describes.

Each test makes its own input: non-finite numbers (BIF and scenario), tables with a billion rows,
oversized and decompression-bomb files, scenes unrolled over a billion steps, ``use`` paths that
lead out of the scenario's folder, nesting deep enough to exhaust Python's stack, and the small
traps of YAML (``6e-1`` is text).  The limits are those of :mod:`worldmodel.limits`.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import re
import resource
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from crux.dialogue.cli.app import app
from crux.worldmodel import limits
from crux.worldmodel.errors import CruxError, ModelError
from crux.worldmodel.load import load_scenario
from crux.worldmodel.model import load_model

ROOT = Path(__file__).resolve().parents[2]
WAREHOUSE = ROOT / "examples" / "warehouse" / "scene.yaml"
FORKLIFT = Path(__file__).resolve().parent / "scenes" / "forklift.yaml"


def _max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux


@contextlib.contextmanager
def frugal(max_mb: float = 20.0, max_s: float = 5.0) -> Iterator[None]:
    """The block allocates at most ``max_mb`` MB of Python memory at its peak (tracemalloc), raises
    the process's peak resident memory by at most that and 50 MB more (ru_maxrss: torch's memory
    too), and takes at most ``max_s`` seconds: the refusal came before the work."""
    rss = _max_rss_mb()
    tracemalloc.start()
    start = time.perf_counter()
    try:
        yield
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        elapsed = time.perf_counter() - start
    assert peak < max_mb * 1e6, f"peak {peak / 1e6:.1f} MB"
    assert _max_rss_mb() - rss < max_mb + 50, f"peak resident memory grew by {_max_rss_mb() - rss:.0f} MB"
    assert elapsed < max_s, f"{elapsed:.2f} s"


def refused(path: Path, **kwargs: Any) -> str:
    """The message of the CruxError that loading ``path`` raises; every line names the file."""
    with pytest.raises(CruxError) as info:
        load_model(path, **kwargs)
    message = str(info.value)
    assert "Traceback" not in message
    for line in message.splitlines():
        assert line.startswith(f"{path}: "), line
    return message


def bif(variables: dict[str, list[str]], blocks: str) -> str:
    """A BIF text: the variables with their states, then the probability blocks as given."""
    out = ["network test {\n}\n"]
    for name, states in variables.items():
        out.append(f"variable {name} {{\n  type discrete [ {len(states)} ] {{ {', '.join(states)} }};\n}}\n")
    return "".join(out) + blocks


TWO = {"a": ["yes", "no"], "b": ["yes", "no"]}
A_PRIOR = "probability ( a ) {\n  table 0.5, 0.5;\n}\n"


# -- 1. numbers must be finite, wherever they enter ------------------------------------------------


@pytest.mark.parametrize("word", ["nan", "NaN", "inf", "-inf", "Infinity", "1e999"])
def test_bif_non_finite_probability_is_refused(tmp_path: Path, word: str) -> None:
    path = tmp_path / "net.bif"
    path.write_text(bif(TWO, A_PRIOR + f"probability ( b | a ) {{\n  (yes) {word}, 0.95;\n  (no) 0.5, 0.5;\n}}\n"))
    message = refused(path)
    assert message == f"{path}: probability.b: line 13: {word!r} is not a finite number"


def test_bif_non_finite_prior_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "net.bif"
    path.write_text(bif({"a": ["yes", "no"]}, "probability ( a ) {\n  table 0.5, nan;\n}\n"))
    assert refused(path) == f"{path}: probability.a: line 7: 'nan' is not a finite number"


def _with_continuous(data: dict[str, Any]) -> None:
    data["world"]["variables"]["load"] = {"normal": {"intercept": 1.0, "scale": 2.0}}
    data["world"]["variables"]["wear"] = {
        "parents": ["load", "road"],
        "normal": {"intercept": 0.0, "weights": {"load": 0.5}, "offsets": {"road": {"wet": 1.0}}, "scale": 1.0},
    }


NON_FINITE_PLACES = [
    # (path into the data, the value's place as the error names it, extra setup)
    (("world", "variables", "road", "prior", 0), "world.variables.road.prior", None),
    (("world", "variables", "crash", "table", "wet, swerve, car", 1), 'world.variables.crash.table."wet, swerve, car"', None),
    (("world", "variables", "crash", "strength"), "world.variables.crash.strength", None),
    (("world", "variables", "crash", "row_strength", "wet, swerve, car"), 'world.variables.crash.row_strength."wet, swerve, car"', None),
    (("facts", "radar", "reliability"), "facts.radar.reliability", None),
    (("facts", "fleet_logs", "counts", "counts", "crash"), "facts.fleet_logs.counts.counts.crash", None),
    (("parties", "agent", "values", "harm", "cat"), "parties.agent.values.harm.cat", None),
    (("parties", "agent", "beliefs", "priors", "road", 0), "parties.agent.beliefs.priors.road", None),
    (("parties", "human", "responds", "accept_min_reliability"), "parties.human.responds.accept_min_reliability", None),
    (("world", "variables", "load", "normal", "intercept"), "world.variables.load.normal.intercept", _with_continuous),
    (("world", "variables", "load", "normal", "scale"), "world.variables.load.normal.scale", _with_continuous),
    (("world", "variables", "wear", "normal", "weights", "load"), "world.variables.wear.normal.weights.load", _with_continuous),
    (("world", "variables", "wear", "normal", "offsets", "road", "wet"), "world.variables.wear.normal.offsets.road.wet", _with_continuous),
]


def _set(data: Any, path: tuple[Any, ...], value: Any) -> None:
    for part in path[:-1]:
        if isinstance(data, dict) and part not in data:
            data[part] = {}
        data = data[part]
    data[path[-1]] = value


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize(("path", "place", "setup"), NON_FINITE_PLACES, ids=[p[1] for p in NON_FINITE_PLACES])
def test_scenario_non_finite_numbers_are_refused_at_their_place(
    example: dict, write: Callable[..., Path], path: tuple, place: str, setup: Callable | None, value: float, suffix: str
) -> None:
    """YAML's .nan/.inf and JSON's NaN/Infinity never reach a model: the error names where."""
    if setup is not None:
        setup(example)
    if path[0] == "parties" and path[3] == "priors":
        example["parties"]["agent"]["beliefs"]["priors"] = {"road": [0.5, 0.5]}
    _set(example, path, value)
    file = write(example, "scenario" + suffix)
    with pytest.raises(ModelError) as info:
        load_scenario(file)
    lines = str(info.value).splitlines()
    assert any(line.startswith(f"{file}: {place}") for line in lines), lines


def test_every_loaded_number_is_finite(example: dict, write: Callable[..., Path]) -> None:
    """The continuous variables above load when their numbers are finite (the setup is sound)."""
    _with_continuous(example)
    load_scenario(write(example))


# -- 2. budgets checked before the work ------------------------------------------------------------


def _wide_scenario(example: dict[str, Any], parents: int) -> dict[str, Any]:
    """The example with ``parents`` more two-state roots, all parents of crash: 2^parents x 12 rows."""
    for i in range(parents):
        example["world"]["variables"][f"q{i}"] = {"states": ["a", "b"], "prior": [0.5, 0.5]}
    example["world"]["variables"]["crash"]["parents"] += [f"q{i}" for i in range(parents)]
    return example


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_scenario_table_of_a_billion_rows_is_refused_before_listing(example: dict, write, suffix: str) -> None:
    file = write(_wide_scenario(example, 30), "wide" + suffix)
    assert file.stat().st_size < 12_000
    with frugal():
        message = refused(file)
    assert message.splitlines()[0] == (
        f"{file}: world.variables.crash: crash's table would hold 12,884,901,888 rows x 2 states = 25,769,803,776 numbers, "
        "over the limit of 4,000,000 (MAX_TABLE_NUMBERS; set CRUX_MAX_TABLE_NUMBERS to raise it): give it fewer parents or states"
    )


def test_scenario_tables_over_the_model_budget_are_refused(write) -> None:
    """Each table under the per-table limit, all of them together over the model's."""
    variables: dict[str, Any] = {f"r{i}": {"states": ["a", "b"], "prior": [0.5, 0.5]} for i in range(20)}
    for j in range(6):  # 2^20 rows x 3 states = 3,145,728 numbers each; 18.9 million in all
        variables[f"c{j}"] = {"states": ["x", "y", "z"], "parents": [f"r{i}" for i in range(20)], "table": {}}
    variables["act"] = {"states": ["go", "stay"]}
    data = {"crux": 1, "name": "wide", "world": {"variables": variables, "decision": "act", "outcomes": ["c0"]}}
    file = write(data)
    with frugal():
        message = refused(file)
    assert (
        f"{file}: world.variables: the tables would hold 18,874,408 numbers in all, over the limit of 16,000,000 "
        "(MAX_MODEL_NUMBERS; set CRUX_MAX_MODEL_NUMBERS to raise it): make the model smaller"
    ) in message.splitlines()
    assert "missing row" in message  # the rest is still checked, from the rows written alone


def test_bif_table_of_a_billion_rows_is_refused_before_listing(tmp_path: Path) -> None:
    parents = {f"p{i}": ["a", "b"] for i in range(30)}
    blocks = "".join(f"probability ( p{i} ) {{\n  table 0.5, 0.5;\n}}\n" for i in range(30))
    blocks += "probability ( c | " + ", ".join(parents) + " ) {\n  (" + ", ".join(["a"] * 30) + ") 0.5, 0.5;\n}\n"
    path = tmp_path / "wide.bif"
    path.write_text(bif({**parents, "c": ["x", "y"]}, blocks))
    assert path.stat().st_size < 4_000
    with frugal():
        message = refused(path)
    assert re.search(
        r"probability\.c: line \d+: the table of c would hold 1,073,741,824 rows x 2 states = 2,147,483,648 numbers, "
        r"over the limit of 4,000,000 \(MAX_TABLE_NUMBERS; set CRUX_MAX_TABLE_NUMBERS to raise it\)",
        message,
    )


def test_limits_can_be_changed_from_the_environment(example: dict, write, monkeypatch) -> None:
    file = write(example)
    monkeypatch.setenv("CRUX_MAX_TABLE_NUMBERS", "20")
    message = refused(file)
    assert "crash's table would hold 12 rows x 2 states = 24 numbers, over the limit of 20 (MAX_TABLE_NUMBERS" in message
    monkeypatch.setenv("CRUX_MAX_TABLE_NUMBERS", "lots")
    with pytest.raises(CruxError, match=r"CRUX_MAX_TABLE_NUMBERS='lots': give a positive whole number \(the default is 4,000,000\)"):
        load_model(file)
    monkeypatch.setenv("CRUX_MAX_TABLE_NUMBERS", "8_000_000")
    assert limits.limit("MAX_TABLE_NUMBERS") == 8_000_000
    load_model(file)


def test_every_limit_is_documented() -> None:
    for name in limits.NAMES:
        assert isinstance(getattr(limits, name), int) and getattr(limits, name) > 0
    source = Path(limits.__file__).read_text()
    for name in limits.NAMES:  # a docstring right under each constant
        assert re.search(rf'^{name} = [0-9_]+\n"""', source, re.MULTILINE), name


@pytest.mark.parametrize("name", ["big.yaml", "big.json", "big.bif"])
def test_file_over_the_size_limit_is_refused_unread(tmp_path: Path, name: str) -> None:
    """A (sparse) 60 MB file: refused from its size, before a byte is read."""
    path = tmp_path / name
    with path.open("wb") as f:
        f.truncate(60_000_000)
    with frugal(max_mb=5):
        message = refused(path)
    assert message == f"{path}: is 60,000,000 bytes, over the limit of 50,000,000 (MAX_FILE_BYTES; set CRUX_MAX_FILE_BYTES to raise it)"


def test_file_size_limit_from_the_environment(example_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("CRUX_MAX_FILE_BYTES", "1000")
    message = refused(example_path)
    assert message.endswith("bytes, over the limit of 1,000 (MAX_FILE_BYTES; set CRUX_MAX_FILE_BYTES to raise it)")


def test_gzip_bomb_stops_at_the_decompressed_limit(tmp_path: Path, monkeypatch) -> None:
    """20 MB of text in a 20 KB archive, read in bounded chunks and stopped past 2 MB."""
    path = tmp_path / "bomb.bif.gz"
    path.write_bytes(gzip.compress(b"// nothing\n" * 2_000_000, compresslevel=9))
    assert path.stat().st_size < 100_000
    monkeypatch.setenv("CRUX_MAX_DECOMPRESSED_BYTES", "2000000")
    with frugal(max_mb=10):
        message = refused(path)
    assert message == (
        f"{path}: decompresses to more than 2,000,000 bytes, over the limit of 2,000,000 "
        "(MAX_DECOMPRESSED_BYTES; set CRUX_MAX_DECOMPRESSED_BYTES to raise it)"
    )


def test_gzip_under_the_limit_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "net.bif.gz"
    path.write_bytes(gzip.compress(bif(TWO, A_PRIOR + "probability ( b | a ) {\n  (yes) 0.1, 0.9;\n  (no) 0.5, 0.5;\n}\n").encode()))
    assert load_model(path).network.order == ("a", "b")


def test_scene_unrolled_over_a_billion_steps_is_refused_before_building() -> None:
    with frugal():
        message = refused(WAREHOUSE, steps=10**9)
    assert message == (
        f"{WAREHOUSE}: entities: the scene unrolled over 1,000,000,000 steps would have more than 100,000 variables "
        "(7 entities x their attributes x steps), over the limit of 100,000 (MAX_SCENE_VARIABLES; set "
        "CRUX_MAX_SCENE_VARIABLES to raise it): unroll fewer steps (--steps, or the largest `t` of a watched stream)"
    )


def test_scene_unrolled_by_a_watched_stream_is_refused(tmp_path: Path) -> None:
    """crux watch unrolls the scene to the stream's largest t: a t of a billion is refused, clearly."""
    stream = tmp_path / "stream.jsonl"
    stream.write_text(json.dumps({"t": 10**9, "entity": "f1", "attribute": "motion", "value": "moving"}) + "\n")
    start = time.perf_counter()
    result = CliRunner().invoke(app, ["watch", str(WAREHOUSE), str(stream)])
    assert time.perf_counter() - start < 5
    assert result.exit_code == 1 and "internal error" not in result.stderr
    assert result.stderr.startswith(f"{WAREHOUSE}: entities: the scene unrolled over 1,000,000,000 steps")
    assert "the largest `t` of a watched stream" in result.stderr


def test_scene_too_large_without_steps(monkeypatch) -> None:
    monkeypatch.setenv("CRUX_MAX_SCENE_VARIABLES", "10")
    assert refused(WAREHOUSE).startswith(f"{WAREHOUSE}: entities: the scene would have more than 10 variables (7 entities x their attributes)")


def test_chains_that_fold_relations_count_towards_the_scene(monkeypatch) -> None:
    """The attributes alone fit; the chains that fold related entities push the scene over."""
    scenario = load_scenario(WAREHOUSE)
    attributes = [v for v in scenario.world.variables if v.split(".", 1)[0] in scenario.entities and v.count(".") == 1]
    monkeypatch.setenv("CRUX_MAX_SCENE_VARIABLES", str(len(attributes)))
    message = refused(WAREHOUSE)
    assert "grounding the scene makes more than" in message and "(with the chains that fold related entities)" in message


def test_scene_whose_tables_are_copied_past_the_model_budget(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("CRUX_MAX_MODEL_NUMBERS", "20")
    data = yaml.safe_load(FORKLIFT.read_text())
    path = tmp_path / "scene.yaml"
    path.write_text(yaml.safe_dump(data))
    message = refused(path)
    assert "the scene's tables would hold more than 20 numbers once grounded" in message


def test_count_parent_with_a_huge_top_label_is_refused_quickly(tmp_path: Path) -> None:
    """"999999999+" as a count's top row key: never a list of a billion labels."""
    data = yaml.safe_load(FORKLIFT.read_text())
    hazard = data["types"]["Forklift"]["attributes"]["hazard"]
    hazard["aggregate"] = "count"
    hazard["parents"] = ["in_path_of.present"]
    hazard["table"] = {"0": [0.9, 0.1], "999999999+": [0.1, 0.9]}
    path = tmp_path / "scene.yaml"
    path.write_text(yaml.safe_dump(data))
    with frugal():
        message = refused(path)
    assert "a `count` parent's row keys must be 0, 1, ..., 999999999+ (1,000,000,000 in all; the table has 2)" in message


# -- 6. `use` stays inside the scenario's folder -----------------------------------------------------


@pytest.fixture
def scene_dir(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    """A scene folder (lib/workers.yaml holds its Worker type) beside an outside folder whose
    files must never be read."""
    data = yaml.safe_load(FORKLIFT.read_text())
    worker = data["types"].pop("Worker")
    (tmp_path / "scene" / "lib").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (tmp_path / "scene" / "lib" / "workers.yaml").write_text(yaml.safe_dump({"types": {"Worker": worker}}))
    (tmp_path / "outside" / "secret.yaml").write_text(yaml.safe_dump({"types": {"Worker": worker}, "SECRET_KEY": "SECRET_VALUE"}))
    (tmp_path / "outside" / "broken.yaml").write_text("SECRET_KEY: [SECRET_VALUE\n")
    return tmp_path / "scene", data


def _use(scene_dir: tuple[Path, dict[str, Any]], ref: str) -> Path:
    folder, data = scene_dir
    path = folder / "scene.yaml"
    path.write_text(yaml.safe_dump({**data, "use": [ref]}))
    return path


@pytest.mark.parametrize("ref", ["lib/workers.yaml", "lib/../lib/workers.yaml", "./lib/workers.yaml"])
def test_use_inside_the_folder_loads(scene_dir, ref: str) -> None:
    assert "w1.present" in load_scenario(_use(scene_dir, ref)).world.variables


def test_use_through_a_link_that_stays_inside_loads(scene_dir) -> None:
    folder, _ = scene_dir
    (folder / "lib" / "alias.yaml").symlink_to(folder / "lib" / "workers.yaml")
    assert "w1.present" in load_scenario(_use(scene_dir, "lib/alias.yaml")).world.variables


@pytest.mark.parametrize(
    ("ref", "why"),
    [
        ("../outside/secret.yaml", "is outside the scenario's folder"),
        ("../outside/broken.yaml", "is outside the scenario's folder"),
        ("lib/../../outside/secret.yaml", "is outside the scenario's folder"),
        ("ABSOLUTE", "is an absolute path"),
        ("lib/link.yaml", "is outside the scenario's folder"),
        ("lib/dirlink/secret.yaml", "is outside the scenario's folder"),
    ],
)
def test_use_outside_the_folder_is_refused_unread(scene_dir, ref: str, why: str) -> None:
    folder, _ = scene_dir
    outside = folder.parent / "outside"
    (folder / "lib" / "link.yaml").symlink_to(outside / "secret.yaml")
    (folder / "lib" / "dirlink").symlink_to(outside, target_is_directory=True)
    if ref == "ABSOLUTE":
        ref = str(outside / "secret.yaml")
    path = _use(scene_dir, ref)
    message = refused(path)
    first = message.splitlines()[0]
    assert first.startswith(f"{path}: use[0]: ") and first.endswith(
        f": {why}: give a path relative to this file, inside its folder"
        if why == "is an absolute path"
        else f": {why}: a scene uses library files in its own folder or below it"
    )
    assert "SECRET" not in message  # nothing of the outside file is read, so nothing is shown


def test_use_of_a_named_pipe_is_refused_without_blocking(scene_dir) -> None:
    folder, _ = scene_dir
    os.mkfifo(folder / "lib" / "pipe.yaml")
    path = _use(scene_dir, "lib/pipe.yaml")
    start = time.perf_counter()
    message = refused(path)
    assert time.perf_counter() - start < 2
    assert f"use[0]: {folder / 'lib' / 'pipe.yaml'}: is not a regular file (a pipe, a device or a socket)" in message


def test_use_of_a_directory_or_nothing_is_refused(scene_dir) -> None:
    (scene_dir[0] / "lib" / "folder.yaml").mkdir()
    assert "folder.yaml: is a directory, not a model file" in refused(_use(scene_dir, "lib/folder.yaml"))
    assert "give the path of a library file" in refused(_use(scene_dir, ""))
    assert "no such file" in refused(_use(scene_dir, "lib/none.yaml"))


def test_bundled_warehouse_scene_with_its_library_loads() -> None:
    model = load_model(WAREHOUSE)
    assert "f1.hazard" in model.network.order
    assert len(load_model(WAREHOUSE, steps=2).network.order) > len(model.network.order)


# -- 8. internal errors become clear ones -------------------------------------------------------------


@pytest.mark.parametrize("depth", [100, 600, 5000])
@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_deep_nesting_is_a_clear_error(tmp_path: Path, depth: int, suffix: str) -> None:
    path = tmp_path / f"deep{suffix}"
    nested = "[" * depth + "]" * depth
    path.write_text(f'{{"crux": 1, "name": {nested}}}' if suffix == ".json" else f"crux: 1\nname: {nested}\n")
    with frugal(max_mb=50):
        message = refused(path)
    assert "(MAX_NESTING; set CRUX_MAX_NESTING to raise it)" in message
    assert re.search(r"nested (more than 64 levels deep|too deeply for the JSON parser)", message)


def test_deep_nesting_through_yaml_aliases(tmp_path: Path) -> None:
    lines = ["crux: 1", "a0: &a0 [x]"] + [f"a{i}: &a{i} [*a{i - 1}]" for i in range(1, 100)]
    path = tmp_path / "aliases.yaml"
    path.write_text("\n".join(lines) + "\n")
    assert "nested more than 64 levels deep (through a YAML alias)" in refused(path)


def test_yaml_that_contains_itself_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "loop.yaml"
    path.write_text("crux: 1\nname: &me [*me]\n")
    assert refused(path) == f"{path}: name[0]: contains itself (a YAML alias inside its own anchor)"


def test_billion_laughs_is_refused_quickly(tmp_path: Path) -> None:
    lines = ["crux: 1", "l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, 10)]
    path = tmp_path / "laughs.yaml"
    path.write_text("\n".join(lines) + "\n")
    with frugal():
        message = refused(path)
    assert "holds more than 20,000,000 values once YAML aliases are expanded (MAX_VALUES" in message


def test_bif_family_naming_a_parent_twice_is_refused_at_load(tmp_path: Path) -> None:
    rows = "".join(f"  ({x}, {y}) 0.5, 0.5;\n" for x in ("yes", "no") for y in ("yes", "no"))
    path = tmp_path / "twice.bif"
    path.write_text(bif(TWO, A_PRIOR + f"probability ( b | a, a ) {{\n{rows}}}\n"))
    assert refused(path) == f"{path}: probability.b: line 12: parent 'a' is listed 2 times: name each parent once"


def test_bif_variable_that_is_its_own_parent_is_a_cycle(tmp_path: Path) -> None:
    path = tmp_path / "self.bif"
    path.write_text(bif({"a": ["y", "n"]}, "probability ( a | a ) {\n  (y) 0.5, 0.5;\n  (n) 0.5, 0.5;\n}\n"))
    assert "cycle a -> a" in refused(path)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("crux: 1\nname: 2001-13-45\n", "line 2, column 7: cannot read '2001-13-45' as timestamp: month must be in 1..12"),
        ("crux: 1\nname: " + "9" * 5000 + "\n", "line 2, column 7: cannot read '99999"),
        ("crux: 1\nname: !!float abc\n", "line 2, column 7: cannot read 'abc' as float"),
    ],
    ids=["bad-date", "huge-int", "bad-float"],
)
def test_yaml_scalars_python_cannot_build_are_clear_errors(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "scalar.yaml"
    path.write_text(text)
    message = refused(path)
    assert message.startswith(f"{path}: {needle}"), message
    assert len(message) < 300


def test_json_integer_too_long(tmp_path: Path) -> None:
    path = tmp_path / "long.json"
    path.write_text('{"crux": ' + "9" * 5000 + "}")
    assert refused(path) == f"{path}: a number of 5,000 digits is too large: numbers must fit a double (at most about 1.8e308)"


# -- 9. the small traps --------------------------------------------------------------------------------


def test_yaml_exponent_without_a_dot_says_how_to_write_it(example_path: Path, tmp_path: Path) -> None:
    text = example_path.read_text().replace("prior: [0.6, 0.4]", "prior: [6e-1, 4e-1]", 1)
    assert "6e-1" in text
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    lines = refused(path).splitlines()
    assert lines[0] == f"{path}: world.variables.road.prior[0]: input should be a valid number, got '6e-1': YAML reads 6e-1 as text; write 0.6 or 6.0e-1"
    assert lines[1].endswith("got '4e-1': YAML reads 4e-1 as text; write 0.4 or 4.0e-1")


def test_yaml_exponent_with_a_dot_and_a_sign_is_a_number(example_path: Path, tmp_path: Path) -> None:
    path = tmp_path / "exp.yaml"
    path.write_text(example_path.read_text().replace("prior: [0.6, 0.4]", "prior: [6.0e-1, 4.0e-1]", 1))
    assert load_scenario(path).world.variables["road"].prior == [0.6, 0.4]


def test_quoted_numbers_and_non_finite_text_get_a_hint(example: dict, write) -> None:
    example["world"]["variables"]["crash"]["strength"] = "nan"
    example["facts"]["radar"]["reliability"] = "0.9"
    file = write(example)
    lines = refused(file).splitlines()
    assert f"{file}: world.variables.crash.strength: input should be a valid number, got 'nan': 'nan' is text, and a number must be finite" in lines
    assert f"{file}: facts.radar.reliability: input should be a valid number, got '0.9': it is quoted text; write the number without quotes" in lines


def test_empty_bif_is_refused(tmp_path: Path) -> None:
    for text in ("", "// only a comment\n", "network empty {\n}\n"):
        path = tmp_path / "empty.bif"
        path.write_text(text)
        assert refused(path) == f"{path}: no variables: a BIF network declares `variable NAME {{ type discrete [ n ] {{ ... }}; }}` blocks"


def test_json_duplicate_keys_are_refused_at_any_depth(example: dict, write) -> None:
    text = json.dumps(example).replace('"road": {', '"road": {"strength": 5, "strength": 6, ', 1)
    file = write(text, "dup.json")
    assert refused(file) == f"{file}: the key 'strength' is given twice in one object: give each key once"


def test_yaml_duplicate_keys_are_refused_at_any_depth(example_path: Path, tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text(example_path.read_text().replace("prior: [0.6, 0.4]", "prior: [0.6, 0.4]\n      prior: [0.5, 0.5]", 1))
    assert "the key 'prior' is given twice in one mapping: give each key once" in refused(path)


def test_bif_state_count_with_unicode_digits(tmp_path: Path) -> None:
    path = tmp_path / "digits.bif"
    path.write_text("variable a {\n  type discrete [ \u00b2 ] { y, n };\n}\nprobability ( a ) {\n  table 0.5, 0.5;\n}\n")
    assert refused(path) == f"{path}: variable.a: line 2: declares [\u00b2] states but lists 2"


# -- hostile names: no output bombs, no terminal control ----------------------------------------------


def test_control_characters_in_names_are_refused(example: dict, write) -> None:
    example["world"]["variables"]["road"]["states"] = ["dry", "\x1b[31mwet"]
    file = write(example, "ansi.json")
    lines = refused(file).splitlines()
    assert f"{file}: world.variables.road.states[1]: contains the control character '\\x1b': a name is printable text" in lines
    assert not any("\x1b" in line for line in lines)


def test_unpaired_surrogate_is_refused(example: dict, write) -> None:
    text = json.dumps(example).replace('"dry"', '"dr\\ud800y"', 1)
    file = write(text, "surrogate.json")
    assert "text with the unpaired surrogate '\\ud800': not valid Unicode" in refused(file)


def test_errors_grow_no_faster_than_the_file(write) -> None:
    """A parent with 3,000 long states and 2,000 rows naming an unknown one: each message shows a
    few states, not all of them, and "did you mean" is not asked of thousands of candidates."""
    states = [f"{'s' * 150}{i}" for i in range(3000)]
    variables: dict[str, Any] = {
        "p": {"states": states, "prior": [1 / 3000] * 3000},
        "c": {"states": ["x", "y"], "parents": ["p"], "table": {f"bad{i}": [0.5, 0.5] for i in range(2000)}},
        "act": {"states": ["go", "stay"]},
    }
    data = {"crux": 1, "name": "long", "world": {"variables": variables, "decision": "act", "outcomes": ["c"]}}
    file = write(data, "long.json")
    size = file.stat().st_size
    start = time.perf_counter()
    message = refused(file)
    assert time.perf_counter() - start < 5
    assert len(message) < 3 * size
    assert "... (3000 in all)" in message
