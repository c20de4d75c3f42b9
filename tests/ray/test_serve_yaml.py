"""`serve run deploy/ray/serve.yaml`, the command users run, on this machine: the shipped config with only its
sizes cut to fit two cores, through Ray's own CLI and a cluster it starts itself, then `ray stop --force`."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

pytest.importorskip("ray", reason="the Ray tests need the ray extra: pip install 'codebooga[ray]'")

from codebooga.server.eval.local_server import free_port  # noqa: E402

pytestmark = [pytest.mark.ray, pytest.mark.slow]

SERVE_YAML = Path(__file__).resolve().parents[2] / "deploy" / "ray" / "serve.yaml"
BIN = Path(sys.executable).parent


@pytest.fixture(params=[False, True], ids=["direct", "prefix_affinity"])
def served(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    config = yaml.safe_load(SERVE_YAML.read_text())
    port = free_port()
    config["http_options"] = {"host": "127.0.0.1", "port": port}
    (application,) = config["applications"]
    application["args"].update(ctx_size=512, threads=1, prefix_affinity=request.param)
    (deployment,) = application["deployments"]
    deployment["ray_actor_options"]["num_cpus"] = 1
    deployment["autoscaling_config"]["max_replicas"] = 1
    small = tmp_path / "serve.yaml"
    small.write_text(yaml.safe_dump(config))
    log = (tmp_path / "serve-run.log").open("wb")
    process = subprocess.Popen([str(BIN / "serve"), "run", str(small)], stdout=log, stderr=subprocess.STDOUT)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        finally:
            subprocess.run([str(BIN / "ray"), "stop", "--force"], capture_output=True, timeout=60)
            log.close()


def test_serve_run_accepts_the_shipped_config_and_serves(served: str) -> None:
    deadline = time.monotonic() + 120
    while True:
        try:
            health = httpx.get(f"{served}/health", timeout=5)
            if health.status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "serve run never became healthy"
        time.sleep(1)
    assert health.json()["context_length"] == 512
    chat = httpx.post(
        f"{served}/v1/chat/completions",
        json={"model": "any", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8},
        timeout=60,
    )
    assert chat.status_code == 200 and chat.json()["choices"][0]["message"]["content"]
    assert chat.headers["x-codebooga-replica"]
