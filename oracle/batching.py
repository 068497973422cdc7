"""Dynamic batching: concurrent requests gathered into few oracle calls, made on one worker thread.

Each request is a list of queries under a key (model, samples, seed); the requests waiting
within a window, up to a number of queries, leave together, and each key's requests are
answered by one :func:`~oracle.lines.answer_rows` call (the JSON text of each answer, as
:meth:`~oracle.oracle.Oracle.ask_many` would write it), off the event loop.  If that call
raises, each half is answered on its own (and so on down), so one bad request fails only itself.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from crux.oracle.lines import Row, answer_rows
from crux.oracle.oracle import Oracle
from crux.oracle.query import Query
from crux.oracle.validate import Loc

log = logging.getLogger("crux.server")


def _unchanged(err: Exception, loc: Loc) -> BaseException:
    return err


def answer_queries(oracle: Oracle, queries: list[Query | Row]) -> list[str]:
    """The JSON text of each query's answer (a query not yet resolved is checked here)."""
    return answer_rows(oracle, [oracle.resolve(q) if isinstance(q, Query) else q for q in queries])


Key = tuple[str, int, int]
"""(model name, samples, seed): queries with the same key can share an oracle call."""


@dataclass
class _Job:
    key: Key
    queries: list[Query | Row]
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
    worker computes have waited already: they leave together as soon as it is free.  A batch
    is answered one key (model, samples, seed) at a time, the cheapest (fewest draws) first,
    and each key's requests are answered as soon as it is done: a request with many draws of
    its own does not hold the cheap ones gathered with it.
    """

    def __init__(
        self,
        oracle_for: Callable[[Key], Oracle],
        window_s: float,
        max_batch: int,
        failed: Callable[[Exception, Loc], BaseException] = _unchanged,
        answer: Callable[[Oracle, list[Query | Row]], list[str]] = answer_queries,
    ):
        self._oracle_for = oracle_for
        self._answer_with = answer
        self._failed = failed
        """What a request gets when its queries raise ``err`` (``loc``: where the request put
        them): the server turns a user's error into a 422 there; by default the error itself."""
        self.window_s = window_s
        self.max_batch = max_batch
        self.stats = _Stats()
        self._executor: ThreadPoolExecutor | None = None
        self._lane: _Lane | None = None
        self._lock = threading.Lock()

    async def submit(self, key: Key, queries: list[Query | Row], loc: Loc = ("body",)) -> list[str]:
        """Answers (the JSON text of ``crux ask --json``) to these queries, in order; raises
        what ``failed`` makes of the error if they cannot be answered."""
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
            for members in by_key([(job.key, len(job.queries)) for job in jobs]):
                group = [jobs[n] for n in members if not jobs[n].future.done()]  # clients that left
                if not group:
                    continue
                try:
                    results = await loop.run_in_executor(executor, self._compute, group)
                except Exception as err:  # the worker itself failed (a bug): fail these requests, keep serving
                    log.exception("oracle worker failed")
                    results = [err] * len(group)
                for job, result in zip(group, results):
                    if job.future.done():
                        continue
                    if isinstance(result, BaseException):
                        job.future.set_exception(result)
                    else:
                        job.future.set_result(result)

    def _compute(self, jobs: list[_Job]) -> list[list[str] | BaseException]:
        """On the worker thread: the answers of jobs of one key (model, samples, seed)."""
        try:
            oracle = self._oracle_for(jobs[0].key)
        except Exception as err:  # noqa: BLE001 -- handed to its requests
            return [self._failed(err, job.loc) for job in jobs]
        return self._answer(oracle, jobs)

    def _answer(self, oracle: Oracle, jobs: list[_Job]) -> list[list[str] | BaseException]:
        results = answer_halving(lambda queries: self._ask(oracle, queries), [job.queries for job in jobs])
        return [self._failed(r, job.loc) if isinstance(r, Exception) else r for r, job in zip(results, jobs)]

    def _ask(self, oracle: Oracle, queries: list[Query | Row]) -> list[str]:
        stats = self.stats
        stats.calls += 1
        start = time.perf_counter()
        try:
            return self._answer_with(oracle, queries)
        finally:
            stats.seconds += time.perf_counter() - start
            stats.queries += len(queries)


def by_key(jobs: Sequence[tuple[Key, int]]) -> list[list[int]]:
    """Jobs given as (key, how many queries), grouped by key as their indices, in arrival order
    within a key; the key with the fewest draws (samples times queries) first."""
    groups: dict[Key, list[int]] = {}
    for n, (key, _) in enumerate(jobs):
        groups.setdefault(key, []).append(n)
    return sorted(groups.values(), key=lambda members: jobs[members[0]][0][1] * sum(jobs[n][1] for n in members))


def answer_halving(ask: Callable[[list], list[str]], jobs: Sequence[Sequence]) -> list[list[str] | Exception]:
    """Each job's answers (a job: a request's queries) from one ``ask`` of all their queries; if
    it raises, each half is answered on its own (and so on down), so a bad request fails only
    itself (its entry is the error), at a cost of a few calls per bad one."""
    try:
        answers = ask([q for job in jobs for q in job])
    except Exception as err:  # noqa: BLE001 -- handed to its request, never hidden
        if len(jobs) == 1:
            return [err]
        half = len(jobs) // 2
        return answer_halving(ask, jobs[:half]) + answer_halving(ask, jobs[half:])
    out: list[list[str] | Exception] = []
    start = 0
    for job in jobs:
        out.append(answers[start : start + len(job)])
        start += len(job)
    return out


class Oracles:
    """Oracles by key (model, samples, seed), made by ``make`` on first use: the ``defaults``
    (made at once, so that a bad setting fails at start) kept for good, at most ``keep`` others
    (the least recently used dropped).  Used from one thread."""

    def __init__(self, make: Callable[[Key], Oracle], defaults: Iterable[Key], keep: int):
        self.make, self.keep = make, keep
        self.defaults = {key: make(key) for key in defaults}
        self.others: OrderedDict[Key, Oracle] = OrderedDict()

    def __call__(self, key: Key) -> Oracle:
        if key in self.defaults:
            return self.defaults[key]
        if key in self.others:
            self.others.move_to_end(key)
            return self.others[key]
        made = self.others[key] = self.make(key)
        while len(self.others) > self.keep:
            self.others.popitem(last=False)
        return made
