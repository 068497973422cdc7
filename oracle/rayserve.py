"""The oracle on Ray Serve: each model a deployment of replicas, behind the same HTTP app.

``crux serve MODEL... --ray`` serves the very app of :func:`~oracle.server.create_app` (its
routes, request and answer JSON, OpenAPI document, token rule, limits and error details), with
uvicorn as ever; only what answers the checked queries changes.  In place of the embedded
:class:`~oracle.batching.Batcher` (one worker thread in this process) a :class:`RayBackend`
sends them to the model's Ray Serve deployment, whose replicas
(:class:`~oracle.replica.OracleReplica`) gather single queries with ``@serve.batch`` and answer
a batch request whole.  The front stays in one process because all it does is read and check
requests (the oracle's work is in the replicas); for more than one front, run several behind a
load balancer, each with ``--address`` of the same cluster.

The pieces, in the order ``crux serve`` uses them: :func:`require_ray` (Ray is an optional
extra, imported only here, and only when asked for), :class:`Scale` (replicas or autoscaling,
GPUs and CPUs per replica), :func:`cluster` (a local cluster, stopped on exit, or an
existing one joined), :func:`check_fits`, :func:`deploy`, and :func:`stop_on_signals` (SIGTERM
as Ctrl-C: uvicorn drains the requests in flight, then the application is deleted).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from crux.worldmodel.errors import CruxError

if TYPE_CHECKING:
    from ray.serve.handle import DeploymentHandle

    from crux.oracle.lines import Row
    from crux.oracle.replica import Reply
    from crux.worldmodel.model import Model

log = logging.getLogger("crux.server")

INSTALL = 'pip install -e ".[ray]"'
"""How to get the extra (from a checkout; ``pip install "ray[serve]>=2.50"`` otherwise)."""
TARGET_ONGOING = 16
"""With ``--autoscale``: the requests a replica is given at once before Ray adds one (at most
``--max-batch``).  A replica answers what waits as one batched call, so a few waiting cost little;
many make each wait for the calls before it."""
START_TIMEOUT = 600.0
"""Seconds the replicas may take to start (a cluster that must add nodes for them can be slow)."""


class Stopped(BaseException):
    """SIGTERM or Ctrl-C: stop serving (a BaseException, as KeyboardInterrupt, so that no
    ``except Exception`` on the way swallows it)."""


def require_ray() -> None:
    """Ray Serve is importable, or a :class:`CruxError` says how to install it."""
    try:
        import ray  # noqa: F401
        from ray import serve  # noqa: F401
    except ImportError as err:
        raise CruxError(f"--ray needs Ray Serve, which is not installed ({err}): {INSTALL}") from None


# -- scale ------------------------------------------------------------------------------------------


def parse_autoscale(text: str) -> tuple[int, int]:
    """``MIN:MAX`` replicas, 0 <= MIN <= MAX, MAX >= 1."""
    low, colon, high = text.partition(":")
    try:
        least, most = int(low), int(high)
    except ValueError:
        least = most = -1
    if not colon or least < 0 or most < max(least, 1):
        raise CruxError(f"--autoscale {text!r}: give MIN:MAX replicas, such as 1:4 (0 <= MIN <= MAX, MAX >= 1)")
    return least, most


@dataclass(frozen=True)
class Scale:
    """How many replicas each model gets, and what each asks of the cluster."""

    replicas: int = 1
    """A fixed number of replicas (unless ``autoscale``)."""
    autoscale: tuple[int, int] | None = None
    """(MIN, MAX): Ray adds replicas, up to MAX, while each holds more than :data:`TARGET_ONGOING`
    requests, and removes them down to MIN."""
    gpus: float = 0.0
    """GPUs per replica (a fraction shares one: 0.25 puts four replicas on a GPU)."""
    cpus: float = 1.0
    """CPUs per replica, as Ray counts them (what it schedules by; torch's threads follow it)."""

    def __post_init__(self) -> None:
        if self.replicas < 1:
            raise CruxError(f"--replicas must be at least 1 (got {self.replicas})")
        if not self.gpus >= 0:
            raise CruxError(f"--gpus-per-replica must be 0 or more (got {self.gpus})")
        if self.gpus > 1 and self.gpus != int(self.gpus):
            raise CruxError(f"--gpus-per-replica above 1 must be a whole number (got {self.gpus})")
        if not self.cpus >= 0:
            raise CruxError(f"--cpus-per-replica must be 0 or more (got {self.cpus})")

    @property
    def least(self) -> int:
        """Replicas each model has at least."""
        return self.replicas if self.autoscale is None else self.autoscale[0]

    def options(self, max_batch: int) -> dict[str, Any]:
        """The deployment's options for this scale (``max_batch``: the queries one call gathers)."""
        out: dict[str, Any] = {
            "ray_actor_options": {"num_cpus": self.cpus, "num_gpus": self.gpus},
            # room for a whole batch to gather, and a batch request or two beside it
            "max_ongoing_requests": max(2 * max_batch, 32),
        }
        if self.autoscale is None:
            out["num_replicas"] = self.replicas
        else:
            least, most = self.autoscale
            out["autoscaling_config"] = {
                "min_replicas": least, "max_replicas": most, "initial_replicas": max(least, 1),
                "target_ongoing_requests": min(max_batch, TARGET_ONGOING),
            }
        return out

    def __str__(self) -> str:
        count = f"{self.replicas}" if self.autoscale is None else f"{self.autoscale[0]} to {self.autoscale[1]}"
        plural = "" if self.autoscale is None and self.replicas == 1 else "s"
        gpus = f", {self.gpus:g} GPU each" if self.gpus else ""
        return f"{count} replica{plural} per model{gpus}"


# -- the cluster --------------------------------------------------------------------------------------


@contextmanager
def cluster(address: str | None = None, *, num_cpus: int | None = None) -> Iterator[bool]:
    """Ray, with Serve started (and no Serve HTTP proxy: the front is ours), for the ``with``
    block.  ``address`` None: a new cluster of this machine alone (``num_cpus``: what it offers,
    default all cores), shut down at the end; else the cluster at ``address`` (``auto``: the one
    this machine is part of), which is only left.  Yields whether the cluster is local.

    Ray's own processes listen on the machine's address, not loopback (Ray maps a loopback node
    address to the machine's); Ray 2.60 asks every connection for the cluster's token (made on
    first start, in ``~/.ray``), and the HTTP front binds loopback unless given ``--host`` and
    ``--token``."""
    import ray
    from ray import serve

    local = address is None
    options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING}
    if local:
        options.update(address="local", num_cpus=num_cpus)
    else:
        _check_reachable(address)  # Ray itself retries a dead address for minutes
        options.update(address=address)
    main = threading.current_thread() is threading.main_thread()  # signals are the main thread's
    handler = signal.getsignal(signal.SIGTERM) if main else None
    try:
        ray.init(**options)
    except (ConnectionError, ValueError, RuntimeError) as err:
        ray.shutdown()
        where = "start a local Ray cluster" if local else f"join the Ray cluster at {address}"
        raise CruxError(f"cannot {where}: {err}") from None
    except SystemExit as err:  # Ray's own SIGTERM handler, while it starts: stopped
        ray.shutdown()
        if err.code == signal.SIGTERM:
            raise Stopped("SIGTERM") from None
        raise
    except BaseException:  # stopped while starting: what has started stops too
        ray.shutdown()
        raise
    finally:
        if handler is not None:
            signal.signal(signal.SIGTERM, handler)  # Ray's driver takes SIGTERM over, to exit at once
    try:
        logging.getLogger("ray.serve").setLevel(logging.WARNING)
        serve.start(proxy_location="Disabled", logging_config={"log_level": "WARNING"})
        yield local
    finally:
        ray.shutdown()  # a local cluster's processes (Serve's controller and replicas among them) stop with it


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """A ``host:port`` address answers a TCP connection (other forms, ``auto`` and ``ray://...``,
    are Ray's to resolve)."""
    host, colon, port = address.strip().rpartition(":")
    if not colon or not port.isdigit() or "://" in address or not host:
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as err:
        raise CruxError(
            f"cannot join the Ray cluster at {address}: nothing answers there ({err}); start one with "
            "'ray start --head', give its address (host:port, or auto on one of its nodes), or leave --address out "
            "for a local cluster"
        ) from None


def check_fits(models: int, scale: Scale) -> None:
    """The cluster has the CPUs and GPUs for ``models`` models' least replicas at once, or a
    :class:`CruxError` says what to change (for a local cluster: one that can add nodes may
    well find them)."""
    import ray

    have = ray.available_resources()
    for what, each, option in [("CPU", scale.cpus, "--cpus-per-replica"), ("GPU", scale.gpus, "--gpus-per-replica")]:
        need = models * scale.least * each
        if need > have.get(what, 0.0) + 1e-9:
            many = f"{models} model{'s' if models > 1 else ''} x {scale.least} replica{'s' if scale.least > 1 else ''}"
            raise CruxError(
                f"the Ray cluster has {have.get(what, 0.0):g} {what}s free, and {many} x {each:g} {what} "
                f"need {need:g}: give fewer replicas or a smaller {option}"
                + (", or serve without a GPU" if what == "GPU" and not have.get(what) else "")
            )


# -- deploying ------------------------------------------------------------------------------------


@dataclass
class Deployed:
    """The Ray Serve applications of the served models: one per model, one deployment each."""

    handles: dict[str, DeploymentHandle]
    apps: dict[str, str]
    """Model name -> its application's name on the cluster."""
    devices: dict[str, str]
    """Model name -> where its replicas compute (cpu, cuda)."""

    def delete(self) -> None:
        """Delete the applications (their replicas stop)."""
        from ray import serve

        for app in self.apps.values():
            serve.delete(app)


def deploy(
    models: Mapping[str, Model], config: dict[str, Any], scale: Scale, *, prefix: str | None = None,
    timeout: float = START_TIMEOUT, replica: type | None = None,
) -> Deployed:
    """Each model as an application of one deployment, its replicas running (or a
    :class:`CruxError` that says why they are not).  ``config``: the replicas' settings
    (:func:`~oracle.replica.replica_config`).  The applications are named ``PREFIX-MODEL``
    (``prefix``: default one of this call's own, so that servers sharing a cluster do not meet);
    deploying again under one prefix updates them.  ``replica``: the replicas' class
    (:class:`~oracle.replica.OracleReplica`, or a subclass)."""
    from ray import serve

    from crux.oracle.replica import OracleReplica

    prefix = prefix or f"crux-{uuid.uuid4().hex[:8]}"
    deployment = serve.deployment(replica or OracleReplica)
    options = {
        **scale.options(int(config["max_batch"])), "user_config": config,
        "logging_config": {"log_level": "WARNING", "enable_access_log": False},
        # a replica being stopped checks for work left this often (Ray's default: 2 s); the front
        # has drained its requests by the time it deletes the application
        "graceful_shutdown_wait_loop_s": 0.25,
    }
    apps = {name: f"{prefix}-{quote(name, safe='')}" for name in models}  # '#' is Ray's
    serve.run_many(
        [
            serve.RunTarget(
                target=deployment.options(name="oracle", **options).bind(name, model), name=apps[name],
                route_prefix=None,
            )
            for name, model in models.items()
        ],
        wait_for_ingress_deployment_creation=False, wait_for_applications_running=False,
    )
    _wait_running(apps, timeout)
    handles = {name: serve.get_app_handle(app) for name, app in apps.items()}
    devices = {name: handle.describe.remote().result()["device"] for name, handle in handles.items()}
    return Deployed(handles, apps, devices)


def _wait_running(apps: Mapping[str, str], timeout: float) -> None:
    from ray import serve
    from ray.serve.schema import ApplicationStatus

    start = time.monotonic()
    deadline, said = start + timeout, start
    while True:
        found = serve.status().applications
        waiting = []
        for name, app in apps.items():
            overview = found.get(app)
            status = overview.status if overview is not None else None
            if status in (ApplicationStatus.DEPLOY_FAILED, ApplicationStatus.UNHEALTHY):
                raise CruxError(f"model {name} did not start on Ray: {_last_words(overview)}")
            if status != ApplicationStatus.RUNNING:
                waiting.append((name, overview))
        if not waiting:
            return
        name, overview = waiting[0]
        now = time.monotonic()
        if now > deadline:
            words = _last_words(overview) if overview is not None else "not deployed"
            raise CruxError(f"model {name} was not running on Ray after {timeout:g} s: {words}")
        if now - said > 30 and overview is not None:  # a cluster short of resources says so by now
            log.warning("model %s: not running on Ray after %.0f s: %s", name, now - start, _last_words(overview))
            said = now
        time.sleep(0.1)


def _last_words(overview: Any) -> str:
    """What Ray says of an application, in a line: the last line of its (or a deployment's) message."""
    messages = [overview.message] + [d.message for d in overview.deployments.values()]
    lines = [line.strip() for m in messages if m for line in m.strip().splitlines() if line.strip()]
    return lines[-1] if lines else str(overview.status)


# -- the back end of the HTTP app --------------------------------------------------------------------


@dataclass
class Stats:
    """Oracle calls, queries and seconds of computing, over all replicas (as the replies report them)."""

    calls: int = 0
    queries: int = 0
    seconds: float = 0.0


@dataclass
class RayBackend:
    """What :func:`~oracle.server.create_app` takes as ``backend``: checked queries to the model's
    deployment (a single one to be gathered by ``@serve.batch``, a batch request's whole), the
    answers' JSON text back.  ``deployed`` may be set after the app is made (the app's settings
    are checked before a cluster is started for them)."""

    deployed: Deployed | None = None
    stats: Stats = field(default_factory=Stats)
    _seen: OrderedDict[str, None] = field(default_factory=OrderedDict, repr=False)

    SEEN = 65_536
    """Calls remembered, so that one answering many requests is counted once."""

    @property
    def device(self) -> str:
        """Where the replicas compute (``cpu``, ``cuda``, or both named)."""
        return ", ".join(sorted(set(self._deployed.devices.values())))

    @property
    def _deployed(self) -> Deployed:
        if self.deployed is None:
            raise RuntimeError("the Ray back end has no deployments yet")
        return self.deployed

    async def submit(self, key: tuple[str, int, int], rows: Sequence[Row], loc: tuple = ("body",)) -> list[str]:
        """The JSON text of each row's answer, in order; a query that cannot be answered raises
        what the server makes of it (a 422 at ``loc`` for a user's error)."""
        from crux.oracle.server import RequestProblem, as_problem
        from crux.oracle.validate import error_at

        from ray.exceptions import RayError
        from ray.serve.exceptions import RayServeException

        handle = self._deployed.handles[key[0]]
        try:
            if len(rows) == 1:
                reply: Reply = await handle.one.remote((key, rows[0]))
            else:
                reply = await handle.many.remote(key, list(rows))
        except (RayError, RayServeException) as err:  # no replica could answer (one died, the cluster is gone)
            log.error("the replicas of %s did not answer: %s", key[0], err)
            raise RequestProblem(503, [error_at(
                ("request",), f"the oracle's replicas for {key[0]} did not answer ({type(err).__name__}): try again",
                "unavailable",
            )]) from None
        self._count(reply)
        if reply.problem is not None:
            raise as_problem(CruxError(reply.problem), loc)
        if reply.error is not None:
            raise reply.error
        return reply.answers  # type: ignore[return-value]

    def _count(self, reply: Reply) -> None:
        for call in reply.calls:
            if call.id in self._seen:
                continue
            self._seen[call.id] = None
            if len(self._seen) > self.SEEN:
                self._seen.popitem(last=False)
            self.stats.calls += 1
            self.stats.queries += call.queries
            self.stats.seconds += call.seconds

    async def serving(self) -> dict[str, dict[str, Any]]:
        """Per model: its running replicas and their device (for ``/health``)."""
        from ray import serve

        found = (await asyncio.to_thread(serve.status)).applications
        out = {}
        for name, app in self._deployed.apps.items():
            overview = found.get(app)
            running = 0 if overview is None else sum(d.replica_states.get("RUNNING", 0) for d in overview.deployments.values())
            out[name] = {"replicas": running, "device": self._deployed.devices[name]}
        return out

    def close(self) -> None:
        """Nothing to release here: the applications live as long as whoever deployed them keeps them."""


# -- stopping ---------------------------------------------------------------------------------------


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """SIGTERM and SIGINT raise :class:`Stopped` in the ``with`` block (:func:`cluster` keeps
    Ray from taking SIGTERM over; uvicorn, while it serves, takes both itself: it stops
    accepting, drains the requests in flight, and then raises the signal again, which lands
    here).  Once stopped, a second SIGTERM is ignored while the application shuts down, and a
    second Ctrl-C interrupts that."""
    stopped = False

    def stop(signum, frame) -> None:
        nonlocal stopped
        stopped = True
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        raise Stopped(signal.Signals(signum).name)

    before = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        if not stopped:
            for sig, handler in before.items():
                signal.signal(sig, handler)
