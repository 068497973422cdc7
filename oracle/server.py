"""The oracle over HTTP: a thin FastAPI shell, with dynamic batching.

``create_app(models)`` serves each model by name (``/models/{name}/ask``), the first
also at ``/ask``.  Requests are :class:`~oracle.query.Query` objects and answers the
JSON of ``crux ask --json`` (:meth:`~oracle.query.Answer.to_json`), so the CLI and the
server speak one format.  Predictions only: no endpoint reads values or ranks actions.

**Dynamic batching.**  Each query is checked on arrival (:func:`~oracle.query.resolve`,
so a bad one is answered 422 at once and never joins a batch), then queued.  One
collector gathers what arrives within ``batch_window_ms`` (up to ``max_batch`` queries)
and hands it to a single worker thread as one :meth:`~oracle.oracle.Oracle.ask_many`
call, off the event loop, so the device sees large batches.  If that call raises, each
half of the batch is answered on its own (and so on down), so one bad request fails
only itself.

**Safety.**  Without a token the server answers loopback clients only (and
:func:`run` refuses to bind elsewhere); with one, every request needs
``Authorization: Bearer <token>``.  Bodies over ``max_body_bytes`` get 413; batches
over ``max_queries`` and ``samples`` over ``max_samples`` get 422; every bad request
gets a 4xx whose ``detail`` names the field (``loc``) and says what is wrong (``msg``).
"""

# No ``from __future__ import annotations`` here: FastAPI reads the route functions'
# annotations at run time, and the request models are made per app, inside create_app.

import asyncio
import hmac
import ipaddress
import json
import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal

import torch
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from oracle.device import resolve_device
from oracle.oracle import MAX_BYTES, METHODS, Method, Oracle
from oracle.query import Answer, Query, QueryError, resolve
from worldmodel.errors import CruxError, unknown
from worldmodel.model import Model

log = logging.getLogger("crux.server")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
SEED_LIMIT = 2**63
"""Seeds are in [0, 2**63): what torch's generators take."""
_ORACLES_KEPT = 16
"""Oracles (one per model, samples and seed) kept with their prepared tables."""

Loc = tuple[str | int, ...]


# -- request and response models ------------------------------------------------------------


class Error(BaseModel):
    """One problem with a request."""

    loc: list[str | int] = Field(description="Where: 'body', 'header', 'path' or 'query', then the field inside it.")
    msg: str = Field(description="What is wrong, and the fix.")
    type: str = Field(description="A short kind: query, auth, too_large, unknown_model, ...")


class Problem(BaseModel):
    """The body of every 4xx answer."""

    detail: list[Error] | str = Field(description="The problems found (validation errors carry more keys).")


class ModelInfo(BaseModel):
    """What a served model can be asked about (its structure, no values)."""

    name: str = Field(description="The name it is served under (its file's stem).")
    title: str = Field(description="The model's own name.")
    kind: Literal["scenario", "network"] = Field(description="A scenario (with parties) or a bare network (BIF).")
    parties: list[str] = Field(description="Whose beliefs can answer (`as`).")
    default_as: str = Field(description="Who answers when `as` is not given.")
    decision: str | None = Field(description="The decision variable (set it with `do`), if any.")
    outcomes: list[str] = Field(description="The outcomes reported by default (empty: every variable not set).")
    variables: dict[str, list[str] | None] = Field(
        description="Every variable with its states (null for a continuous one, which takes a number)."
    )


class Health(BaseModel):
    """The server is up; what it serves and how it has batched so far."""

    status: Literal["ok"] = "ok"
    device: str = Field(description="Where the oracle computes.")
    models: list[str] = Field(description="Served models; the first is also at /ask.")
    oracle_calls: int = Field(description="Oracle calls made so far (each may answer many queries).")
    queries: int = Field(description="Queries asked of the oracle so far.")
    oracle_seconds: float = Field(description="Time the oracle has spent answering them.")


class BatchAnswer(BaseModel):
    """Answers to a batch, in the order of its queries."""

    answers: list[Answer] = Field(description="One answer per query, each the JSON of `crux ask --json`.")


def _request_models(max_queries: int, max_samples: int) -> tuple[type[BaseModel], type[BaseModel]]:
    """The two request bodies, with this app's limits in their schemas (so the OpenAPI says them)."""

    def samples_field():
        return Field(
            default=None, ge=2, le=max_samples,
            description=f"Draws behind each 90% interval, 2 to {max_samples} (default: the server's).",
        )

    def seed_field():
        return Field(default=None, ge=0, lt=SEED_LIMIT, description="Seed of those draws (default: the server's).")

    class AskRequest(Query):
        """A query (the JSON of a `crux ask --batch` line), and optionally the draws behind its interval."""

        model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True, title="AskRequest")

        samples: int | None = samples_field()
        seed: int | None = seed_field()

    class BatchRequest(BaseModel):
        """Many queries at once, answered in order."""

        model_config = ConfigDict(extra="forbid", title="BatchRequest")

        queries: list[Query] = Field(
            min_length=1, max_length=max_queries, description=f"1 to {max_queries} queries, each as /ask takes it."
        )
        samples: int | None = samples_field()
        seed: int | None = seed_field()

    return AskRequest, BatchRequest


# -- errors -----------------------------------------------------------------------------------


class RequestProblem(Exception):
    """A bad request: answered with ``status`` and its errors, never a traceback."""

    def __init__(self, status: int, errors: list[dict[str, Any]]):
        self.status = status
        self.errors = errors
        super().__init__("; ".join(e["msg"] for e in errors))


def _error(loc: Loc, msg: str, kind: str = "query") -> dict[str, Any]:
    return {"loc": list(loc), "msg": msg, "type": kind}


def _problem_response(status: int, errors: list[dict[str, Any]], headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": errors}, status_code=status, headers=dict(headers or {}))


def locate(query: Query, model: Model, prefix: Loc = ("body",)) -> list[dict[str, Any]]:
    """The problems :func:`resolve` finds in ``query``, each at its field (``do.<var>``,
    ``outcomes.<i>``, ``as``); empty if it resolves."""
    net, parties, default = model.network, model.parties, model.default_party

    def refused(q: Query) -> str | None:
        try:
            resolve(q, net, parties, default)
        except QueryError as err:
            return str(err)
        return None

    whole = refused(query)
    if whole is None:
        return []
    message = refused(Query(as_=query.as_))
    if message is not None:
        return [_error((*prefix, "as"), message)]
    errors = []
    for name in ("do", "given"):
        for var, state in getattr(query, name).items():
            message = refused(Query(**{name: {var: state}}, as_=query.as_))
            if message is not None:
                errors.append(_error((*prefix, name, var), message))
    for i, outcome in enumerate(query.outcomes):
        message = refused(Query(outcomes=[outcome], as_=query.as_))
        if message is not None:
            errors.append(_error((*prefix, "outcomes", i), message))
    if not errors:  # each part is fine, together they are not (set and observed at once)
        both = sorted(set(query.do) & set(query.given))
        errors.append(_error((*prefix, "given", both[0]) if both else prefix, whole))
    return errors


# -- dynamic batching -------------------------------------------------------------------------


Key = tuple[str, int, int]
"""(model name, samples, seed): queries with the same key can share an oracle call."""


@dataclass
class _Job:
    key: Key
    queries: list[Query]
    future: asyncio.Future
    loc: Loc
    arrived: float


@dataclass
class _Stats:
    calls: int = 0
    queries: int = 0
    seconds: float = 0.0


class _Lane:
    """The waiting jobs of one event loop, and its collector task."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.pending: deque[_Job] = deque()
        self.size = 0  # queries waiting
        self.arrived = asyncio.Event()
        self.full = asyncio.Event()
        self.task: asyncio.Task | None = None


class Batcher:
    """Gathers concurrent requests into few oracle calls, made on one worker thread.

    A batch leaves when its oldest request has waited ``window_s`` or when ``max_batch``
    queries wait (a larger batch request leaves alone).  Requests that arrive while the
    worker computes have waited already: they leave together as soon as it is free.
    """

    def __init__(self, oracle_for: Callable[[Key], Oracle], window_s: float, max_batch: int):
        self._oracle_for = oracle_for
        self.window_s = window_s
        self.max_batch = max_batch
        self.stats = _Stats()
        self._executor: ThreadPoolExecutor | None = None
        self._lane: _Lane | None = None
        self._lock = threading.Lock()

    async def submit(self, key: Key, queries: list[Query], loc: Loc = ("body",)) -> list[dict]:
        """Answers (JSON of ``crux ask --json``) to these queries, in order; raises
        :class:`RequestProblem` if they cannot be answered."""
        lane = self._running_lane()
        job = _Job(key, queries, lane.loop.create_future(), loc, lane.loop.time())
        lane.pending.append(job)
        lane.size += len(queries)
        lane.arrived.set()
        if lane.size >= self.max_batch:
            lane.full.set()
        return await job.future

    def close(self) -> None:
        """Stop the collector and the worker (a later request starts them again)."""
        with self._lock:
            lane, self._lane = self._lane, None
            if lane is not None and lane.task is not None and not lane.loop.is_closed():
                lane.loop.call_soon_threadsafe(lane.task.cancel)
            if self._executor is not None:
                self._executor.shutdown(wait=False, cancel_futures=True)
                self._executor = None

    def _running_lane(self) -> _Lane:
        """The lane of the running event loop, its collector started (once per loop: a test
        client may run each request in a loop of its own)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="crux-oracle")
            lane = self._lane
            if lane is None or lane.loop is not loop or lane.task is None or lane.task.done():
                lane = self._lane = _Lane(loop)
                lane.task = loop.create_task(self._collect(lane, self._executor))
            return lane

    async def _collect(self, lane: _Lane, executor: ThreadPoolExecutor) -> None:
        loop = lane.loop
        while True:
            await lane.arrived.wait()
            wait = lane.pending[0].arrived + self.window_s - loop.time()
            if wait > 0 and lane.size < self.max_batch:
                try:
                    await asyncio.wait_for(lane.full.wait(), wait)
                except TimeoutError:
                    pass
            jobs = [lane.pending.popleft()]
            size = len(jobs[0].queries)
            while lane.pending and size + len(lane.pending[0].queries) <= self.max_batch:
                job = lane.pending.popleft()
                jobs.append(job)
                size += len(job.queries)
            lane.size -= size
            if not lane.pending:
                lane.arrived.clear()
            if lane.size < self.max_batch:
                lane.full.clear()
            jobs = [j for j in jobs if not j.future.done()]  # clients that left
            if not jobs:
                continue
            try:
                results = await loop.run_in_executor(executor, self._compute, jobs)
            except Exception as err:  # the worker itself failed (a bug): fail these requests, keep serving
                log.exception("oracle worker failed")
                results = [err] * len(jobs)
            for job, result in zip(jobs, results):
                if job.future.done():
                    continue
                if isinstance(result, BaseException):
                    job.future.set_exception(result)
                else:
                    job.future.set_result(result)

    def _compute(self, jobs: list[_Job]) -> list[list[dict] | BaseException]:
        """On the worker thread: one oracle call per key (model, samples, seed)."""
        groups: dict[Key, list[int]] = {}
        for i, job in enumerate(jobs):
            groups.setdefault(job.key, []).append(i)
        results: list[list[dict] | BaseException] = [None] * len(jobs)  # type: ignore[list-item]
        for key, members in groups.items():
            try:
                oracle = self._oracle_for(key)
            except Exception as err:  # noqa: BLE001 -- handed to its requests
                found = [_as_problem(err, jobs[i]) for i in members]
            else:
                found = self._answer(oracle, [jobs[i] for i in members])
            for i, result in zip(members, found):
                results[i] = result
        return results

    def _answer(self, oracle: Oracle, jobs: list[_Job]) -> list[list[dict] | BaseException]:
        """The jobs' answers from one call; if it raises, each half is answered on its own (and
        so on down), so a bad request fails only itself, at a cost of a few calls per bad one."""
        try:
            answers = self._ask(oracle, [q for job in jobs for q in job.queries])
        except Exception as err:  # noqa: BLE001 -- handed to its request, never hidden
            if len(jobs) == 1:
                return [_as_problem(err, jobs[0])]
            half = len(jobs) // 2
            return self._answer(oracle, jobs[:half]) + self._answer(oracle, jobs[half:])
        out, start = [], 0
        for job in jobs:
            out.append(answers[start : start + len(job.queries)])
            start += len(job.queries)
        return out

    def _ask(self, oracle: Oracle, queries: list[Query]) -> list[dict]:
        stats = self.stats
        stats.calls += 1
        start = time.perf_counter()
        try:
            return [a.to_json() for a in oracle.ask_many(queries)]
        finally:
            stats.seconds += time.perf_counter() - start
            stats.queries += len(queries)


def _as_problem(err: Exception, job: _Job) -> BaseException:
    """A user error becomes a 422 at the request; anything else stays what it is (a bug: 500)."""
    if isinstance(err, CruxError):
        return RequestProblem(422, [_error(job.loc, str(err))])
    return err


# -- the app ------------------------------------------------------------------------------------


def create_app(
    models: Mapping[str, Model],
    *,
    device: str | torch.device = "auto",
    samples: int = 1000,
    seed: int = 0,
    method: Method = "auto",
    particles: int = 100_000,
    max_bytes: int = MAX_BYTES,
    dtype: torch.dtype = torch.float64,
    batch_window_ms: float = 2.0,
    max_batch: int = 256,
    max_queries: int = 1000,
    max_body_bytes: int = 1 << 20,
    max_samples: int = 10_000,
    token: str | None = None,
) -> FastAPI:
    """The HTTP app over ``models`` ({name: model}; the first is also served at ``/ask``).

    ``samples``, ``seed``, ``method``, ``particles``, ``max_bytes``, ``dtype`` and ``device``
    are the oracle's (see :class:`~oracle.oracle.Oracle`); a request may ask for its own
    ``samples`` (up to ``max_samples``) and ``seed``.  ``batch_window_ms`` and ``max_batch``
    shape the dynamic batching (``max_batch=1``: one oracle call per request).  ``token``:
    every request must carry it as a bearer token; without one, only loopback clients are
    answered.  Bad settings raise :class:`~worldmodel.errors.CruxError`.
    """
    _check_settings(models, samples, seed, method, batch_window_ms, max_batch, max_queries, max_body_bytes, max_samples, token)
    names = list(models)
    first = names[0]
    where = resolve_device(device)
    oracles: OrderedDict[Key, Oracle] = OrderedDict()

    def oracle_for(key: Key) -> Oracle:  # called on the worker thread only
        if key in oracles:
            oracles.move_to_end(key)
            return oracles[key]
        name, n, s = key
        made = Oracle(
            models[name], device=where, samples=n, seed=s, dtype=dtype, method=method, particles=particles,
            max_bytes=max_bytes,
        )
        oracles[key] = made
        if len(oracles) > max(_ORACLES_KEPT, len(models)):
            oracles.popitem(last=False)
        return made

    for name in names:  # the defaults, checked now: a bad setting fails at start, not at the first request
        oracle_for((name, samples, seed))
    batcher = Batcher(oracle_for, batch_window_ms / 1000, max_batch)
    AskRequest, BatchRequest = _request_models(max_queries, max_samples)

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        yield
        batcher.close()

    app = FastAPI(
        title="Crux oracle",
        summary="What happens if: predictions with 90% credible intervals. Predictions only.",
        description=(
            f"Serves {', '.join(names)} (the first also at /ask). A query sets variables (`do`), observes some "
            "(`given`) and names the `outcomes` to report; `as` picks whose beliefs answer. Answers are the JSON "
            "of `crux ask --json`. Bad requests get a 4xx whose `detail` names the field."
        ),
        version="1",
        lifespan=lifespan,
    )
    app.state.batcher = batcher
    app.state.device = where.type
    app.state.models = models
    errors = {
        400: {"model": Problem, "description": "A body that cannot be read (not UTF-8 JSON), or a bad header."},
        401: {"model": Problem, "description": "Missing or wrong bearer token."},
        403: {"model": Problem, "description": "Not a loopback client, and the server has no token."},
        413: {"model": Problem, "description": "Body larger than the server allows."},
        422: {"model": Problem, "description": "A field is missing, malformed or names something the model lacks."},
    }
    unknown_model = {404: {"model": Problem, "description": "No model of that name."}}

    def model_named(name: str) -> Model:
        if name not in models:
            raise RequestProblem(404, [_error(("path", "name"), unknown("model", name, names), "unknown_model")])
        return models[name]

    def key_of(name: str, request: Any) -> Key:
        return (
            name,
            samples if request.samples is None else request.samples,
            seed if request.seed is None else request.seed,
        )

    async def answer_one(name: str, request: Any) -> Response:
        model = model_named(name)
        query = Query(do=request.do, given=request.given, outcomes=request.outcomes, as_=request.as_)
        problems = locate(query, model)
        if problems:
            raise RequestProblem(422, problems)
        (answer,) = await batcher.submit(key_of(name, request), [query])
        return _json(answer)

    async def answer_batch(name: str, request: Any) -> Response:
        model = model_named(name)
        problems = [e for i, q in enumerate(request.queries) for e in locate(q, model, ("body", "queries", i))]
        if problems:
            raise RequestProblem(422, problems)
        answers = await batcher.submit(key_of(name, request), list(request.queries), ("body", "queries"))
        return _json({"answers": answers})

    @app.post("/ask", response_model=Answer, responses=errors, summary=f"Ask {first} what happens if ...")
    async def ask(request: AskRequest) -> Response:  # type: ignore[valid-type]
        return await answer_one(first, request)

    @app.post("/ask/batch", response_model=BatchAnswer, responses=errors, summary=f"Ask {first} many queries at once")
    async def ask_batch(request: BatchRequest) -> Response:  # type: ignore[valid-type]
        return await answer_batch(first, request)

    @app.get("/health", response_model=Health, responses=errors, summary="Is the server up?")
    async def health() -> Health:
        return Health(
            device=where.type, models=names, oracle_calls=batcher.stats.calls, queries=batcher.stats.queries,
            oracle_seconds=batcher.stats.seconds,
        )

    @app.get("/models", response_model=list[ModelInfo], responses=errors, summary="The served models")
    async def list_models() -> list[ModelInfo]:
        return [_info(n, models[n]) for n in names]

    @app.get("/models/{name}", response_model=ModelInfo, responses={**errors, **unknown_model}, summary="One model")
    async def get_model(name: str) -> ModelInfo:
        return _info(name, model_named(name))

    @app.post("/models/{name}/ask", response_model=Answer, responses={**errors, **unknown_model}, summary="Ask one model")
    async def ask_model(name: str, request: AskRequest) -> Response:  # type: ignore[valid-type]
        return await answer_one(name, request)

    @app.post(
        "/models/{name}/ask/batch", response_model=BatchAnswer, responses={**errors, **unknown_model},
        summary="Ask one model many queries",
    )
    async def ask_model_batch(name: str, request: BatchRequest) -> Response:  # type: ignore[valid-type]
        return await answer_batch(name, request)

    @app.exception_handler(RequestProblem)
    async def request_problem(_: Request, err: RequestProblem) -> Response:
        return _problem_response(err.status, err.errors)

    @app.exception_handler(StarletteHTTPException)
    async def http_problem(request: Request, err: StarletteHTTPException) -> Response:  # the framework's own 4xx
        loc, message = {
            400: (("body",), "cannot read the body: send UTF-8 JSON"),
            404: (("path",), f"no endpoint {request.url.path}: see /openapi.json"),
            405: (("method",), f"{request.method} is not allowed on {request.url.path}: see /openapi.json"),
        }.get(err.status_code, (("request",), str(err.detail)))
        return _problem_response(err.status_code, [_error(loc, message, "http")], err.headers)

    @app.exception_handler(Exception)
    async def internal(_: Request, err: Exception) -> Response:  # a bug in Crux: say so, in one line
        log.error("internal error", exc_info=err)
        return JSONResponse(
            {"detail": f"internal error: {type(err).__name__}: {err}. This is a bug in Crux; please report it."},
            status_code=500,
        )

    app.add_middleware(_Guard, token=token, max_body_bytes=max_body_bytes)
    return app


def _json(content: Any) -> Response:
    try:
        body = json.dumps(content, allow_nan=False, separators=(",", ":"))
    except ValueError:  # JSON has no NaN or infinity: say so rather than send what a client cannot read
        message = (
            "the answer holds numbers that are not finite (NaN or infinity), which JSON cannot carry: "
            "check that the values set and seen are in a sensible range and the evidence is possible"
        )
        raise RequestProblem(422, [_error(("body",), message)]) from None
    return Response(body, media_type="application/json")


def _info(name: str, model: Model) -> ModelInfo:
    net = model.network
    return ModelInfo(
        name=name,
        title=model.name,
        kind="scenario" if model.scenario is not None else "network",
        parties=list(model.parties),
        default_as=model.default_party,
        decision=net.decision,
        outcomes=list(net.outcomes),
        variables={v: None if v in net.continuous else list(net.states[v]) for v in net.order},
    )


def _check_settings(models, samples, seed, method, window, max_batch, max_queries, max_body_bytes, max_samples, token):
    if not models:
        raise CruxError("give at least one model to serve")
    for name in models:
        if not name or "/" in name or name != name.strip():
            raise CruxError(f"cannot serve a model named {name!r}: a name must be one non-empty path segment")
    if method not in METHODS:
        raise CruxError(f"unknown method {method!r}: use one of {', '.join(METHODS)}")
    for what, value, low in [
        ("max-batch", max_batch, 1), ("max-queries", max_queries, 1), ("max-body-bytes", max_body_bytes, 64),
        ("max-samples", max_samples, 2),
    ]:
        if value < low:
            raise CruxError(f"--{what} must be at least {low} (got {value})")
    if window < 0:
        raise CruxError(f"--batch-window-ms must be 0 or more (got {window})")
    if not 2 <= samples <= max_samples:
        raise CruxError(f"--samples {samples} is outside 2..{max_samples} (--max-samples)")
    if not 0 <= seed < SEED_LIMIT:
        raise CruxError(f"--seed must be in [0, 2**63) (got {seed})")
    if token is not None:
        check_token(token)


# -- guard: token, loopback, body size ----------------------------------------------------------


def check_token(token: str) -> None:
    """A bearer token must be printable ASCII without spaces, and not trivially short."""
    if len(token) < 8 or not token.isascii() or not token.isprintable() or " " in token:
        raise CruxError("--token must be at least 8 printable ASCII characters without spaces")


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 (also IPv4-mapped) or ``localhost``."""
    if host.strip().lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host.strip().strip("[]"))
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


def check_host(host: str, token: str | None) -> None:
    """Refuse to bind a non-loopback ``host`` without a token."""
    if token is None and not is_loopback(host):
        raise CruxError(
            f"--host {host} is not a loopback address, so anyone who can reach it could ask the oracle: "
            "give --token T (clients then send 'Authorization: Bearer T') or serve on --host 127.0.0.1"
        )
    if token is not None:
        check_token(token)


class _Guard:
    """ASGI middleware in front of the app: the token (or loopback only), then the body size
    (read here, at most ``max_body_bytes`` of it, and handed on)."""

    def __init__(self, app: Any, token: str | None, max_body_bytes: int):
        self.app = app
        self.token = None if token is None else token.encode("ascii")
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        length = headers.get(b"content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                declared = -1
            if declared < 0:
                await _problem_response(400, [_error(("header", "content-length"), "not a byte count", "bad_header")])(
                    scope, receive, send
                )
                return
            if declared > self.max_body_bytes:
                await self._too_large()(scope, receive, send)
                return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > self.max_body_bytes:
                await self._too_large()(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def _refusal(self, scope, headers) -> Response | None:
        if self.token is not None:
            scheme, _, given = headers.get(b"authorization", b"").partition(b" ")
            if scheme.lower() == b"bearer" and hmac.compare_digest(given.strip(), self.token):
                return None
            return _problem_response(
                401,
                [_error(("header", "authorization"), "missing or wrong token: send 'Authorization: Bearer <token>'", "auth")],
                {"WWW-Authenticate": "Bearer"},
            )
        client = scope.get("client")
        host = str(client[0]) if client else ""
        try:
            ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            return None  # not an address (a unix socket, an in-process test client)
        if is_loopback(host):
            return None
        return _problem_response(
            403,
            [_error(("client",), f"{host} is not a loopback client, and this server has no token: start it with --token", "auth")],
        )

    def _too_large(self) -> Response:
        message = f"the body is larger than the {self.max_body_bytes:,} bytes allowed: send fewer queries per request"
        return _problem_response(413, [_error(("body",), message, "too_large")])


def run(
    app: Any, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, token: str | None = None, log_level: str = "info"
) -> None:
    """Serve ``app`` with uvicorn until interrupted; refuses a non-loopback host without a token."""
    import uvicorn

    check_host(host, token)
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)

