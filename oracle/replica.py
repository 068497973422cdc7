"""One model's oracle as a Ray Serve deployment (what :mod:`oracle.rayserve` deploys).

A replica is given its model once, when it starts, and its settings as the deployment's
``user_config`` (:func:`replica_config`: the server's ``samples``, ``seed``, ``method``,
``particles``, ``max_bytes``, ``dtype``, ``device``, batch window and size, and oracles kept), so
an operator can retune a running application without restarting its replicas.  It computes on
``cuda`` when Ray gave it a GPU and on the CPU otherwise (``device="auto"``), on one worker
thread, off its event loop, so that requests keep arriving while it computes:

- ``one``: a single query.  ``@serve.batch`` gathers those that arrive within the window, up to
  ``max_batch`` of them, into one call of :func:`~oracle.batching.answer_queries` per key
  (samples, seed); the key with the fewest draws first.
- ``many``: the queries of one ``/ask/batch`` request, answered whole, in one call.

As in the embedded :class:`~oracle.batching.Batcher`, if a call raises, each half of it is
answered on its own (and so on down), so one bad request fails only itself.  A replica never
raises for a request: each gets a :class:`Reply` with its answers or what went wrong, the
oracle calls it took part in (the front's statistics) and the device.  Replicas hold no state
but their oracles (prepared tables), so any replica answers any query.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import pickle
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

import torch
from ray import serve

from crux.oracle.batching import Key, Oracles, answer_halving, answer_queries, by_key
from crux.oracle.device import resolve_device
from crux.oracle.lines import Row
from crux.oracle.oracle import Oracle
from crux.oracle.query import Query
from crux.worldmodel.errors import CruxError
from crux.worldmodel.model import Model

log = logging.getLogger("crux.server")

DTYPES = {"float64": torch.float64, "float32": torch.float32}
"""The dtypes a replica computes in, by the name its settings carry (they are JSON)."""


def replica_config(
    *, device: str, samples: int, seed: int, method: str, particles: int, max_bytes: int, dtype: torch.dtype,
    batch_window_ms: float, max_batch: int, max_oracles: int,
) -> dict[str, Any]:
    """A replica's settings as its ``user_config`` (plain JSON), from the server's."""
    names = {v: k for k, v in DTYPES.items()}
    if dtype not in names:
        raise CruxError(f"a replica computes in {' or '.join(DTYPES)}, not {dtype}")
    where = str(device)
    return {
        # a replica sees the GPUs Ray gave it, from cuda:0 up: any cuda device is its own
        "device": "cuda" if where.startswith("cuda") else where, "samples": samples, "seed": seed, "method": method, "particles": particles,
        "max_bytes": max_bytes, "dtype": names[dtype], "batch_window_ms": batch_window_ms, "max_batch": max_batch,
        "max_oracles": max_oracles,
    }


class Call(NamedTuple):
    """One oracle call a reply took part in (a call answers many requests: counted once, by ``id``)."""

    id: str
    queries: int
    seconds: float


class Reply(NamedTuple):
    """A replica's answer to one request."""

    answers: list[str] | None
    """The JSON text of each answer, in order; None if the request failed."""
    problem: str | None
    """A user's error (a :class:`~worldmodel.errors.CruxError`): its message, for a 422."""
    error: BaseException | None
    """Anything else (a bug in Crux): the error, for a 500."""
    calls: tuple[Call, ...]
    device: str


class OracleReplica:
    """A replica of one model's oracle (see the module's doc); :mod:`oracle.rayserve` makes it a
    deployment (``serve.deployment(OracleReplica)``, so that it travels by reference)."""

    def __init__(self, name: str, model: Model):
        self.name = name
        self.model = model
        self.device = "cpu"
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="crux-replica")
        self._tag = uuid.uuid4().hex[:12]
        self._numbers = itertools.count()
        self._settings: dict[str, Any] = {}
        self._oracles = Oracles(self._make, (), 0)

    async def reconfigure(self, config: dict[str, Any]) -> None:
        """Take new settings (at start, and whenever the deployment's ``user_config`` changes):
        the batch window and size at once, the oracles on the worker (where they are used)."""
        self.one.set_max_batch_size(int(config["max_batch"]))
        self.one.set_batch_wait_timeout_s(float(config["batch_window_ms"]) / 1000)
        await asyncio.get_running_loop().run_in_executor(self._worker, self._configure, config)

    def _configure(self, config: dict[str, Any]) -> None:
        device = resolve_device(config["device"])  # auto: cuda where Ray gave this replica a GPU
        settings = {
            "device": device, "dtype": DTYPES[config["dtype"]], "method": config["method"],
            "particles": int(config["particles"]), "max_bytes": int(config["max_bytes"]),
        }
        key = (self.name, int(config["samples"]), int(config["seed"]))
        if settings != self._settings or key not in self._oracles.defaults:
            self._settings = settings
            self._oracles = Oracles(self._make, [key], 0)  # its default made now: a bad setting fails the replica's start
        self._oracles.keep = int(config["max_oracles"])
        self.device = device.type

    def _make(self, key: Key) -> Oracle:
        _, samples, seed = key
        return Oracle(self.model, samples=samples, seed=seed, **self._settings)

    def _oracle_for(self, key: Key) -> Oracle:  # on the worker thread only
        if key[0] != self.name:
            raise RuntimeError(f"the replica of {self.name!r} was asked about {key[0]!r}")
        return self._oracles(key)

    @serve.batch(max_batch_size=256, batch_wait_timeout_s=0.002)  # set from the settings by reconfigure
    async def one(self, items: list[tuple[Key, Row | Query]]) -> list[Reply]:
        """Single queries, gathered: ``(key, row)`` each."""
        return await self._run([(key, [row]) for key, row in items])

    async def many(self, key: Key, rows: list[Row | Query]) -> Reply:
        """The queries of one batch request, whole."""
        (reply,) = await self._run([(key, rows)])
        return reply

    def describe(self) -> dict[str, str]:
        """Where this replica computes."""
        return {"device": self.device}

    async def _run(self, jobs: list[tuple[Key, Sequence[Row | Query]]]) -> list[Reply]:
        return await asyncio.get_running_loop().run_in_executor(self._worker, self._answer_jobs, jobs)

    def _answer_jobs(self, jobs: list[tuple[Key, Sequence[Row | Query]]]) -> list[Reply]:
        """On the worker: each job's reply, one key at a time (the fewest draws first)."""
        replies: list[Reply | None] = [None] * len(jobs)
        for members in by_key([(key, len(rows)) for key, rows in jobs]):
            key = jobs[members[0]][0]
            calls: list[Call] = []
            try:
                oracle = self._oracle_for(key)
            except Exception as err:  # noqa: BLE001 -- handed to its requests
                results: list[list[str] | BaseException] = [err] * len(members)
            else:
                results = self._answer(oracle, [jobs[n][1] for n in members], calls)
            for n, result in zip(members, results):
                replies[n] = self._reply(result, tuple(calls))
        return replies  # type: ignore[return-value]

    def _answer(
        self, oracle: Oracle, jobs: list[Sequence[Row | Query]], calls: list[Call]
    ) -> list[list[str] | BaseException]:
        """The jobs' answers from one call (each half on its own if it raises), each call counted."""

        def ask(queries: list[Row | Query]) -> list[str]:
            start = time.perf_counter()
            try:
                return answer_queries(oracle, queries)
            finally:
                calls.append(Call(f"{self._tag}:{next(self._numbers)}", len(queries), time.perf_counter() - start))

        return answer_halving(ask, jobs)

    def _reply(self, result: list[str] | BaseException, calls: tuple[Call, ...]) -> Reply:
        if not isinstance(result, BaseException):
            return Reply(result, None, None, calls, self.device)
        if isinstance(result, CruxError):
            return Reply(None, str(result), None, calls, self.device)
        log.error("oracle replica of %s failed", self.name, exc_info=result)
        try:
            pickle.dumps(result)
        except Exception:  # noqa: BLE001 -- an error that cannot travel: its words do
            result = RuntimeError(f"{type(result).__name__}: {result}")
        return Reply(None, None, result, calls, self.device)
