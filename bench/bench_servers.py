"""Starting and stopping the servers a benchmark compares (shared by the benchmarks in this folder)."""

from __future__ import annotations

import socket
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import httpx

REPO = Path(__file__).resolve().parent.parent

SETTLE_SECONDS = 1.0
"""The pause before each measurement, so that no server is measured while the previous one winds down. A
llama.cpp built without OpenMP keeps its pool threads polling after the last token: llama-server built so used
0.165 CPU-seconds in the 1.5 s after a stream (0.01 for the OpenMP build both servers use by default), and on a
small machine that CPU would come out of whichever server is measured next."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class Launched:
    base: str
    process: subprocess.Popen

    def peak_rss_mib(self) -> float:
        """The process's peak resident memory so far (VmHWM), in MiB."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")


@contextmanager
def launched(name: str, command: list[str], port: int, ready_path: str) -> Iterator[Launched]:
    """Run `command` (a server listening on `port`) until the block ends; ready once `ready_path` answers 200.
    Its output goes to bench/results/NAME.log."""
    log = open(REPO / "bench" / "results" / f"{name}.log", "w")
    process = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited; see bench/results/{name}.log")
            try:
                if httpx.get(base + ready_path, timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        else:
            raise RuntimeError(f"{name} did not become ready")
        yield Launched(base, process)
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
