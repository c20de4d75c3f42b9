"""Serve a local GGUF with `codebooga serve` for the length of an eval: a child process on a free port, stopped
afterwards. It goes through the same command users run, so the model is scored as it will be served."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx

from codebooga.merge.shared.cli_error import CliError


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def served(model: str, extra_args: Sequence[str] = (), timeout: float = 600.0) -> Iterator[str]:
    """The API base URL (`http://127.0.0.1:PORT/v1`) of `codebooga serve --model MODEL` while it runs;
    `model` "embedded" serves the bundled SmolLM2 test model."""
    port = free_port()
    model_args = [] if model == "embedded" else ["--model", model]
    command = [sys.executable, "-m", "codebooga.server", "serve", "--port", str(port), *model_args, *extra_args]
    with tempfile.NamedTemporaryFile(prefix="codebooga-eval-serve-", suffix=".log") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy())
        try:
            _wait_healthy(process, f"http://127.0.0.1:{port}", timeout, Path(log.name))
            yield f"http://127.0.0.1:{port}/v1"
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_healthy(process: subprocess.Popen[bytes], base_url: str, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise CliError(f"codebooga serve exited with {process.returncode}: {log.read_text(errors='replace')[-1500:]}")
        try:
            if httpx.get(f"{base_url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise CliError(f"codebooga serve not healthy after {timeout:.0f} s: {log.read_text(errors='replace')[-1500:]}")
        time.sleep(0.2)
