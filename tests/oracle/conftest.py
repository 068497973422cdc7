"""Fixtures of the oracle's tests: a local Ray cluster for the server's Ray back end."""

from __future__ import annotations

import pytest

from tests.oracle.backends import RAY_MISSING, RayDeployments


@pytest.fixture(scope="session")
def ray_deployments():
    pytest.importorskip("ray.serve", reason=RAY_MISSING)
    from crux.oracle import rayserve

    with rayserve.cluster(None, num_cpus=2):
        yield RayDeployments()
