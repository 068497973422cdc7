"""The oracle over HTTP: a thin FastAPI shell, with dynamic batching.

``create_app(models)`` serves each model by name (``/models/{name}/ask``), the first
also at ``/ask``.  Requests are :class:`~oracle.query.Query` objects and answers the
JSON of ``crux ask --json`` (:meth:`~oracle.query.Answer.to_json`), so the CLI and the
server speak one format.  Predictions only: no endpoint reads values or ranks actions.

**Dynamic batching.**  Each query is checked on arrival, field by field
(:func:`~oracle.validate.checked`, once, so a bad one is answered 422 at once and never joins a
batch), then queued for the :class:`~oracle.batching.Batcher`.  One collector gathers what arrives within ``batch_window_ms`` (up to ``max_batch`` queries)
and hands it to a single worker thread as one :meth:`~oracle.oracle.Oracle.ask_many`
call, off the event loop, so the device sees large batches.  If that call raises, each
half of the batch is answered on its own (and so on down), so one bad request fails
only itself.

Queries of other ``samples`` or ``seed`` than the server's get oracles of their own: each
model's default one is kept for good, at most ``max_oracles`` others (least recently used
dropped).  A collection is answered one key at a time, the cheapest first, each delivered as
it is done, and no request may ask for more than ``max_draws`` interval draws (``samples``
times its queries: 422), so no request holds the worker for longer than the largest batch of
the server's own settings.

**Safety.**  Without a token the server answers loopback clients only (and
:func:`run` refuses to bind elsewhere), and only requests whose ``Host`` is a loopback name
(``localhost``, ``127.0.0.1``, ``[::1]``: a web page that rebinds its own name to 127.0.0.1
gets 400); with one, every request needs ``Authorization: Bearer <token>``.  Bodies over
``max_body_bytes`` get 413; a body that is not standard JSON (malformed, not UTF-8,
``NaN``/``Infinity``, a number too large for a double, a key given twice in one object) 400;
batches over ``max_queries``, ``samples`` over ``max_samples`` and requests over
``max_draws`` 422; every bad request gets a 4xx whose ``detail`` names the field (``loc``)
and says what is wrong (``msg``), never echoing the input.  :func:`run` serves with uvicorn's
h11 protocol plus a deadline on reading each request (``timeout_read``: a client that opens a
connection, or starts a request, and stalls is answered 408 and dropped), uvicorn's
keep-alive timeout, a limit on connections and requests at once (503 past it), a listen
backlog and a limit on the bytes of an unfinished request line and headers held (400 past it).
"""

# No ``from __future__ import annotations`` here: FastAPI reads the route functions'
# annotations at run time, and the request models are made per app, inside create_app.

import asyncio
import gc
import hmac
import ipaddress
import json
import logging
import math
from collections.abc import Mapping
from contextlib import asynccontextmanager
from functools import lru_cache
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import torch
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from crux.oracle.batching import Batcher, Key, Oracles
from crux.oracle.device import resolve_device
from crux.oracle.lines import Reader, Row
from crux.oracle.oracle import MAX_BYTES, METHODS, Method, Oracle
from crux.oracle.query import Answer, Query
from crux.oracle.validate import Loc, checked, error_at
from crux.worldmodel.errors import CruxError, unknown
from crux.worldmodel.jsontext import NotStandardJson
from crux.worldmodel.jsontext import loads as strict_json

try:  # a fast reader where installed (a dependency of Crux), else the strict one alone
    from orjson import loads as _read
except ImportError:  # pragma: no cover - orjson is a dependency
    _read = json.loads
from crux.worldmodel.model import Model

log = logging.getLogger("crux.server")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
SEED_LIMIT = 2**63
"""Seeds are in [0, 2**63): what torch's generators take."""
MAX_DRAWS = 1_000_000
"""Interval draws one request may ask for (``samples`` times its queries): the server's
default 1,000 samples times its default 1,000 queries."""
MAX_ORACLES = 4
"""Oracles kept, with their prepared tables, for requests' own ``samples``/``seed`` (besides
each model's default one, kept for good)."""

# How :func:`run` treats connections (uvicorn's settings, and the read deadline added here).
TIMEOUT_READ = 10.0
"""Seconds a request's line, headers and body may take to arrive, from its first byte (or the
connection's opening): past it 408, and the connection is closed."""
TIMEOUT_KEEP_ALIVE = 5.0
"""Seconds an idle keep-alive connection is held between requests (uvicorn's default)."""
LIMIT_CONCURRENCY = 512
"""Connections and requests in flight at once; a request past it gets 503 (uvicorn's
``limit_concurrency``)."""
BACKLOG = 2048
"""Connections waiting to be accepted (the listen backlog; the kernel may cap it)."""
MAX_HEADER_BYTES = 16 * 1024
"""Most bytes of an unfinished request line and headers held (h11's
``max_incomplete_event_size``): past it 400, and the connection is closed."""

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


class Serving(BaseModel):
    """How one model is served."""

    replicas: int = Field(description="Replicas answering its queries (the embedded server: 1, this process).")
    device: str = Field(description="Where they compute (cpu, cuda).")


class Health(BaseModel):
    """The server is up; what it serves and how it has batched so far."""

    status: Literal["ok"] = "ok"
    device: str = Field(description="Where the oracle computes (on Ray: where its replicas do).")
    models: list[str] = Field(description="Served models; the first is also at /ask.")
    oracle_calls: int = Field(description="Oracle calls made so far (each may answer many queries).")
    queries: int = Field(description="Queries asked of the oracle so far.")
    oracle_seconds: float = Field(description="Time the oracle has spent answering them.")
    serving: dict[str, Serving] = Field(description="Per model: the replicas answering it, and their device.")


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


def _problem_response(status: int, errors: list[dict[str, Any]], headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": errors}, status_code=status, headers=dict(headers or {}))


def as_problem(err: Exception, loc: Loc) -> BaseException:
    """A user error becomes a 422 at the request; anything else stays what it is (a bug: 500)."""
    if isinstance(err, CruxError):
        return RequestProblem(422, [error_at(loc, str(err))])
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
    max_draws: int = MAX_DRAWS,
    max_oracles: int = MAX_ORACLES,
    token: str | None = None,
    backend: Any = None,
    fast_lane: bool = True,
) -> FastAPI:
    """The HTTP app over ``models`` ({name: model}; the first is also served at ``/ask``).

    ``samples``, ``seed``, ``method``, ``particles``, ``max_bytes``, ``dtype`` and ``device``
    are the oracle's (see :class:`~oracle.oracle.Oracle`); a request may ask for its own
    ``samples`` (up to ``max_samples``) and ``seed``.  ``batch_window_ms`` and ``max_batch``
    shape the dynamic batching (``max_batch=1``: one oracle call per request).  A request may
    ask for at most ``max_draws`` interval draws (its ``samples`` times its queries); oracles
    for requests' own ``samples``/``seed`` are kept ``max_oracles`` at most (each model's
    default one always).  ``token``: every request must carry it as a bearer token; without
    one, only loopback clients naming a loopback ``Host`` are answered.  Bad settings raise
    :class:`~worldmodel.errors.CruxError`.

    ``backend``: what answers the checked queries, in place of the embedded
    :class:`~oracle.batching.Batcher` (one worker thread in this process): an object with
    ``async submit(key, rows, loc) -> list[str]`` (the JSON text of each answer, in order; a
    row is a :data:`~oracle.lines.Row`; raises what it makes of a query that cannot be
    answered, a :class:`RequestProblem` for a user's error), ``stats`` (``calls``, ``queries``,
    ``seconds``), ``async serving()`` (per model: ``{"replicas": N, "device": D}``, for /health)
    and ``close()``.  ``fast_lane``: answer good requests of the plain shape
    without the framework's validation (see :class:`_Guard`; the same answers, faster).
    """
    _check_settings(
        models, samples, seed, method, batch_window_ms, max_batch, max_queries, max_body_bytes, max_samples, max_draws,
        max_oracles, token,
    )
    names = list(models)
    first = names[0]
    where = resolve_device(device)

    def make(key: Key) -> Oracle:
        name, n, s = key
        return Oracle(
            models[name], device=where, samples=n, seed=s, dtype=dtype, method=method, particles=particles,
            max_bytes=max_bytes,
        )

    oracles = Oracles(make, [(name, samples, seed) for name in names], max_oracles)
    batcher = backend if backend is not None else Batcher(oracles, batch_window_ms / 1000, max_batch, failed=as_problem)
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
    app.state.oracles = oracles.others
    app.state.fast_answered = 0  # requests the fast lane took
    errors = {
        400: {
            "model": Problem,
            "description": (
                "A body that is not standard UTF-8 JSON (malformed, NaN or Infinity, a number too large, a key "
                "given twice), or a bad header (a Host that is not loopback, without a token)."
            ),
        },
        401: {"model": Problem, "description": "Missing or wrong bearer token."},
        403: {"model": Problem, "description": "Not a loopback client, and the server has no token."},
        413: {"model": Problem, "description": "Body larger than the server allows."},
        422: {
            "model": Problem,
            "description": "A field is missing, malformed or names something the model lacks; or too many draws.",
        },
    }
    unknown_model = {404: {"model": Problem, "description": "No model of that name."}}

    def model_named(name: str) -> Model:
        if name not in models:
            raise RequestProblem(404, [error_at(("path", "name"), unknown("model", name, names), "unknown_model")])
        return models[name]

    def key_of(name: str, request: Any, count: int = 1) -> Key:
        """The request's key; refused if its ``count`` queries ask for more than ``max_draws`` draws."""
        n = samples if request.samples is None else request.samples
        if n * count > max_draws:
            where_ = ("body", "samples") if request.samples is not None else ("body", "queries")
            message = (
                f"the request asks for {n * count:,} interval draws ({count:,} {'query' if count == 1 else 'queries'} "
                f"x {n:,} samples), more than the {max_draws:,} one request may (--max-draws): send fewer queries "
                "per request or ask for fewer samples"
            )
            raise RequestProblem(422, [error_at(where_, message, "too_many_draws")])
        return (name, n, seed if request.seed is None else request.seed)

    async def answer_one(name: str, request: Any) -> Response:
        model = model_named(name)
        query = Query(do=request.do, given=request.given, outcomes=request.outcomes, as_=request.as_)
        key = key_of(name, request)
        resolved, problems = checked(query, model)
        if problems:
            raise RequestProblem(422, problems)
        (answer,) = await batcher.submit(key, [resolved])  # checked once: the oracle takes it as it is
        return _text(answer)

    async def answer_batch(name: str, request: Any) -> Response:
        model = model_named(name)
        key = key_of(name, request, len(request.queries))
        found = [checked(q, model, ("body", "queries", i)) for i, q in enumerate(request.queries)]
        problems = [e for _, errors in found for e in errors]
        if problems:
            raise RequestProblem(422, problems)
        answers = await batcher.submit(key, [resolved for resolved, _ in found], ("body", "queries"))
        return _text(_answers(answers))

    @app.post("/ask", response_model=Answer, responses=errors, summary=f"Ask {first} what happens if ...")
    async def ask(request: AskRequest) -> Response:  # type: ignore[valid-type]
        return await answer_one(first, request)

    @app.post("/ask/batch", response_model=BatchAnswer, responses=errors, summary=f"Ask {first} many queries at once")
    async def ask_batch(request: BatchRequest) -> Response:  # type: ignore[valid-type]
        return await answer_batch(first, request)

    @app.get("/health", response_model=Health, responses=errors, summary="Is the server up?")
    async def health() -> Health:
        if backend is None:
            serving = {n: Serving(replicas=1, device=where.type) for n in names}
        else:
            serving = {n: Serving(**s) for n, s in (await backend.serving()).items()}
        return Health(
            device=", ".join(sorted({s.device for s in serving.values()})), models=names,
            oracle_calls=batcher.stats.calls, queries=batcher.stats.queries, oracle_seconds=batcher.stats.seconds,
            serving=serving,
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

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, err: RequestValidationError) -> Response:  # the request models' 422
        return _problem_response(422, [_safe(e) for e in err.errors()])

    @app.exception_handler(StarletteHTTPException)
    async def http_problem(request: Request, err: StarletteHTTPException) -> Response:  # the framework's own 4xx
        loc, message = {
            400: (("body",), "cannot read the body: send UTF-8 JSON"),
            404: (("path",), f"no endpoint {request.url.path}: see /openapi.json"),
            405: (("method",), f"{request.method} is not allowed on {request.url.path}: see /openapi.json"),
        }.get(err.status_code, (("request",), str(err.detail)))
        return _problem_response(err.status_code, [error_at(loc, message, "http")], err.headers)

    @app.exception_handler(Exception)
    async def internal(_: Request, err: Exception) -> Response:  # a bug in Crux: say so, in one line
        return _internal(err)

    readers = {name: Reader(oracles.defaults[(name, samples, seed)], limit=READER_SHAPES) for name in names}
    routes = {"/ask": (first, False), "/ask/batch": (first, True)}
    for name in names:
        routes[f"/models/{name}/ask"] = (name, False)
        routes[f"/models/{name}/ask/batch"] = (name, True)

    async def fast(path: str, data: Any) -> Response | None:
        """A request of the plain shape, answered without the framework's validation (see
        :class:`_FastLane`); None for anything else, which the routes above answer."""
        route = routes.get(path)
        if route is None or type(data) is not dict:
            return None
        name, many = route
        if not data.keys() <= (_BATCH_KEYS if many else _ASK_KEYS):
            return None
        n, s = data.get("samples", samples), data.get("seed", seed)
        if type(n) is not int or type(s) is not int or not (2 <= n <= max_samples and 0 <= s < SEED_LIMIT):
            return None
        if many:
            queries = data.get("queries")
            if type(queries) is not list or not 1 <= len(queries) <= max_queries or n * len(queries) > max_draws:
                return None
            rows = _rows_of(readers[name], models[name], queries)
        else:
            if n > max_draws:
                return None
            rows = _rows_of(readers[name], models[name], [{k: v for k, v in data.items() if k not in _DRAW_KEYS}])
        if rows is None:
            return None
        app.state.fast_answered += 1
        try:
            answers = await batcher.submit((name, n, s), rows, ("body", "queries") if many else ("body",))
        except RequestProblem as err:
            return _problem_response(err.status, err.errors)
        except Exception as err:  # noqa: BLE001 -- a bug in Crux: answered as the app answers one
            return _internal(err)
        return _text(_answers(answers) if many else answers[0])

    app.add_middleware(_Guard, token=token, max_body_bytes=max_body_bytes, fast=fast if fast_lane else None)
    return app


READER_SHAPES = 4096
"""Shapes of query (what a query sets, sees and asks) whose checked names the fast lane keeps
per model (the oldest forgotten first)."""
_ASK_KEYS = frozenset(("do", "given", "outcomes", "as", "samples", "seed"))
_BATCH_KEYS = frozenset(("queries", "samples", "seed"))
_DRAW_KEYS = frozenset(("samples", "seed"))


def _rows_of(reader: Reader, model: Model, queries: list[Any]) -> list[Row] | None:
    """The queries as rows (each read by ``reader``, or else checked in full on its own), or
    None if any is not a good query: the route then answers the request, with every problem at
    its field."""
    rows: list[Row] = []
    for q in queries:
        row = reader.row(q)
        if row is None:
            try:
                query = Query.model_validate(q)
            except ValidationError:
                return None
            row, problems = checked(query, model)
            if row is None:
                return None
        rows.append(row)
    return rows


def _internal(err: Exception) -> Response:
    """The answer to a bug in Crux: said in one line (and logged in full)."""
    log.error("internal error", exc_info=err)
    return JSONResponse(
        {"detail": f"internal error: {type(err).__name__}: {err}. This is a bug in Crux; please report it."},
        status_code=500,
    )


def _safe(error: Mapping[str, Any]) -> dict[str, Any]:
    """A validation error as JSON can carry it: its place, message and kind, and the limits it
    names (``ctx``) as plain values; never the input (which may be large, or not JSON at all:
    NaN, bytes that are not UTF-8)."""
    out = error_at(tuple(error.get("loc", ("body",))), str(error.get("msg", "invalid")), str(error.get("type", "invalid")))
    ctx = error.get("ctx")
    if isinstance(ctx, Mapping):
        plain = (str, int, bool, type(None))
        out["ctx"] = {
            str(k): v if isinstance(v, plain) or (isinstance(v, float) and math.isfinite(v)) else str(v)
            for k, v in ctx.items()
        }
    return out


def _text(body: str) -> Response:
    """An answer already written as JSON (numbers JSON cannot carry were refused as it was written)."""
    return Response(body, media_type="application/json")


def _answers(answers: list[str]) -> str:
    """The body of a batch's answers."""
    return '{"answers": [' + ", ".join(answers) + "]}"


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


def _check_settings(
    models, samples, seed, method, window, max_batch, max_queries, max_body_bytes, max_samples, max_draws, max_oracles, token
):
    if not models:
        raise CruxError("give at least one model to serve")
    for name in models:
        if not name or "/" in name or name != name.strip():
            raise CruxError(f"cannot serve a model named {name!r}: a name must be one non-empty path segment")
    if method not in METHODS:
        raise CruxError(f"unknown method {method!r}: use one of {', '.join(METHODS)}")
    for what, value, low in [
        ("max-batch", max_batch, 1), ("max-queries", max_queries, 1), ("max-body-bytes", max_body_bytes, 64),
        ("max-samples", max_samples, 2), ("max-oracles", max_oracles, 0),
    ]:
        if value < low:
            raise CruxError(f"--{what} must be at least {low} (got {value})")
    if window < 0:
        raise CruxError(f"--batch-window-ms must be 0 or more (got {window})")
    if not 2 <= samples <= max_samples:
        raise CruxError(f"--samples {samples} is outside 2..{max_samples} (--max-samples)")
    if max_draws < samples:
        raise CruxError(f"--max-draws {max_draws} is less than --samples {samples}: no query could be asked")
    if not 0 <= seed < SEED_LIMIT:
        raise CruxError(f"--seed must be in [0, 2**63) (got {seed})")
    if token is not None:
        check_token(token)


# -- guard: token, loopback, body size, standard JSON ---------------------------------------------


def check_token(token: str) -> None:
    """A bearer token must be printable ASCII without spaces, and not trivially short."""
    if len(token) < 8 or not token.isascii() or not token.isprintable() or " " in token:
        raise CruxError("--token must be at least 8 printable ASCII characters without spaces")


@lru_cache(maxsize=1024)  # asked per request, of a few names
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


@lru_cache(maxsize=1024)
def is_loopback_authority(host: str) -> bool:
    """A ``Host`` header naming this machine: ``localhost``, a loopback address (IPv6 in
    brackets), each with or without a port."""
    host = host.strip()
    if host.startswith("["):
        name, bracket, port = host[1:].partition("]")
        if not bracket or (port and not (port[0] == ":" and port[1:].isdigit())):
            return False
    else:
        name, colon, port = host.partition(":")
        if colon and not port.isdigit():
            return False
    return bool(name) and is_loopback(name)


def read_json(body: bytes) -> tuple[Any, str | None]:
    """``body`` read as standard JSON (UTF-8, no ``NaN`` or ``Infinity``, every number within a
    double's range, no key twice in one object): its value and None, or None and what is wrong
    with it.  The fast reader reads it where it can; where it cannot, where the
    body's ``:`` outnumber its keys (a key given twice, which the fast reader would take as its
    last, or a ``:`` inside a string), or where it holds 19 digits in a row (an integer the fast
    reader would read as a double), the strict reader decides, with its messages."""
    try:
        data = _MISSING if _LONG_NUMBER in body.translate(_DIGITS) else _read(body)
    except (ValueError, TypeError):
        data = _MISSING
    if data is not _MISSING and body.count(b":") == _keys(data):
        return data, None
    return _read_strictly(body)


_MISSING: Any = object()
_DIGITS = bytes(48 if 48 <= i <= 57 else 32 for i in range(256))  # each digit as 0, all else a space
_LONG_NUMBER = b"0" * 19


def _keys(data: Any) -> int:
    """How many keys the objects in ``data`` hold, all told (level by level, so that the work
    per value is done in C where it can be)."""
    count, level = 0, [data]
    while level:
        objects = [x for x in level if type(x) is dict]
        count += sum(map(len, objects))
        inner = [v for x in objects for v in x.values() if type(v) is dict or type(v) is list]
        inner += [v for x in level if type(x) is list for v in x if type(v) is dict or type(v) is list]
        level = inner
    return count


def _read_strictly(body: bytes) -> tuple[Any, str | None]:
    """``body`` read by the strict reader: its value and None, or None and what is wrong."""
    try:
        text = body.decode("utf-8")  # not json's guess among UTF-8, -16 and -32: JSON over a network is UTF-8
        return strict_json(text), None
    except NotStandardJson as err:
        return None, str(err)
    except json.JSONDecodeError as err:
        return None, f"the body is not valid JSON: {err.msg} at line {err.lineno}, column {err.colno}"
    except UnicodeDecodeError:
        return None, "the body is not UTF-8: send UTF-8 JSON"
    except RecursionError:
        return None, "the body is nested too deeply: send a query object as the API describes"
    except ValueError as err:  # anything else Python's reader refuses
        return None, f"cannot read the body as JSON: {err}"


def _is_json(content_type: bytes | None) -> bool:
    """Whether a body of this Content-Type is to be read as JSON (none given: checked too, as a
    client that names no type most likely sends JSON)."""
    if content_type is None:
        return True
    kind = content_type.split(b";", 1)[0].strip().lower()
    main, _, sub = kind.partition(b"/")
    return main == b"application" and (sub == b"json" or sub.endswith(b"+json"))


FastLane = Callable[[str, Any], Awaitable[Response | None]]
"""Given a request's path and its body's JSON, its answer, or None for the app to answer."""


class _Guard:
    """ASGI middleware in front of the app: the token (or loopback clients and a loopback
    ``Host`` only), then the body: its size (read here, at most ``max_body_bytes`` of it) and,
    if it is to be read as JSON, that it is standard JSON; then the fast lane (a ``POST`` of
    JSON the lane answers: a good query of the plain shape), else the app.

    **The fast lane.**  Reading, validating and writing a request through the framework costs
    more than answering it when the oracle batches, so a good request of the plain shape (the
    queries' names as the model spells them, their states by exact name, no field of another
    type) is answered here: its body read once, by the fast reader, its queries read by a
    :class:`~oracle.lines.Reader` (each shape's names checked once, with the full checks), sent
    to the batcher as rows, and its answer written as text.  Anything else takes the app's
    routes, which check every field and say what is wrong where: the lane answers only what
    they would answer with 200, and as they would."""

    def __init__(self, app: Any, token: str | None, max_body_bytes: int, fast: FastLane | None = None):
        self.app = app
        self.token = None if token is None else token.encode("ascii")
        self.max_body_bytes = max_body_bytes
        self.fast = fast

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
                await _problem_response(400, [error_at(("header", "content-length"), "not a byte count", "bad_header")])(
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
        data, problem = read_json(bytes(body)) if body and _is_json(headers.get(b"content-type")) else (_MISSING, None)
        if problem is not None:
            await _problem_response(400, [error_at(("body",), problem, "json")])(scope, receive, send)
            return
        if self.fast is not None and data is not _MISSING and scope["method"] == "POST":
            answer = await self.fast(scope["path"], data)
            if answer is not None:
                await answer(scope, receive, send)
                return
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
                [error_at(("header", "authorization"), "missing or wrong token: send 'Authorization: Bearer <token>'", "auth")],
                {"WWW-Authenticate": "Bearer"},
            )
        client = scope.get("client")
        host = str(client[0]) if client else ""
        try:
            ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            pass  # not an address (a unix socket, an in-process test client)
        else:
            if not is_loopback(host):
                message = f"{host} is not a loopback client, and this server has no token: start it with --token"
                return _problem_response(403, [error_at(("client",), message, "auth")])
        authority = headers.get(b"host")
        if authority is None or is_loopback_authority(authority.decode("latin-1")):
            return None  # (no Host at all: HTTP/1.0, never a browser)
        shown = authority.decode("latin-1")[:100]
        message = (
            f"Host {shown!r} is not this machine: without a token the server answers requests to localhost, "
            "127.0.0.1 or [::1] only (a web page could rebind its own name to 127.0.0.1); use one of those, "
            "or start the server with --token"
        )
        return _problem_response(400, [error_at(("header", "host"), message, "host")])

    def _too_large(self) -> Response:
        message = f"the body is larger than the {self.max_body_bytes:,} bytes allowed: send fewer queries per request"
        return _problem_response(413, [error_at(("body",), message, "too_large")])


# -- serving: uvicorn, with a deadline on reading each request --------------------------------------


def check_connections(
    timeout_read: float, timeout_keep_alive: float, limit_concurrency: int, backlog: int, max_header_bytes: int
) -> None:
    """Refuse connection settings that cannot work."""
    for what, value in [("timeout-read", timeout_read), ("timeout-keep-alive", timeout_keep_alive)]:
        if not value > 0:
            raise CruxError(f"--{what} must be more than 0 seconds (got {value})")
    for what, value, low in [
        ("limit-concurrency", limit_concurrency, 1), ("backlog", backlog, 1), ("max-header-bytes", max_header_bytes, 1024),
    ]:
        if value < low:
            raise CruxError(f"--{what} must be at least {low} (got {value})")


def read_deadline_protocol(timeout_read: float) -> type:
    """uvicorn's h11 protocol, plus a deadline on reading each request.

    uvicorn times out idle keep-alive connections between requests only: a client that opens a
    connection and sends nothing, or part of a request line or headers (or of a body), and then
    stalls, is held for ever, and enough of them use up the process's file descriptors.  Here a
    request's line, headers and body must all arrive within ``timeout_read`` seconds of its first
    byte (of the connection's opening, for its first request); past that the client gets 408
    (if it had sent something and no answer has begun) and the connection is closed.  The time
    the oracle takes to answer is not counted."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    body = json.dumps({"detail": [error_at(
        ("request",),
        f"the request did not arrive within {timeout_read:g} s: send its line, headers and body at once",
        "timeout",
    )]}).encode()
    timed_out = (
        b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
        b"content-length: %d\r\n\r\n" % len(body)
    ) + body

    class ReadDeadlineProtocol(H11Protocol):
        _deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._watch()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            self._watch()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._watch()

        def connection_lost(self, exc: Exception | None) -> None:
            self._stop()
            super().connection_lost(exc)

        def _watch(self) -> None:
            """Start the deadline when a request is being read, stop it when it has been."""
            state = self.conn.their_state
            reading = state is h11.SEND_BODY or (
                state is h11.IDLE and (self.cycle is None or bool(self.conn.trailing_data[0]))
            )
            if not reading or self.transport.is_closing():
                self._stop()
            elif self._deadline is None:
                self._deadline = self.loop.call_later(timeout_read, self._expired)

        def _stop(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expired(self) -> None:
            self._deadline = None
            if self.transport.is_closing():
                return
            started = self.conn.their_state is not h11.IDLE or bool(self.conn.trailing_data[0])
            answering = self.cycle is not None and self.cycle.response_started
            if started and not answering and self.conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                self.transport.write(timed_out)
            log.debug("closed a connection whose request did not arrive within %g s", timeout_read)
            self.transport.close()

    return ReadDeadlineProtocol


def uvicorn_config(
    app: Any,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    log_level: str = "info",
    timeout_read: float = TIMEOUT_READ,
    timeout_keep_alive: float = TIMEOUT_KEEP_ALIVE,
    limit_concurrency: int = LIMIT_CONCURRENCY,
    backlog: int = BACKLOG,
    max_header_bytes: int = MAX_HEADER_BYTES,
):
    """uvicorn's configuration for serving ``app``: HTTP/1.1 by h11 with the read deadline of
    :func:`read_deadline_protocol` (whatever else is installed), no WebSockets, and these limits."""
    import uvicorn

    check_connections(timeout_read, timeout_keep_alive, limit_concurrency, backlog, max_header_bytes)
    return uvicorn.Config(
        app, host=host, port=port, log_level=log_level, access_log=False, ws="none",
        http=read_deadline_protocol(timeout_read), timeout_keep_alive=timeout_keep_alive,  # type: ignore[arg-type]
        limit_concurrency=limit_concurrency, backlog=backlog, h11_max_incomplete_event_size=max_header_bytes,
    )


def _enough_files(connections: int) -> None:
    """Raise the soft limit on open files to hold ``connections`` and some to spare, where the hard
    limit allows (a connection is a file descriptor)."""
    try:
        import resource
    except ImportError:  # not on this platform
        return
    want = connections + 256
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= want:
        return
    raised = want if hard == resource.RLIM_INFINITY else min(want, hard)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
    except (ValueError, OSError):
        raised = soft
    if raised < want:
        log.warning(
            "only %d files may be open (ulimit -n): fewer than --limit-concurrency %d needs; lower it", raised, connections
        )


def run(
    app: Any,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    token: str | None = None,
    log_level: str = "info",
    *,
    timeout_read: float = TIMEOUT_READ,
    timeout_keep_alive: float = TIMEOUT_KEEP_ALIVE,
    limit_concurrency: int = LIMIT_CONCURRENCY,
    backlog: int = BACKLOG,
    max_header_bytes: int = MAX_HEADER_BYTES,
) -> None:
    """Serve ``app`` with uvicorn until interrupted (see :func:`uvicorn_config` for the rest);
    refuses a non-loopback host without a token."""
    import uvicorn

    check_host(host, token)
    config = uvicorn_config(
        app, host, port, log_level=log_level, timeout_read=timeout_read, timeout_keep_alive=timeout_keep_alive,
        limit_concurrency=limit_concurrency, backlog=backlog, max_header_bytes=max_header_bytes,
    )
    _enough_files(limit_concurrency)
    settled()
    uvicorn.Server(config).run()


def settled() -> None:
    """What the process holds once it is ready to serve (models, oracles, their tables, the
    libraries) is kept for good: Python's collector stops scanning it.  Without this, a pass
    over the oldest objects, set off by the objects a large request makes, costs more than the
    request itself (a /ask/batch of 10,000 queries: 140 ms against 40 ms, measured)."""
    gc.collect()
    gc.freeze()
