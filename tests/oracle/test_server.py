"""`crux serve` (CLI.md): the HTTP oracle, in process — answers equal `crux ask --json`,
batches, every kind of bad request, the token, dynamic batching under concurrency, and a
schemathesis run against the OpenAPI schema.  Each test of an app runs against both back ends
(``backend``: the embedded batcher, and Ray Serve on a local cluster; see tests/oracle/backends.py)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance
from typer.testing import CliRunner

from crux.dialogue.cli import serve as serve_command
from crux.dialogue.cli.app import app as cli
from crux.oracle import server
from crux.oracle.oracle import Oracle
from crux.oracle.query import Query
from crux.oracle.server import create_app
from tests.conftest import CANONICAL, ROOT
from tests.oracle.backends import BACKENDS, serve
from crux.worldmodel.model import load_model

ALARM = ROOT / "tests" / "data" / "alarm.bif.gz"
MODELS = {"squirrel_or_cat": load_model(CANONICAL), "alarm": load_model(ALARM)}
TOKEN = "s3cret-token-for-tests"
runner = CliRunner()


def client(app, *, peer: str = "127.0.0.1", headers: dict | None = None) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(peer, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://localhost", headers=headers or {})


def crux_ask(*args) -> list[dict]:
    result = runner.invoke(cli, ["ask", *map(str, args), "--device", "cpu", "--json"])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def assert_close(got: dict, want: dict) -> None:
    """The same query, and the same numbers within 1e-12 (batched contractions round differently)."""
    assert got["query"] == want["query"] and got["outcomes"].keys() == want["outcomes"].keys()
    for name, outcome in want["outcomes"].items():
        assert got["outcomes"][name]["p"] == pytest.approx(outcome["p"], abs=1e-12)
        flat = [x for row in got["outcomes"][name]["interval"] for x in row]
        assert flat == pytest.approx([x for row in outcome["interval"] for x in row], abs=1e-12)


def locs(response: httpx.Response) -> list[list]:
    return [e["loc"] for e in response.json()["detail"]]


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    """Which back end answers: ``embedded`` or ``ray``."""
    return request.param


@pytest.fixture
def make_app(request, backend):
    """``make_app(models=MODELS, **settings)``: create_app on the CPU with the test's back end."""
    made = []

    def make(models=MODELS, **settings):
        made.append(serve(request, backend, models, **settings))
        return made[-1]

    yield make
    for app in made:
        app.state.batcher.close()


@pytest.fixture
def app(make_app):
    return make_app(batch_window_ms=1)


# -- /ask equals crux ask --json ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "args"),
    [
        ("/ask", {"do": {"action": "swerve"}, "given": {"road": "wet"}, "as": "human"},
         [CANONICAL, "what happens if action=swerve given road=wet", "--as", "human"]),
        ("/ask", {"do": {"action": "brake"}}, [CANONICAL, "--do", "action=brake"]),
        ("/models/squirrel_or_cat/ask", {"do": {"Action": "Continue"}, "outcomes": ["crash"], "as": "world"},
         [CANONICAL, "--do", "Action=Continue", "--outcome", "crash", "--as", "world"]),
        ("/ask", {"do": {"action": "swerve"}, "samples": 200, "seed": 7},
         [CANONICAL, "--do", "action=swerve", "--samples", "200", "--seed", "7"]),
        ("/models/alarm/ask", {"given": {"HYPOVOLEMIA": "TRUE"}, "outcomes": ["BP", "CO"]},
         [ALARM, "--given", "HYPOVOLEMIA=TRUE", "--outcome", "BP", "--outcome", "CO"]),
    ],
)
async def test_ask_equals_crux_ask_json(app, path, body, args):
    async with client(app) as http:
        response = await http.post(path, json=body)
    assert response.status_code == 200, response.text
    assert response.json() == crux_ask(*args)[0]


async def test_batch_equals_crux_ask_batch(app, tmp_path: Path):
    queries = [
        {"do": {"action": "swerve"}, "given": {"road": "wet"}, "as": "human"},
        {"do": {"action": "brake"}, "outcomes": ["harm"]},
        {"do": {"action": "continue"}, "given": {"road": "dry"}, "as": "human"},
        {"given": {"road": "wet"}, "do": {"action": "brake"}, "as": "world"},
    ]
    lines = tmp_path / "queries.jsonl"
    lines.write_text("\n".join(json.dumps(q) for q in queries))
    async with client(app) as http:
        response = await http.post("/ask/batch", json={"queries": queries})
        one_by_one = [(await http.post("/ask", json=q)).json() for q in queries]
    assert response.status_code == 200, response.text
    answers = response.json()["answers"]
    assert answers == crux_ask(CANONICAL, "--batch", lines)
    for batched, single in zip(answers, one_by_one):
        assert_close(batched, single)


async def test_models_health_and_openapi(app):
    async with client(app) as http:
        models = (await http.get("/models")).json()
        health = (await http.get("/health")).json()
        alarm = (await http.get("/models/alarm")).json()
        schema = (await http.get("/openapi.json")).json()
    assert [m["name"] for m in models] == ["squirrel_or_cat", "alarm"]
    assert models[0]["decision"] == "action" and models[0]["variables"]["road"] == ["dry", "wet"]
    assert alarm["kind"] == "network" and alarm["parties"] == ["world"] and len(alarm["variables"]) == 37
    assert health["status"] == "ok" and health["device"] == "cpu" and health["models"] == ["squirrel_or_cat", "alarm"]
    assert health["serving"] == {name: {"replicas": 1, "device": "cpu"} for name in ("squirrel_or_cat", "alarm")}
    assert set(schema["paths"]) == {  # predictions only: nothing reads values, ranks or decides
        "/ask", "/ask/batch", "/health", "/models", "/models/{name}", "/models/{name}/ask", "/models/{name}/ask/batch"
    }
    assert "values" not in models[0] and "utilities" not in json.dumps(models)


# -- bad requests: a 4xx naming the field ---------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "status", "loc", "words"),
    [
        ("/ask", {"do": {"actoin": "swerve"}}, 422, ["body", "do", "actoin"], "did you mean 'action'"),
        ("/ask", {"do": {"action": "swerve"}, "given": {"road": "wte"}}, 422, ["body", "given", "road"], "'wet'"),
        ("/ask", {"do": {"action": "brake"}, "outcomes": ["harm", "crsh"]}, 422, ["body", "outcomes", 1], "crash"),
        ("/ask", {"given": {"action": "brake"}}, 422, ["body", "given", "action"], "decision"),
        ("/ask", {"do": {"road": "wet"}, "given": {"road": "dry"}}, 422, ["body", "given", "road"], "both set"),
        ("/ask", {"doo": {"action": "brake"}}, 422, ["body", "doo"], "Extra inputs"),
        ("/ask", {"do": ["action", "brake"]}, 422, ["body", "do"], "dictionary"),
        ("/ask", {"as": "robot"}, 422, ["body", "as"], "'agent'"),
        ("/ask", {"do": {"action": "brake"}, "samples": 10**6}, 422, ["body", "samples"], "10000"),
        ("/ask", {"do": {"action": "brake"}, "samples": 1}, 422, ["body", "samples"], "2"),
        ("/ask", {"do": {"action": "brake"}, "seed": -1}, 422, ["body", "seed"], "0"),
        ("/ask", {"outcomes": ["crash"]}, 422, ["body"], "do action="),
        ("/ask", {"do": {"action": "brake"}, "given": {"animal": "squirrel", "harm": "cat"}, "as": "world"},
         422, ["body"], "probability 0"),
        ("/models/alarm/ask", {"as": "agent"}, 422, ["body", "as"], "ask as world"),
        ("/models/alarn/ask", {}, 404, ["path", "name"], "did you mean 'alarm'"),
        ("/ask/batch", {"queries": []}, 422, ["body", "queries"], "at least 1"),
        ("/ask/batch", {"queries": [{"do": {"action": "brake"}}] * 1001}, 422, ["body", "queries"], "1000"),
        ("/ask/batch", {"queries": [{}, {"do": {"action": "brake"}}, {"do": {"x": "y"}}]}, 422,
         ["body", "queries", 2, "do", "x"], "unknown variable"),
        ("/ask/batch", {"queries": [{"do": {"action": "brake"}}], "samples": 20_000}, 422, ["body", "samples"], "10000"),
    ],
)
async def test_bad_request_names_the_field(app, path, body, status, loc, words):
    async with client(app) as http:
        response = await http.post(path, json=body)
    assert response.status_code == status, response.text
    assert loc in locs(response)
    assert words in response.text


@pytest.mark.parametrize(
    ("content", "headers"),
    [
        (b'{"do": {"action": "brake"', {"content-type": "application/json"}),
        (b"\xff\xfe not utf-8", {"content-type": "application/json"}),
        (b"", {"content-type": "application/json"}),
        (b"[1, 2, 3]", {"content-type": "application/json"}),
        (b'{"do": {"action": "brake"}}', {"content-type": "text/plain"}),
        (b"null", {}),
    ],
)
async def test_bad_json_is_a_4xx(app, content, headers):
    async with client(app) as http:
        response = await http.post("/ask", content=content, headers=headers)
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["detail"]


async def test_answers_json_cannot_carry_are_a_422(make_app):
    """A continuous variable set at 1.7e308 overflows its child's mean: JSON has no infinity."""
    lg = make_app({"lg": load_model(ROOT / "tests" / "oracle" / "linear_gaussian.yaml")})
    async with client(lg) as http:
        overflow = await http.post("/ask", json={"do": {"policy": "slow", "speed": "1.7e308"}})
        fine = await http.post("/ask", json={"do": {"policy": "slow", "speed": "2.5"}})
        not_a_number = await http.post("/ask", json={"do": {"policy": "slow", "speed": "nan"}})
    assert overflow.status_code == 422 and "not finite" in overflow.text
    assert fine.status_code == 200 and fine.json()["outcomes"]["distance"]["kind"] == "continuous"
    assert not_a_number.status_code == 422 and locs(not_a_number) == [["body", "do", "speed"]]


async def test_too_large_body_is_413(make_app):
    small = make_app(max_body_bytes=1000)
    big = {"queries": [{"do": {"action": "brake"}}] * 100}

    async def chunks():  # no Content-Length: counted as it arrives
        for _ in range(20):
            yield b" " * 100

    async with client(small) as http:
        declared = await http.post("/ask/batch", json=big)
        streamed = await http.post("/ask/batch", content=chunks(), headers={"content-type": "application/json"})
        fits = await http.post("/ask", json={"do": {"action": "brake"}})
    for response in (declared, streamed):
        assert response.status_code == 413 and locs(response) == [["body"]] and "1,000 bytes" in response.text
    assert fits.status_code == 200


# -- the token, and loopback without one ------------------------------------------------------------


async def test_token_required_on_every_request(make_app):
    guarded = make_app(token=TOKEN)
    async with client(guarded, peer="10.1.2.3") as anonymous:
        missing = await anonymous.post("/ask", json={"do": {"action": "brake"}})
        wrong = await anonymous.get("/health", headers={"Authorization": "Bearer not-the-token"})
        basic = await anonymous.get("/health", headers={"Authorization": f"Basic {TOKEN}"})
        schema = await anonymous.get("/openapi.json")
        odd = await anonymous.get("/health", headers={"Authorization": "Bearer caf\u00e9".encode("latin-1")})
    for response in (missing, wrong, basic, schema, odd):
        assert response.status_code == 401, response.text
        assert locs(response) == [["header", "authorization"]]
        assert response.headers["www-authenticate"] == "Bearer"
    async with client(guarded, peer="10.1.2.3", headers={"Authorization": f"Bearer {TOKEN}"}) as allowed:
        answer = await allowed.post("/ask", json={"do": {"action": "brake"}})
    assert answer.status_code == 200


async def test_no_token_answers_loopback_only(app):
    for peer, status in [("10.1.2.3", 403), ("192.168.0.9", 403), ("::1", 200), ("127.0.0.5", 200), ("::ffff:127.0.0.1", 200)]:
        async with client(app, peer=peer) as http:
            response = await http.get("/health")
        assert response.status_code == status, (peer, response.text)
        if status == 403:
            assert "--token" in response.text


def test_serve_refuses_other_hosts_without_token(monkeypatch):
    started = []
    monkeypatch.setattr(server, "run", lambda app, **kw: started.append((app, kw)))
    refused = runner.invoke(cli, ["serve", str(CANONICAL), "--host", "0.0.0.0"])
    assert refused.exit_code == 1 and "not a loopback address" in refused.stderr and "--token" in refused.stderr
    short = runner.invoke(cli, ["serve", str(CANONICAL), "--host", "0.0.0.0", "--token", "abc"])
    assert short.exit_code == 1 and "at least 8" in short.stderr
    same_name = runner.invoke(cli, ["serve", str(CANONICAL), str(CANONICAL)])
    assert same_name.exit_code == 1 and "both be served as 'squirrel_or_cat'" in same_name.stderr
    assert not started
    for result in (refused, short, same_name):
        assert "Traceback" not in result.output + result.stderr
    ok = runner.invoke(cli, ["serve", str(CANONICAL), str(ALARM), "--host", "0.0.0.0", "--token", TOKEN, "--device", "cpu"])
    assert ok.exit_code == 0, ok.stderr
    (app, kw), = started
    assert kw == {
        "host": "0.0.0.0", "port": 8765, "token": TOKEN, "timeout_read": 10.0, "timeout_keep_alive": 5.0,
        "limit_concurrency": 512, "backlog": 2048, "max_header_bytes": 16384,
    }
    assert list(app.state.models) == ["squirrel_or_cat", "alarm"]


def test_model_names_are_file_stems():
    assert serve_command.model_name(Path("x/squirrel_or_cat.yaml")) == "squirrel_or_cat"
    assert serve_command.model_name(Path("alarm.bif.gz")) == "alarm"
    assert server.is_loopback("127.0.0.1") and server.is_loopback("localhost") and server.is_loopback("::1")
    assert not server.is_loopback("0.0.0.0") and not server.is_loopback("example.org")


# -- dynamic batching --------------------------------------------------------------------------------


SQUIRREL = [
    {"do": {"action": a}, "given": {"road": r}, "as": p}
    for p in ("agent", "human", "world") for a in ("brake", "swerve", "continue") for r in ("dry", "wet")
]
ALARM_QUERIES = [
    {"given": {"HYPOVOLEMIA": h, "LVFAILURE": lv}, "outcomes": ["BP", "HR"]} for h in ("TRUE", "FALSE") for lv in ("TRUE", "FALSE")
]


def expected(model: str, bodies: list[dict]) -> list[dict]:
    """Answers of a fresh oracle (the CLI's settings), one contraction per structure."""
    return [a.to_json() for a in Oracle(MODELS[model], device="cpu").ask_many([Query.model_validate(b) for b in bodies])]


async def test_concurrent_requests_are_batched_and_correct(make_app):
    app = make_app(batch_window_ms=200)
    requests = [("/ask", q) for q in SQUIRREL * 3] + [("/models/alarm/ask", q) for q in ALARM_QUERIES * 3]
    async with client(app) as http:
        responses = await asyncio.gather(*(http.post(path, json=body) for path, body in requests))
        health = (await http.get("/health")).json()
    assert [r.status_code for r in responses] == [200] * len(requests)
    assert health["oracle_calls"] <= 4 < len(requests) == health["queries"], health  # 66 requests, a few calls
    want = expected("squirrel_or_cat", SQUIRREL * 3) + expected("alarm", ALARM_QUERIES * 3)
    for got, answer in zip(responses, want):
        assert_close(got.json(), answer)
    app.state.batcher.close()


async def test_one_bad_request_does_not_fail_its_batch(make_app):
    """Two requests that pass the checks but fail in the oracle (the decision is not set; impossible
    evidence), gathered with good ones: only they fail."""
    app = make_app(batch_window_ms=20)
    bad = [{"outcomes": ["crash"]}, {"do": {"action": "brake"}, "given": {"animal": "squirrel", "harm": "cat"}, "as": "world"}]
    bodies = SQUIRREL[:8] + bad[:1] + SQUIRREL[8:] + bad[1:]
    async with client(app) as http:
        responses = await asyncio.gather(*(http.post("/ask", json=body) for body in bodies))
        health = (await http.get("/health")).json()
    statuses = [r.status_code for r in responses]
    assert statuses == [200] * 8 + [422] + [200] * (len(SQUIRREL) - 8) + [422]
    assert "do action=" in responses[8].text and "probability 0" in responses[-1].text
    good = [r.json() for r in responses if r.status_code == 200]
    for got, answer in zip(good, expected("squirrel_or_cat", SQUIRREL)):
        assert_close(got, answer)
    assert health["oracle_calls"] < len(bodies), health  # halves retried, not every request alone
    app.state.batcher.close()


async def test_batches_mix_with_single_requests_and_respect_max_batch(make_app):
    app = make_app(batch_window_ms=200, max_batch=8)
    singles = [{"do": {"action": a}} for a in ("brake", "swerve", "continue")] * 4
    batch = {"queries": [{"do": {"action": "swerve"}, "given": {"road": r}} for r in ("dry", "wet")] * 10}
    async with client(app) as http:
        *single, batched = await asyncio.gather(
            *(http.post("/ask", json=q) for q in singles), http.post("/ask/batch", json=batch)
        )
        health = (await http.get("/health")).json()
    assert all(r.status_code == 200 for r in single) and batched.status_code == 200
    assert [a["query"]["given"]["road"] for a in batched.json()["answers"]] == ["dry", "wet"] * 10
    assert 3 <= health["oracle_calls"] <= 4 and health["queries"] == 32  # 12 singles in calls of <= 8, the 20 alone
    app.state.batcher.close()


async def test_a_client_that_leaves_does_not_stall_the_others(app):
    batcher = app.state.batcher
    key = ("squirrel_or_cat", 1000, 0)
    leaving = asyncio.ensure_future(batcher.submit(key, [Query(do={"action": "brake"})]))
    await asyncio.sleep(0)
    leaving.cancel()
    (answer,) = await batcher.submit(key, [Query(do={"action": "swerve"})])
    assert json.loads(answer)["query"]["do"] == {"action": "swerve"}


def test_bad_settings_are_errors():
    from crux.worldmodel.errors import CruxError

    for settings_ in [{"max_batch": 0}, {"samples": 20_000}, {"batch_window_ms": -1}, {"token": "short"}, {"method": "magic"}]:
        with pytest.raises(CruxError):
            create_app(MODELS, device="cpu", **settings_)
    with pytest.raises(CruxError):
        create_app({}, device="cpu")


# -- schemathesis: no input makes a 5xx -------------------------------------------------------------

FUZZED = create_app(MODELS, device="cpu", batch_window_ms=0.5, max_queries=20, max_samples=2000)
LOCAL = {"Host": "localhost"}  # schemathesis's test client names "testserver", which a tokenless server refuses
schema = schemathesis.openapi.from_asgi("/openapi.json", FUZZED, headers=LOCAL)


@schema.parametrize()
@settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_request_makes_a_server_error(case):
    case.call_and_validate(headers=LOCAL, checks=[not_a_server_error, status_code_conformance, response_schema_conformance])
