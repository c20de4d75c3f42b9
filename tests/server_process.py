"""Start the real `codebooga serve` as a subprocess on a free port, for tests that talk to it over HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from codebooga.server.eval.local_server import free_port

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class RunningServer:
    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/v1"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def running_server(
    *args: str,
    timeout: float = 120.0,
    env: dict[str, str] | None = None,
    codebooga: Sequence[str] = (sys.executable, "-m", "codebooga.server"),
    cwd: Path = REPO_ROOT,
) -> Iterator[RunningServer]:
    """`codebooga serve ARGS...` on a free port, healthy; `codebooga` is the command that runs the CLI."""
    port = free_port()
    log_file = tempfile.NamedTemporaryFile(prefix="codebooga-serve-", suffix=".log", delete=False)
    command = [*codebooga, "serve", "--port", str(port), "--threads", "2", *args]
    process = subprocess.Popen(
        command, cwd=cwd, stdout=log_file, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
    )
    server = RunningServer(f"http://127.0.0.1:{port}", process, Path(log_file.name))
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited with {process.returncode}:\n{server.log()}")
            try:
                if httpx.get(f"{server.base_url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server not healthy after {timeout} s:\n{server.log()}")
            time.sleep(0.2)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log_file.close()
        os.unlink(log_file.name)
