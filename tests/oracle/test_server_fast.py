"""The server's fast lane (``oracle.server._Guard``): a good request of the plain shape is
answered without the framework's validation, and every request gets the very answer (status
and bytes) the app's routes give it without the lane."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crux.oracle.server import create_app, read_json
from crux.worldmodel.jsontext import NotStandardJson
from crux.worldmodel.jsontext import loads as strict_json
from crux.worldmodel.model import load_model
from tests.conftest import CANONICAL, ROOT

MODELS = {
    "squirrel_or_cat": load_model(CANONICAL),
    "alarm": load_model(ROOT / "tests" / "data" / "alarm.bif.gz"),
    "lg": load_model(ROOT / "tests" / "oracle" / "linear_gaussian.yaml"),
}
SETTINGS = {"device": "cpu", "batch_window_ms": 0, "samples": 50}


@pytest.fixture(scope="module")
def apps():
    made = create_app(MODELS, **SETTINGS), create_app(MODELS, **SETTINGS, fast_lane=False)
    yield made
    for app in made:
        app.state.batcher.close()


async def _both(apps, path: str, content: bytes) -> tuple[httpx.Response, httpx.Response]:
    out = []
    for app in apps:
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
            out.append(await http.post(path, content=content, headers={"content-type": "application/json"}))
    return out[0], out[1]


def _same(apps, path: str, body) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    fast, routes = asyncio.run(_both(apps, path, content))
    assert (fast.status_code, fast.content) == (routes.status_code, routes.content), (path, body)
    return fast


ALARM_GOOD = {"do": {"HYPOVOLEMIA": "TRUE"}, "given": {"LVFAILURE": "FALSE"}, "outcomes": ["BP", "HR"]}
CASES = [
    ("/ask", {"do": {"action": "brake"}, "given": {"road": "wet"}}),
    ("/ask", {"do": {"action": "brake"}, "as": "human", "samples": 20, "seed": 3}),
    ("/ask", {"do": {"action": "Brake "}}),  # forgiven: the routes take it
    ("/ask", {"do": {"Action": "brake"}}),  # forgiven name
    ("/ask", {"do": {"action": "fly"}}),  # a state the model lacks: 422 at do.action
    ("/ask", {"do": {"action": "brake"}, "given": {"action": "brake"}}),  # set and seen
    ("/ask", {"do": {"action": "brake"}, "extra": 1}),  # a field the API lacks
    ("/ask", {"do": {"action": "brake"}, "samples": 1}),  # too few samples
    ("/ask", {"do": {"action": "brake"}, "samples": 10**30}),  # a number beyond any limit
    ("/ask", {"do": {"action": "brake"}, "seed": -1}),
    ("/ask", {"do": {"action": "brake"}, "samples": 2.0}),
    ("/ask", {"do": {"action": "brake"}, "as": "nobody"}),
    ("/ask", {"do": {"action": "brake"}, "outcomes": "harm"}),
    ("/ask", {"do": {"action": ["brake"]}}),
    ("/ask", {"given": {"road": "wet"}}),  # the decision unset: a 422 saying so
    ("/ask", []),
    ("/ask", {}),
    ("/ask", b'{"do": {"action": "brake", "action": "swerve"}}'),  # a key twice: 400
    ("/ask", b'{"do": {"action": "brake"}, "as": "a:b"}'),  # a ':' in a string: the strict reader decides
    ("/ask", b'{"do": {"action": NaN}}'),
    ("/ask/batch", {"queries": [{"do": {"action": a}, "given": {"road": r}} for a in ("brake", "swerve") for r in ("dry", "wet")]}),
    ("/ask/batch", {"queries": [{"do": {"action": "brake"}}, {"do": {"action": "BRAKE"}}]}),  # one forgiven
    ("/ask/batch", {"queries": [{"do": {"action": "brake"}}, {"do": {"action": "fly"}}]}),  # one bad: 422 at queries.1
    ("/ask/batch", {"queries": []}),
    ("/ask/batch", {"queries": [{"do": {"action": "brake"}}], "samples": 20}),
    ("/ask/batch", {"queries": [{"do": {"action": "brake"}}] * 2000}),  # more than max_queries
    ("/models/alarm/ask", ALARM_GOOD),
    ("/models/alarm/ask", {"given": {"HYPOVOLEMIA": "TRUE", "LVFAILURE": "TRUE", "ANAPHYLAXIS": "TRUE"}}),
    ("/models/alarm/ask/batch", {"queries": [ALARM_GOOD, {"given": {"BP": "LOW"}, "outcomes": ["HR"]}] * 5}),
    ("/models/nothing/ask", ALARM_GOOD),  # 404
    ("/models/lg/ask", {"do": {"policy": "slow"}}),
    ("/models/lg/ask", {"do": {"policy": "slow", "speed": 2.5}}),
    ("/models/lg/ask", {"do": {"policy": "slow", "speed": "1.7e308"}}),  # an answer JSON cannot carry: 422
    ("/models/lg/ask/batch", {"queries": [{"do": {"policy": "slow"}}, {"do": {"policy": "normal"}, "given": {"floor": "wet"}}]}),
]


@pytest.mark.parametrize(("path", "body"), CASES)
def test_the_lane_answers_as_the_routes_do(apps, path, body):
    _same(apps, path, body)


def test_the_lane_takes_good_plain_requests_and_leaves_the_rest(apps):
    fast = apps[0]
    before = fast.state.fast_answered
    for path, body in [("/ask", {"do": {"action": "swerve"}}), ("/models/alarm/ask", ALARM_GOOD),
                       ("/ask/batch", {"queries": [{"do": {"action": "brake"}}, {"do": {"action": "BRAKE"}}]})]:
        assert _same(apps, path, body).status_code == 200
    assert fast.state.fast_answered == before + 3
    for path, body in [("/ask", {"do": {"action": "fly"}}), ("/ask", {"do": {"action": "brake"}, "extra": 1}),
                       ("/ask/batch", {"queries": [{"do": {"action": "brake"}}, {"do": {"action": "fly"}}]})]:
        assert _same(apps, path, body).status_code == 422
    assert fast.state.fast_answered == before + 3


ALARM = MODELS["alarm"].network
names = st.sampled_from(["HYPOVOLEMIA", "LVFAILURE", "BP", "HR", "CO", "ANAPHYLAXIS", "hr", "NOPE"])
states = st.sampled_from(["TRUE", "FALSE", "LOW", "NORMAL", "HIGH", "true", "NOPE"])
query = st.fixed_dictionaries(
    {},
    optional={
        "do": st.dictionaries(names, states, max_size=2),
        "given": st.dictionaries(names, states, max_size=2),
        "outcomes": st.lists(names, max_size=2),
        "as": st.sampled_from(["world", "agent"]),
    },
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(queries=st.lists(query, min_size=1, max_size=4), one=st.booleans())
def test_generated_requests_get_the_same_answer_either_way(apps, queries, one):
    if one:
        _same(apps, "/models/alarm/ask", queries[0])
    else:
        _same(apps, "/models/alarm/ask/batch", {"queries": queries})


@pytest.mark.parametrize(
    "body",
    [b'{"a": 1}', b'{"a": {"b": [1, {"c": 2}]}}', b'{"a": 1, "a": 2}', b'{"a": "x:y"}', b'{"a": "x:y", "a": 1}',
     b'[1e400]', b'[NaN]', b'\xff', b'{"a": "\\ud800"}', b'123456789012345678901234567890', b'{"a" : 1}'],
)
def test_reading_json_fast_refuses_what_the_strict_reader_refuses(body):
    try:
        want = (strict_json(body.decode("utf-8")), None)
    except (NotStandardJson, ValueError) as err:
        want = (None, type(err))
    data, problem = read_json(body)
    assert (data, problem is not None) == (want[0], want[1] is not None)
