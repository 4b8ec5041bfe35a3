"""The Ray tier's cluster: a head and a second node (medix_reward_tools/ray_cluster.py), one per session. Runs in
.venv-ray (`make test-ray`); elsewhere these tests are skipped."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

ray = pytest.importorskip("ray", reason="the Ray tier runs in .venv-ray: make test-ray")
serve = pytest.importorskip("ray.serve")

from medix_reward_tools.ray_cluster import RayCluster, local_cluster  # noqa: E402


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[RayCluster]:
    with local_cluster((2, 2)) as cluster:
        yield cluster
