"""Fuzzing the scenario loader: whatever a file holds, loading it gives a model or a CruxError.

Hypothesis starts from the canonical example (or a small scene, unrolled over some steps) as
plain data and breaks it: a value anywhere
replaced by a hostile one (wrong types, non-finite numbers, odd names: unicode, empty, very long,
YAML's special words, control characters, deep nesting, huge lists), keys renamed or added,
variables given many parents or states.  The result is written as YAML or JSON and loaded the
way every command loads it.  Never any other exception, never a model holding a non-finite
number, and memory bounded over the whole run.
"""

from __future__ import annotations

import copy
import json
import math
import os
import resource
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crux.worldmodel.errors import CruxError
from crux.worldmodel.model import load_model

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "squirrel_or_cat.yaml"
SCENE = Path(__file__).resolve().parent / "scenes" / "forklift.yaml"


def _scene() -> dict[str, Any]:
    """The forklift scene, its speed changing over time (so that steps unroll it)."""
    data = yaml.safe_load(SCENE.read_text(encoding="utf-8"))
    data["types"]["Forklift"]["attributes"]["speed"]["next"] = {
        "parents": ["self.speed"],
        "table": {"slow": [0.9, 0.1], "fast": [0.2, 0.8]},
    }
    return data


BASES: list[dict[str, Any]] = [yaml.safe_load(EXAMPLE.read_text(encoding="utf-8")), _scene()]

FUZZ = settings(
    max_examples=int(os.environ.get("CRUX_FUZZ_EXAMPLES", "150")),  # more for a deeper search
    deadline=None,
    database=None,  # no .hypothesis folder in the tree
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)


def _paths(data: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path to a value in ``data`` (keys of mappings, indexes of lists)."""
    out = [prefix] if prefix else []
    if isinstance(data, dict):
        for key, value in data.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            out += _paths(value, (*prefix, i))
    return out


def _get(data: Any, path: tuple) -> Any:
    """The value at ``path``, or None where an earlier mutation changed the way there."""
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


PATHS = [_paths(base) for base in BASES]
MAPPINGS = [[()] + [p for p in paths if isinstance(_get(base, p), dict)] for base, paths in zip(BASES, PATHS)]

ODD_NAMES = st.sampled_from(
    [
        "", " ", "yes", "no", "on", "Off", "~", "null", "true", ".nan", ".inf", "-.inf", "6e-1", "0x1F", "1_000",
        "2001-12-14", "a, b", ",", "dry ", "\u00e9t\u00e9", "\u202eevil", "\U0001f600", "\x1b[31mred", "tab\there",
        "line\nbreak", "\x00", "x" * 5000, "<<", "&anchor", "*alias", "!!python/object:os.system", "[", "{", "#",
        "world", "variables", "action", "road", "crash", "harm", "\ud800",
    ]
)

NUMBERS = st.one_of(
    st.sampled_from([math.nan, math.inf, -math.inf, 0, -1, 1e308, -1e308, 5e-324, 2**64, 10**30, True, False]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**20), max_value=10**20),
)


def _nested(depth: int) -> Any:
    value: Any = "deep"
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


HOSTILE = st.one_of(
    NUMBERS,
    ODD_NAMES,
    st.text(max_size=30),
    st.none(),
    st.just([]),
    st.just({}),
    st.integers(min_value=1, max_value=200).map(_nested),
    st.integers(min_value=0, max_value=3000).map(lambda n: [f"s{i}" for i in range(n)]),  # many states
    st.integers(min_value=0, max_value=3000).map(lambda n: [1.0 / max(n, 1)] * n),  # long rows
    st.lists(NUMBERS, max_size=5),
    st.lists(ODD_NAMES, max_size=5),
    st.dictionaries(ODD_NAMES, st.one_of(NUMBERS, ODD_NAMES, st.lists(NUMBERS, max_size=3)), max_size=4),
)


@st.composite
def replace_value(draw: st.DrawFn, data: dict, base: int) -> None:
    path = draw(st.sampled_from(PATHS[base]))
    container, value = _get(data, path[:-1]), draw(HOSTILE)
    if isinstance(container, dict) or (isinstance(container, list) and isinstance(path[-1], int) and path[-1] < len(container)):
        container[path[-1]] = value


@st.composite
def rename_key(draw: st.DrawFn, data: dict, base: int) -> None:
    path = draw(st.sampled_from(MAPPINGS[base]))
    mapping = _get(data, path)
    if isinstance(mapping, dict) and mapping:
        old = draw(st.sampled_from(sorted(mapping, key=str)))
        mapping[draw(ODD_NAMES)] = mapping.pop(old)


@st.composite
def add_key(draw: st.DrawFn, data: dict, base: int) -> None:
    mapping, key, value = _get(data, draw(st.sampled_from(MAPPINGS[base]))), draw(ODD_NAMES), draw(HOSTILE)
    if isinstance(mapping, dict):
        mapping[key] = value


@st.composite
def drop_key(draw: st.DrawFn, data: dict, base: int) -> None:
    path = draw(st.sampled_from(PATHS[base]))
    container = _get(data, path[:-1])
    if isinstance(container, dict) and path[-1] in container:
        del container[path[-1]]


@st.composite
def widen(draw: st.DrawFn, data: dict, base: int) -> None:
    """Give a variable many parents and states: a table far too large to list."""
    variables = _get(data, ("world", "variables"))
    parents = draw(st.integers(min_value=1, max_value=40))
    states = draw(st.integers(min_value=2, max_value=50))
    name = draw(st.sampled_from(["crash", "harm", "animal_hit", "road", "delay"]))
    target = variables.get(name) if isinstance(variables, dict) else None
    if not isinstance(target, dict):
        return
    for i in range(parents):
        variables[f"w{i}"] = {"states": [f"v{j}" for j in range(states)], "prior": [1 / states] * states}
    old = target.get("parents")
    target["parents"] = (old if isinstance(old, list) else []) + [f"w{i}" for i in range(parents)]


@st.composite
def use_refs(draw: st.DrawFn, data: dict, base: int) -> None:
    """Library paths that lead nowhere, out of the folder, or to what is not a file."""
    refs = ["/etc/passwd", "../../../../etc/passwd", "..", ".", "", "lib/../../x.yaml", "/dev/zero", "/dev/stdin", "~/x.yaml"]
    data["use"] = draw(st.lists(st.one_of(st.sampled_from(refs), ODD_NAMES), max_size=3))


MUTATIONS = [replace_value, replace_value, replace_value, rename_key, add_key, drop_key, widen, use_refs]


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[dict, int | None]:
    """A broken scenario, and the steps to unroll it over (a scene only)."""
    base = draw(st.integers(min_value=0, max_value=len(BASES) - 1))
    data = copy.deepcopy(BASES[base])
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        draw(draw(st.sampled_from(MUTATIONS))(data, base))
    steps = draw(st.sampled_from([None, 0, 2, 10**9])) if base == 1 else None
    return data, steps


def _write(data: Any, folder: Path, suffix: str) -> Path | None:
    path = folder / f"fuzz{suffix}"
    try:
        if suffix == ".json":
            text = json.dumps(data)  # ensure_ascii: lone surrogates travel as \ud800
        else:
            text = yaml.safe_dump(data, allow_unicode=False)
        path.write_text(text, encoding="utf-8")
    except (ValueError, TypeError, yaml.YAMLError, UnicodeEncodeError):
        return None  # not writable in this format (e.g. a non-string key in JSON): nothing to load
    return path


def _non_finite(value: Any, path: tuple = ()) -> list[tuple]:
    """The paths of the non-finite numbers in ``value``."""
    if isinstance(value, float):
        return [] if math.isfinite(value) else [path]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _non_finite(v, (*path, k))]
    if isinstance(value, (list, tuple)):
        return [p for i, v in enumerate(value) for p in _non_finite(v, (*path, i))]
    return []


def _load(path: Path, steps: int | None = None) -> None:
    """Load as the commands do; a model that loads compiles every party and holds finite numbers."""
    try:
        model = load_model(path, steps=steps)
    except CruxError as err:
        assert str(err).startswith(str(path)), str(err)[:300]
        return
    assert model.scenario is not None
    assert not _non_finite(model.scenario.model_dump()), "a non-finite number reached a model"
    for party in model.parties:
        model.beliefs(party)


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux


def test_fuzzed_scenarios_load_or_fail_cleanly() -> None:
    before = _rss_mb()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)

        @FUZZ
        @given(case=scenarios(), suffix=st.sampled_from([".yaml", ".json"]))
        def run(case: tuple[dict, int | None], suffix: str) -> None:
            data, steps = case
            path = _write(data, folder, suffix)
            if path is not None:
                _load(path, steps)

        run()
    assert _rss_mb() - before < 300


def test_fuzzed_text_loads_or_fails_cleanly() -> None:
    """Raw text and bytes, and small edits of the example's text: the parsers' own errors too."""
    text = EXAMPLE.read_text(encoding="utf-8")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)

        @FUZZ
        @given(
            edit=st.tuples(st.integers(0, len(text)), st.integers(0, 40), st.text(max_size=40)),
            raw=st.one_of(st.none(), st.binary(max_size=200)),
            suffix=st.sampled_from([".yaml", ".json", ".bif"]),
        )
        def run(edit: tuple[int, int, str], raw: bytes | None, suffix: str) -> None:
            at, cut, insert = edit
            path = folder / f"fuzz{suffix}"
            if raw is not None:
                path.write_bytes(raw)
            else:
                path.write_text(text[:at] + insert + text[at + cut :], encoding="utf-8", errors="surrogatepass")
            try:
                load_model(path)
            except CruxError:
                pass

        run()
