"""The server's back ends, for the tests that run against each: the embedded batcher and Ray Serve.

``serve(request, kind, models, **settings)`` is :func:`~oracle.server.create_app` on the CPU with
either back end.  For ``ray`` the models are deployed on a local Ray cluster of 2 CPUs, started
once per test session (skipped, with the reason, where Ray is not installed): one deployment per
model, made on first use and kept for the session (its replica asks for no CPU of its own, so
that all fit), set to each new app's settings with fresh oracles; each app gets a back end of
its own over them (so that its /health counts its own calls only).
"""

from __future__ import annotations

import concurrent.futures
import inspect
import itertools
from collections.abc import Mapping

import pytest

from crux.oracle.server import create_app
from crux.worldmodel.model import Model

BACKENDS = ("embedded", "ray")
RAY_MISSING = 'Ray Serve is not installed (pip install -e ".[dev,ray]")'
_DEFAULTS = {name: p.default for name, p in inspect.signature(create_app).parameters.items() if p.default is not p.empty}
_REPLICA = ("samples", "seed", "method", "particles", "max_bytes", "dtype", "batch_window_ms", "max_batch", "max_oracles")
"""create_app's settings that are the replicas' (the rest are the front's)."""


class RayDeployments:
    """The test models deployed on the session's cluster, one deployment each, made on first use."""

    def __init__(self):
        self.made: dict[str, tuple] = {}  # model name -> (handle, application, device)
        self.numbers = itertools.count()

    def backend(self, models: Mapping[str, Model], settings: Mapping[str, object]):
        """The deployments of ``models``, their replicas set to ``settings`` (create_app's) with
        fresh oracles, as the embedded back end of a new app is."""
        from crux.oracle import rayserve
        from crux.oracle.replica import replica_config

        config = replica_config(device="cpu", **{k: settings.get(k, _DEFAULTS[k]) for k in _REPLICA})
        missing = {name: model for name, model in models.items() if name not in self.made}
        if missing:
            deployed = off_the_loop(
                rayserve.deploy, missing, config, rayserve.Scale(cpus=0), prefix=f"test{next(self.numbers)}",
                replica=_test_replica(),
            )
            for name in missing:
                self.made[name] = (deployed.handles[name], deployed.apps[name], deployed.devices[name])
        parts = {name: self.made[name] for name in models}
        off_the_loop(lambda: [handle.reset.remote(config).result() for handle, _, _ in parts.values()])
        return rayserve.Deployed(
            handles={n: p[0] for n, p in parts.items()}, apps={n: p[1] for n, p in parts.items()},
            devices={n: p[2] for n, p in parts.items()},
        )


def _test_replica() -> type:
    """The replica, and ``reset(config)``: new settings (as a new ``user_config`` brings them, but
    without a round through Ray's controller, which takes seconds) and new oracles.  New oracles,
    because an oracle's first answer to a query of a new structure is contracted directly and
    later ones are read from a table compiled for it, and the two may differ in the last bit: for
    answers byte-equal to an embedded app's (made fresh for each test), each test's replicas start
    from fresh oracles too.  (Made here, not at import: this module is read where Ray is not
    installed.)"""
    import asyncio

    from crux.oracle.batching import Oracles
    from crux.oracle.replica import OracleReplica

    class TestReplica(OracleReplica):
        async def reset(self, config: dict) -> None:
            await self.reconfigure(config)

            def fresh():
                self._oracles = Oracles(self._make, list(self._oracles.defaults), self._oracles.keep)

            await asyncio.get_running_loop().run_in_executor(self._worker, fresh)

    return TestReplica


def off_the_loop(function, *args, **kwargs):
    """``function(...)`` on a thread of its own: Ray's blocking calls refuse to run on an event
    loop, and an async test calls this from one."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(function, *args, **kwargs).result()


def serve(request: pytest.FixtureRequest, kind: str, models: Mapping[str, Model], **settings):
    """The app over ``models`` on the CPU with the ``kind`` back end (the test's ``request``
    brings the Ray cluster where needed)."""
    if kind == "embedded":
        return create_app(models, device="cpu", **settings)
    deployments = request.getfixturevalue("ray_deployments")
    from crux.oracle.rayserve import RayBackend

    backend = RayBackend()
    app = create_app(models, device="cpu", **settings, backend=backend)  # settings checked before deploying
    backend.deployed = deployments.backend(models, settings)
    return app
