"""A real two-node Ray cluster on this machine for the Ray Serve tests, torn down (and `ray stop --force`d) after
the module, so no Ray process outlives the tests."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="the Ray tests need the ray extra: pip install 'codebooga[ray]'")
from ray import serve  # noqa: E402
from ray.cluster_utils import Cluster  # noqa: E402

from codebooga.server.eval.local_server import free_port  # noqa: E402


# Handles and replicas report ongoing requests to the autoscaler every 10 s by default; the autoscaling test's
# load lasts seconds. Read by the cluster's processes at start, hence set before it starts.
_FAST_METRICS = {
    "RAY_SERVE_HANDLE_AUTOSCALING_METRIC_PUSH_INTERVAL_S": "0.5",
    "RAY_SERVE_REPLICA_AUTOSCALING_METRIC_PUSH_INTERVAL_S": "0.5",
}


@pytest.fixture(scope="module")
def serve_url() -> Iterator[str]:
    """Two nodes of one CPU each, so two one-thread replicas land one per node; the proxy on the head only, since
    both nodes share 127.0.0.1 and would fight over the port."""
    saved = {name: os.environ.get(name) for name in _FAST_METRICS}
    os.environ.update(_FAST_METRICS)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        cluster.add_node(num_cpus=1)
        ray.init(address=cluster.address, logging_level="warning", log_to_driver=False)
        port = free_port()
        serve.start(proxy_location="HeadOnly", http_options={"host": "127.0.0.1", "port": port})
        yield f"http://127.0.0.1:{port}"
    finally:
        try:
            serve.shutdown()
        finally:
            ray.shutdown()
            cluster.shutdown()
            ray_cli = Path(sys.executable).with_name("ray")
            subprocess.run([str(ray_cli), "stop", "--force"], capture_output=True, timeout=60)
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
