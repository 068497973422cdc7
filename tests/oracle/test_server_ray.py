"""`crux serve --ray` (oracle/rayserve.py, oracle/replica.py): the Ray back end gives every request
the status and bytes the embedded one gives it, token and refusals included; replicas are
interchangeable; /health says how each model is served; the CLI's Ray options and their
errors; and a server stopped by SIGTERM in the middle of a stream of requests drains them and
exits 0.  The suites of tests/oracle/test_server*.py run against both back ends as well.

Everything here but the option checks runs on Ray (skipped, with the reason, where it is not
installed): the session's local cluster of 2 CPUs (tests/oracle/conftest.py), or a ``crux
serve --ray`` of its own in a subprocess.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance
from typer.testing import CliRunner

from crux.dialogue.cli.app import app as cli
from crux.oracle.server import create_app
from tests.conftest import CANONICAL, ROOT
from tests.oracle.backends import RAY_MISSING, off_the_loop, serve
from tests.oracle.test_server_fast import CASES
from tests.oracle.test_server_fast import MODELS as THREE

TOKEN = "s3cret-token-for-tests"
ENTRY = "import sys; from crux.dialogue.cli.app import main; sys.argv[0] = 'crux'; main()"
runner = CliRunner()


def client(app, *, peer: str = "127.0.0.1", host: str = "localhost", headers: dict | None = None) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(peer, 40000))
    return httpx.AsyncClient(transport=transport, base_url=f"http://{host}", headers=headers or {})


def ray_needed() -> None:
    pytest.importorskip("ray.serve", reason=RAY_MISSING)


# -- the same answers and the same refusals ----------------------------------------------------------


def content_of(body) -> bytes:
    return body if isinstance(body, bytes) else json.dumps(body).encode()


OTHER_REQUESTS = [  # the front's own refusals, and the documents
    ("GET", "/health", b"", {}),
    ("GET", "/models", b"", {}),
    ("GET", "/models/alarm", b"", {}),
    ("GET", "/openapi.json", b"", {}),
    ("GET", "/ask", b"", {}),  # 405
    ("GET", "/nowhere", b"", {}),  # 404
    ("POST", "/ask", b'{"do": {"action": "brake"', {}),  # malformed: 400
    ("POST", "/ask", b"x" * 2_000_000, {}),  # 413
    ("POST", "/ask", b'{"do": {"action": "brake"}}', {"host": "evil.example"}),  # 400: not a loopback Host
    ("POST", "/ask", b'{"do": {"action": "brake"}}', {"content-type": "text/plain"}),
]


async def exchange(app, requests, **kw) -> list[tuple[int, str, bytes]]:
    out = []
    async with client(app, **kw) as http:
        for method, path, content, headers in requests:
            response = await http.request(method, path, content=content, headers={"content-type": "application/json", **headers})
            out.append((response.status_code, response.headers.get("content-type", ""), response.content))
    return out


def without_counts(health: bytes) -> dict:
    """/health's body, less what differs by nature: the seconds spent computing."""
    found = json.loads(health)
    found.pop("oracle_seconds")
    return found


async def test_every_request_gets_the_same_status_and_bytes(request):
    """The fast lane's cases (good and bad queries of three models, answers JSON cannot carry,
    batches with a bad query) and the front's refusals, to a fresh app of each back end in the
    same order: the same status and body, byte for byte."""
    ray_needed()
    embedded, on_ray = create_app(THREE, device="cpu", batch_window_ms=1), serve(request, "ray", THREE, batch_window_ms=1)
    requests = [("POST", path, content_of(body), {}) for path, body in CASES] + OTHER_REQUESTS
    try:
        got = [await exchange(app, requests) for app in (embedded, on_ray)]
    finally:
        embedded.state.batcher.close()
    for (method, path, content, _), mine, theirs in zip(requests, *got):
        if path == "/health":
            assert mine[0] == theirs[0] == 200 and without_counts(mine[2]) == without_counts(theirs[2])
        else:
            assert mine == theirs, (method, path, content[:200])
    assert {status for status, _, _ in got[1]} >= {200, 400, 404, 405, 413, 422}


async def test_the_token_rule_is_the_same(request):
    ray_needed()
    apps = create_app(THREE, device="cpu", token=TOKEN), serve(request, "ray", THREE, token=TOKEN)
    good = [("POST", "/ask", b'{"do": {"action": "brake"}}', {}), ("GET", "/models", b"", {})]
    bad = [
        *good, ("GET", "/openapi.json", b"", {}),
        ("GET", "/health", b"", {"authorization": "Bearer not-the-token"}),
        ("GET", "/health", b"", {"authorization": f"Basic {TOKEN}"}),
    ]
    try:
        for kw, requests in [
            ({"peer": "10.1.2.3"}, bad),  # no token or a wrong one: 401, wherever from
            ({"peer": "10.1.2.3", "host": "crux.example", "headers": {"Authorization": f"Bearer {TOKEN}"}}, good),
        ]:
            mine, theirs = [await exchange(app, requests, **kw) for app in apps]
            assert mine == theirs
            assert {status for status, _, _ in mine} == ({401} if requests is bad else {200})
    finally:
        apps[0].state.batcher.close()
    tokenless = serve(request, "ray", THREE)
    refused = await exchange(tokenless, good, peer="10.1.2.3")
    assert [status for status, _, _ in refused] == [403, 403] and b"--token" in refused[0][2]


async def test_the_openapi_document_is_the_same(request):
    ray_needed()
    apps = create_app(THREE, device="cpu"), serve(request, "ray", THREE)
    docs = []
    for app in apps:
        async with client(app) as http:
            docs.append((await http.get("/openapi.json")).content)
    apps[0].state.batcher.close()
    assert docs[0] == docs[1]


@pytest.fixture
def ray_schema(request):
    """The OpenAPI schema of an app on Ray, as tests/oracle/test_server.py fuzzes the embedded one."""
    ray_needed()
    app = serve(request, "ray", THREE, batch_window_ms=0.5, max_queries=20, max_samples=2000)
    return schemathesis.openapi.from_asgi("/openapi.json", app, headers={"Host": "localhost"})


fuzzed = schemathesis.pytest.from_fixture("ray_schema")


@fuzzed.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_request_makes_a_server_error_on_ray(case):
    case.call_and_validate(
        headers={"Host": "localhost"}, checks=[not_a_server_error, status_code_conformance, response_schema_conformance]
    )


# -- replicas ------------------------------------------------------------------------------------------


async def test_any_replica_answers_any_query_and_health_counts_them(request):
    """Two replicas of one model: concurrent requests spread over both (their calls carry each
    replica's tag), every answer as the embedded server's, and /health says 2 replicas on the CPU."""
    ray_needed()
    request.getfixturevalue("ray_deployments")  # the session's cluster
    from crux.oracle import rayserve
    from crux.oracle.replica import replica_config
    from crux.oracle.server import MAX_BYTES

    import torch

    models = {"alarm": THREE["alarm"]}
    config = replica_config(
        device="cpu", samples=1000, seed=0, method="auto", particles=100_000, max_bytes=MAX_BYTES,
        dtype=torch.float64, batch_window_ms=0, max_batch=1, max_oracles=4,
    )
    deployed = off_the_loop(rayserve.deploy, models, config, rayserve.Scale(replicas=2, cpus=0), prefix="two")
    backend = rayserve.RayBackend(deployed)
    on_ray = create_app(models, device="cpu", batch_window_ms=0, max_batch=1, backend=backend)
    embedded = create_app(models, device="cpu", batch_window_ms=0, max_batch=1)
    bodies = [
        {"given": {"HYPOVOLEMIA": h, "LVFAILURE": lv}, "outcomes": ["BP", "HR"]}
        for h in ("TRUE", "FALSE") for lv in ("TRUE", "FALSE")
    ] * 10
    try:
        async with client(on_ray) as http:
            answers = await asyncio.gather(*(http.post("/ask", json=b) for b in bodies))
            health = (await http.get("/health")).json()
        async with client(embedded) as http:
            want = [(await http.post("/ask", json=b)).json() for b in bodies]
        assert [r.status_code for r in answers] == [200] * len(bodies)
        for got, expected in zip(answers, want):  # each replica's history is its own: equal to the last bit or so
            assert got.json()["query"] == expected["query"]
            for name, outcome in expected["outcomes"].items():
                assert got.json()["outcomes"][name]["p"] == pytest.approx(outcome["p"], abs=1e-12)
        tags = {call.split(":")[0] for call in backend._seen}
        assert len(tags) == 2, "both replicas answered"
        assert health["queries"] == len(bodies) and health["oracle_calls"] == len(bodies)  # max_batch 1
        assert health["serving"] == {"alarm": {"replicas": 2, "device": "cpu"}} and health["device"] == "cpu"
    finally:
        embedded.state.batcher.close()
        off_the_loop(deployed.delete)


async def test_a_replica_that_dies_fails_its_requests_with_503(request):
    """A request waits in a replica's batch (a window of 3 s) when the replica's process is
    killed: a 503 naming the model at once, no hang, no 500.  (Ray starts another replica, which
    takes Serve some 15 s to notice here: not waited for.)"""
    ray_needed()
    request.getfixturevalue("ray_deployments")
    import ray
    import torch

    from crux.oracle import rayserve
    from crux.oracle.replica import replica_config
    from crux.oracle.server import MAX_BYTES

    models = {"alarm": THREE["alarm"]}
    config = replica_config(
        device="cpu", samples=1000, seed=0, method="auto", particles=100_000, max_bytes=MAX_BYTES,
        dtype=torch.float64, batch_window_ms=3000, max_batch=256, max_oracles=4,
    )
    deployed = off_the_loop(rayserve.deploy, models, config, rayserve.Scale(cpus=0), prefix="dying")
    app = create_app(models, device="cpu", backend=rayserve.RayBackend(deployed))
    (replica,) = [
        a for a in ray.util.list_named_actors(all_namespaces=True) if a["name"].startswith("SERVE_REPLICA::dying-alarm#")
    ]
    body = {"given": {"HYPOVOLEMIA": "TRUE"}, "outcomes": ["BP"]}
    try:
        async with client(app) as http:
            waiting = asyncio.ensure_future(http.post("/ask", json=body))
            await asyncio.sleep(0.5)
            ray.kill(ray.get_actor(replica["name"], namespace=replica["namespace"]))
            failed = await asyncio.wait_for(waiting, 10)
        assert failed.status_code == 503, failed.text
        assert failed.json()["detail"][0]["type"] == "unavailable" and "alarm" in failed.text
    finally:
        off_the_loop(deployed.delete)


def test_scale_options():
    from crux.oracle.rayserve import Scale, parse_autoscale
    from crux.worldmodel.errors import CruxError

    fixed = Scale(replicas=3, gpus=0.25).options(max_batch=256)
    assert fixed["num_replicas"] == 3 and fixed["ray_actor_options"] == {"num_cpus": 1.0, "num_gpus": 0.25}
    assert fixed["max_ongoing_requests"] == 512  # room for a whole batch to gather
    scaled = Scale(autoscale=parse_autoscale("0:4")).options(max_batch=8)
    assert "num_replicas" not in scaled and scaled["autoscaling_config"] == {
        "min_replicas": 0, "max_replicas": 4, "initial_replicas": 1, "target_ongoing_requests": 8
    }
    assert str(Scale(autoscale=(1, 4), gpus=1)) == "1 to 4 replicas per model, 1 GPU each"
    for text in ("4", "4:1", "a:b", "-1:2", "0:0", ":"):
        with pytest.raises(CruxError, match="MIN:MAX"):
            parse_autoscale(text)
    for bad in ({"replicas": 0}, {"gpus": -1}, {"gpus": 1.5}, {"cpus": -0.5}):
        with pytest.raises(CruxError):
            Scale(**bad)


# -- the command line ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--replicas", "2"], "--replicas is for serving on Ray: add --ray"),
        (["--autoscale", "1:2", "--address", "auto"], "--autoscale, --address are for serving on Ray: add --ray"),
        (["--ray", "--replicas", "2", "--autoscale", "1:2"], "not both"),
        (["--ray", "--autoscale", "2"], "give MIN:MAX replicas"),
        (["--ray", "--replicas", "0"], "--replicas must be at least 1"),
        (["--ray", "--gpus-per-replica", "-1"], "--gpus-per-replica must be 0 or more"),
        (["--ray", "--device", "cuda"], "needs GPUs for the replicas"),
        (["--ray", "--device", "cpu", "--gpus-per-replica", "1"], "never use them"),
        (["--ray", "--address", " "], "--address is empty"),
    ],
)
def test_ray_options_are_checked_before_anything_starts(monkeypatch, args, words):
    from crux.oracle import rayserve, server

    started = []
    monkeypatch.setattr(server, "run", lambda app, **kw: started.append(app))
    monkeypatch.setattr(rayserve, "require_ray", lambda: None)  # these checks hold with or without Ray
    monkeypatch.setattr(rayserve, "cluster", lambda *a, **k: started.append("cluster"))
    result = runner.invoke(cli, ["serve", str(CANONICAL), *args])
    assert result.exit_code == 1 and not started
    assert words in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.output + result.stderr


def test_without_ray_installed_the_message_says_how(monkeypatch):
    for name in ("ray", "ray.serve"):
        monkeypatch.setitem(sys.modules, name, None)  # import ray: ImportError
    result = runner.invoke(cli, ["serve", str(CANONICAL), "--ray"])
    assert result.exit_code == 1 and "Traceback" not in result.output + result.stderr
    assert "--ray needs Ray Serve" in result.stderr and 'pip install -e ".[ray]"' in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


# -- a server in a subprocess: join a cluster; stop on SIGTERM ------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(*args: str) -> tuple[subprocess.Popen, str]:
    """``crux serve --ray ARGS`` on a free port of 127.0.0.1, answering /health (or the test fails)."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", ENTRY, "serve", "--ray", "--port", str(port), "--device", "cpu", *args],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        if process.poll() is not None:
            pytest.fail(f"crux serve --ray exited ({process.returncode}): {process.stderr.read()}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"crux serve --ray did not answer /health within 120 s: {process.communicate()[1]}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        time.sleep(0.2)


def stopped(process: subprocess.Popen, within: float) -> tuple[int, str]:
    """The exit code and stderr of ``process``, which must end within ``within`` seconds."""
    try:
        _, err = process.communicate(timeout=within)
    except subprocess.TimeoutExpired:
        process.kill()
        _, err = process.communicate()
        pytest.fail(f"crux serve --ray still running {within:g} s after SIGTERM: {err}")
    return process.returncode, err


CLEAN = (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)
"""How a client may find the server gone: refused, or the connection closed."""


def test_sigterm_drains_the_requests_in_flight_and_exits_0():
    """Four clients send /ask one after another (a 100 ms batch window, so that requests are always
    waiting in the replica); SIGTERM half a second in.  Every request gets an answer, a 503 or a
    closed connection, none hangs (10 s at most each), answers arrive after the signal (those in
    flight were drained), and the server exits 0 within 60 s, its local cluster stopped."""
    ray_needed()
    process, url = start_server(str(CANONICAL), "--batch-window-ms", "100")
    outcomes: list[tuple[float, float, str]] = []  # (sent, done, outcome)

    async def one_client(n: int) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            for i in range(10_000):
                sent = time.monotonic()
                try:
                    response = await http.post("/ask", json={"do": {"action": ("brake", "swerve", "continue")[i % 3]}})
                except httpx.TimeoutException:
                    outcomes.append((sent, time.monotonic(), "HUNG"))
                    return
                except CLEAN as err:
                    outcomes.append((sent, time.monotonic(), type(err).__name__))
                    if isinstance(err, httpx.ConnectError):
                        return  # nothing listens any more
                    continue
                outcomes.append((sent, time.monotonic(), str(response.status_code)))

    async def stream() -> float:
        clients = [asyncio.ensure_future(one_client(n)) for n in range(4)]
        await asyncio.sleep(0.5)
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(asyncio.gather(*clients), 60)
        return signalled

    try:
        signalled = asyncio.run(stream())
    finally:
        code, err = stopped(process, 60)
    kinds = {outcome for _, _, outcome in outcomes}
    assert kinds <= {"200", "503", *(e.__name__ for e in CLEAN)}, (kinds, err)
    assert sum(1 for sent, _, o in outcomes if o == "200" and sent < signalled) >= 4
    drained = [o for sent, done, o in outcomes if sent < signalled < done]
    assert "200" in drained, outcomes  # in flight when the signal came, and answered
    assert code == 0, err
    assert "crux serve: stopped" in err and "Traceback" not in err


def test_joining_a_cluster_leaves_it_as_it_was(request):
    """``--address`` of the session's cluster: the server deploys its model there beside the
    tests' deployments, answers, and on SIGTERM deletes its own application only."""
    ray_needed()
    request.getfixturevalue("ray_deployments")
    import ray
    from ray import serve as ray_serve

    before = set(off_the_loop(ray_serve.status).applications)
    address = ray.get_runtime_context().gcs_address
    process, url = start_server(str(CANONICAL), "--address", address, "--cpus-per-replica", "0")
    try:
        during = set(off_the_loop(ray_serve.status).applications)
        answer = httpx.post(f"{url}/ask", json={"do": {"action": "brake"}}, timeout=30)
        assert answer.status_code == 200 and answer.json()["query"]["do"] == {"action": "brake"}
        assert len(during - before) == 1 and next(iter(during - before)).endswith("-squirrel_or_cat")
    finally:
        process.send_signal(signal.SIGTERM)
        code, err = stopped(process, 60)
    assert code == 0, err
    assert set(off_the_loop(ray_serve.status).applications) == before
