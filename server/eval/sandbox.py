"""Run one untrusted program (a model's answer plus its tests) so that it can harm nothing.

Generated code is untrusted: it may loop, fork-bomb, fill the disk, read the user's files or phone home. Each run
gets a fresh temporary directory, which is the only writable place it sees, and goes through three layers:

- `setpriv` (only when running as root) drops to an unprivileged user first. Root ignores `RLIMIT_NPROC`, so a
  fork bomb would not be contained without this step.
- `prlimit` caps CPU seconds, address space, file size (which also caps the captured stdout/stderr, written to
  plain files) and the number of processes.
- `bwrap` (bubblewrap) unshares every namespace (no network, a private PID namespace whose death kills every
  process left in it, so orphans are reaped), shows only a read-only `/usr` plus the work directory, and dies
  with its parent.

On top, the caller's wall clock kills the whole process group. Without bubblewrap, `Sandbox.open` refuses unless
the caller asked for `unsafe=True` (the CLI's `--unsafe-no-sandbox`), which keeps only the rlimits and the clock.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

NOBODY = 65534
WORK_DIR_INSIDE = "/sandbox"
# The sandbox shows the host's /usr only: interpreters must live there (Debian's python3 and nodejs do).
SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin"
INSTALL_HINT = "install bubblewrap (`apt-get install bubblewrap`) or pass --unsafe-no-sandbox to run generated code unconfined"


START_ATTEMPTS = 5
"""bubblewrap's own fork or namespace creation can fail for a moment (EAGAIN: the unprivileged user's process
count still holds an earlier sandbox's processes, killed but not yet reaped by the host's init). That is the
machine's hiccup, not the program's failure: such a start is retried, with growing pauses, this many times."""


class SandboxUnavailable(Exception):
    """The sandbox cannot be set up on this machine; the message says what to install or pass."""


@dataclass(frozen=True)
class Limits:
    """What one run may use. The defaults fit a HumanEval test (milliseconds of work) with a wide margin."""

    wall_seconds: float = 15.0
    cpu_seconds: int = 10
    memory_bytes: int = 1 << 30
    file_bytes: int = 1 << 20
    processes: int = 128
    output_chars: int = 4096


@dataclass(frozen=True)
class RunResult:
    """How the run ended. `timed_out` means the wall clock killed it; `exit_code` is then None."""

    exit_code: int | None
    timed_out: bool
    stdout: str
    stderr: str
    seconds: float

    @property
    def passed(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


@dataclass(frozen=True)
class Sandbox:
    """A way to run programs, checked once; `run` may be called from many threads at once."""

    bwrap: str | None
    drop_to: int | None

    @classmethod
    def open(cls, unsafe: bool = False) -> "Sandbox":
        """The bubblewrap sandbox after a trial run, or the unconfined runner when `unsafe` is asked for."""
        drop_to = NOBODY if os.geteuid() == 0 else None
        if drop_to is not None and shutil.which("setpriv") is None:
            raise SandboxUnavailable("running as root needs `setpriv` (util-linux) to drop privileges")
        if shutil.which("prlimit") is None:
            raise SandboxUnavailable("`prlimit` (util-linux) is missing")
        if unsafe:
            return cls(bwrap=None, drop_to=drop_to)
        bwrap = shutil.which("bwrap")
        if bwrap is None:
            raise SandboxUnavailable(f"bubblewrap is not installed: {INSTALL_HINT}")
        sandbox = cls(bwrap=bwrap, drop_to=drop_to)
        probe = sandbox.run({}, ["/usr/bin/true"], Limits(wall_seconds=20))
        if not probe.passed:
            raise SandboxUnavailable(
                f"bubblewrap cannot start a sandbox here (exit {probe.exit_code}: {probe.stderr.strip()[:300]}); "
                f"user namespaces may be disabled (sysctl kernel.unprivileged_userns_clone=1), or {INSTALL_HINT}"
            )
        return sandbox

    @property
    def confined(self) -> bool:
        return self.bwrap is not None

    def run(self, files: Mapping[str, str], argv: Sequence[str], limits: Limits) -> RunResult:
        """Write `files` into a fresh work directory, run `argv` there under `limits`, then delete everything.
        Raises `SandboxUnavailable` when bubblewrap could not start the program even after retries."""
        for attempt in range(START_ATTEMPTS):
            result = self._run_in_fresh_directory(files, argv, limits)
            if not _transient_start_failure(result):
                return result
            time.sleep(0.1 * 2**attempt)
        raise SandboxUnavailable(
            f"bubblewrap could not start a sandbox {START_ATTEMPTS} times in a row: {result.stderr.strip()[:200]}"
        )

    def _run_in_fresh_directory(self, files: Mapping[str, str], argv: Sequence[str], limits: Limits) -> RunResult:
        root = Path(tempfile.mkdtemp(prefix="codebooga-eval-"))
        try:
            # The unprivileged user may pass through the private root to its work directory, but not list it
            # or reach the captured output next to it.
            root.chmod(0o711)
            work = root / "work"
            work.mkdir()
            for name, text in files.items():
                (work / name).write_text(text)
            if self.drop_to is not None:
                for path in (work, *work.iterdir()):
                    os.chown(path, self.drop_to, self.drop_to)
            with open(root / "stdout", "wb") as stdout, open(root / "stderr", "wb") as stderr:
                return self._run(work, argv, limits, stdout, stderr, root)
        finally:
            shutil.rmtree(root, ignore_errors=True)

    def _run(
        self, work: Path, argv: Sequence[str], limits: Limits, stdout: IO[bytes], stderr: IO[bytes], root: Path
    ) -> RunResult:
        status_read, status_write = os.pipe()
        command = [
            *self._privilege_drop(), *self._rlimits(limits), *self._confinement(work, status_write), *argv
        ]  # fmt: skip
        started = time.monotonic()
        try:
            process = subprocess.Popen(
                command,
                cwd=work,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,
                pass_fds=(status_write,),
                env={"PATH": SANDBOX_PATH, "LANG": "C.UTF-8", "HOME": str(work)},
            )
        except OSError:
            os.close(status_read)
            raise
        finally:
            os.close(status_write)
        timed_out = False
        try:
            process.wait(timeout=limits.wall_seconds)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            # The group holds bwrap (and, unconfined, the program and whatever it spawned); inside bwrap the PID
            # namespace dies with it, taking every process the program left behind.
            _kill_group(process.pid)
            process.wait()
            with os.fdopen(status_read, "rb") as status:
                _await_namespace_end(status.read())
        seconds = time.monotonic() - started
        return RunResult(
            exit_code=None if timed_out else process.returncode,
            timed_out=timed_out,
            stdout=_read_capped(root / "stdout", limits.output_chars),
            stderr=_read_capped(root / "stderr", limits.output_chars),
            seconds=seconds,
        )

    def _privilege_drop(self) -> list[str]:
        if self.drop_to is None:
            return []
        return ["setpriv", f"--reuid={self.drop_to}", f"--regid={self.drop_to}", "--clear-groups", "--"]

    def _rlimits(self, limits: Limits) -> list[str]:
        return [
            "prlimit",
            f"--cpu={limits.cpu_seconds}",
            f"--as={limits.memory_bytes}",
            f"--fsize={limits.file_bytes}",
            f"--nproc={self._nproc(limits.processes)}",
            "--",
        ]

    def _nproc(self, processes: int) -> int:
        """RLIMIT_NPROC counts every task of the real user, not just this run's: an ordinary user running
        `codebooga eval` has a desktop's worth, and the unprivileged user may still hold tasks of other sandboxes
        (another worker's run, a killed run not yet reaped). The budget sits on top of what the user has now:
        at the limit node does not fail, it hangs waiting for threads it could not create, until the wall clock."""
        user = os.getuid() if self.drop_to is None else self.drop_to
        return _tasks_of(user) + processes

    def _confinement(self, work: Path, status_fd: int) -> list[str]:
        if self.bwrap is None:
            return []
        return [
            self.bwrap,
            "--json-status-fd", str(status_fd),
            "--unshare-all",
            "--die-with-parent",
            "--new-session",
            "--ro-bind", "/usr", "/usr",
            "--symlink", "usr/bin", "/bin",
            "--symlink", "usr/lib", "/lib",
            "--symlink", "usr/lib64", "/lib64",
            "--proc", "/proc",
            "--dev", "/dev",
            "--tmpfs", "/tmp",
            "--bind", str(work), WORK_DIR_INSIDE,
            "--chdir", WORK_DIR_INSIDE,
            "--setenv", "HOME", WORK_DIR_INSIDE,
            "--",
        ]  # fmt: skip


def _transient_start_failure(result: RunResult) -> bool:
    """bubblewrap itself (its messages start with `bwrap: `) failed to fork or create a namespace with EAGAIN."""
    first_line = result.stderr.lstrip().split("\n", 1)[0]
    return first_line.startswith("bwrap: ") and "Resource temporarily unavailable" in first_line


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _await_namespace_end(status: bytes, timeout: float = 30.0) -> None:
    """Wait until the sandbox's PID 1 is gone. The kernel kills the rest of its namespace asynchronously (a
    fork bomb's thousand processes take a moment), and until they are gone they still count against the
    unprivileged user's process limit, so the next run could not even start."""
    for line in status.splitlines():
        try:
            child = json.loads(line).get("child-pid")
        except ValueError:
            continue
        if child is None:
            continue
        deadline = time.monotonic() + timeout
        while _alive(int(child)) and time.monotonic() < deadline:
            time.sleep(0.01)


def _alive(pid: int) -> bool:
    """Running, as opposed to gone or a zombie waiting for an init that may never reap it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _read_capped(path: Path, chars: int) -> str:
    with open(path, "rb") as file:
        data = file.read(chars * 4)
    return data.decode("utf-8", errors="replace")[:chars]


def _tasks_of(uid: int) -> int:
    count = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid == uid:
                count += len(os.listdir(entry / "task"))
        except OSError:
            continue
    return count
