"""Each limit of the sandbox, proven by a program that tries to break it. Limits are small so the file runs in
seconds: what matters is that the hostile program is stopped, and that nothing of it outlives the run."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import pytest

from codebooga.server.eval.sandbox import Limits, RunResult, Sandbox, SandboxUnavailable

TIGHT = Limits(wall_seconds=4, cpu_seconds=1, memory_bytes=256 << 20, file_bytes=64 << 10, processes=32,
               output_chars=1000)  # fmt: skip


def run_python(sandbox: Sandbox, code: str, limits: Limits = TIGHT):
    return sandbox.run({"program.py": code}, ["python3", "program.py"], limits)


def live_processes_of(uid: int) -> list[str]:
    """Processes of `uid` that still run (zombies waiting for the container's init to reap them hold nothing)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and entry.stat().st_uid == uid:
                stat = (entry / "stat").read_text()
                if stat.rsplit(")", 1)[1].split()[0] != "Z":
                    found.append(stat)
        except OSError:
            continue
    return found


def sandbox_uid(sandbox: Sandbox) -> int:
    return sandbox.drop_to if sandbox.drop_to is not None else os.getuid()


def test_ordinary_program_runs_and_output_is_captured(sandbox: Sandbox) -> None:
    result = run_python(sandbox, "import sys\nprint('out')\nprint('err', file=sys.stderr)")
    assert (result.exit_code, result.stdout, result.stderr) == (0, "out\n", "err\n")


def test_runs_unprivileged(sandbox: Sandbox) -> None:
    result = run_python(sandbox, "import os\nprint(os.getuid())")
    if os.geteuid() == 0:
        assert result.stdout.strip() != "0", "root must be dropped before entering the sandbox"


def test_network_is_blocked(sandbox: Sandbox) -> None:
    code = ("import socket\n"
            "socket.create_connection(('1.1.1.1', 53), timeout=2)\n")  # fmt: skip
    result = run_python(sandbox, code)
    assert result.exit_code != 0
    assert "unreachable" in result.stderr.lower() or "OSError" in result.stderr


def test_files_outside_the_work_dir_are_invisible(sandbox: Sandbox) -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".secret") as secret:
        secret.write("top secret")
        secret.flush()
        code = (f"import os\nprint(os.path.exists({secret.name!r}), os.path.exists('/etc/passwd'),"
                f" os.path.exists('/root'), os.path.exists('/home'))\nopen('scratch.txt', 'w').write('ok')")  # fmt: skip
        result = run_python(sandbox, code)
    assert (result.exit_code, result.stdout.split()) == (0, ["False"] * 4)


def test_fork_bomb_is_contained_and_reaped(sandbox: Sandbox) -> None:
    code = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    started = time.monotonic()
    result = run_python(sandbox, code)
    assert not result.passed
    assert time.monotonic() - started < TIGHT.wall_seconds + 10
    if sandbox.drop_to is not None:
        assert live_processes_of(sandbox.drop_to) == []
    assert run_python(sandbox, "print('after')").stdout == "after\n", "the next run must start normally"


def test_memory_hog_is_stopped(sandbox: Sandbox) -> None:
    result = run_python(sandbox, "block = bytearray(1 << 30)\nprint('allocated')")
    assert not result.passed
    assert "MemoryError" in result.stderr


def test_cpu_hog_is_killed_by_the_cpu_limit_before_the_wall_clock(sandbox: Sandbox) -> None:
    result = run_python(sandbox, "while True:\n    pass\n")
    assert not result.passed and not result.timed_out
    assert result.seconds < TIGHT.wall_seconds


def test_sleeper_is_killed_by_the_wall_clock(sandbox: Sandbox) -> None:
    result = run_python(sandbox, "import time\ntime.sleep(60)", Limits(wall_seconds=1))
    assert result.timed_out and result.exit_code is None
    assert result.seconds < 5


def test_orphans_are_reaped(sandbox: Sandbox) -> None:
    marker = "codebooga-orphan-marker"
    code = (f"import subprocess\nsubprocess.Popen(['sh', '-c', 'exec -a {marker} sleep 300'], start_new_session=True)\n"
            "print('parent done')")  # fmt: skip
    result = run_python(sandbox, code)
    assert result.stdout == "parent done\n"
    assert not [stat for stat in live_processes_of(sandbox_uid(sandbox)) if "sleep" in stat]


def test_output_and_files_are_size_capped(sandbox: Sandbox) -> None:
    result = run_python(sandbox, "import sys\nwhile True:\n    sys.stdout.write('x' * 10000)\n")
    assert not result.passed
    assert len(result.stdout) == TIGHT.output_chars
    disk = run_python(sandbox, "open('big', 'wb').write(b'x' * (1 << 20))")
    assert "File too large" in disk.stderr


def test_no_temporary_directories_are_left(sandbox: Sandbox) -> None:
    before = set(Path(tempfile.gettempdir()).glob("codebooga-eval-*"))
    run_python(sandbox, "open('left.txt', 'w').write('x')\nimport os\nos.mkdir('sub')")
    run_python(sandbox, "import time\ntime.sleep(60)", Limits(wall_seconds=0.5))
    assert set(Path(tempfile.gettempdir()).glob("codebooga-eval-*")) == before


def test_without_bubblewrap_it_refuses_unless_unsafe(monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    from codebooga.server.eval import sandbox as module

    real_which = shutil.which
    monkeypatch.setattr(module.shutil, "which", lambda name: None if name == "bwrap" else real_which(name))
    with pytest.raises(module.SandboxUnavailable, match="--unsafe-no-sandbox"):
        Sandbox.open()
    unsafe = Sandbox.open(unsafe=True)
    assert not unsafe.confined
    assert run_python(unsafe, "print(6 * 7)").stdout == "42\n"


def test_a_sandbox_that_fails_to_start_for_a_moment_is_retried_not_scored(monkeypatch: pytest.MonkeyPatch) -> None:
    """bubblewrap's EAGAIN at start is the machine's hiccup: retried, and if it persists an error, never a
    failed answer."""
    hiccup = RunResult(1, False, "", "bwrap: Can't fork for pid 1: Resource temporarily unavailable\n", 0.01)
    fine = RunResult(0, False, "ok", "", 0.01)
    outcomes = [hiccup, hiccup, fine]
    monkeypatch.setattr(Sandbox, "_run_in_fresh_directory", lambda self, files, argv, limits: outcomes.pop(0))
    monkeypatch.setattr(time, "sleep", lambda seconds: None)
    sandbox = Sandbox(bwrap="/usr/bin/bwrap", drop_to=None)
    assert sandbox.run({}, ["true"], Limits()) == fine
    monkeypatch.setattr(Sandbox, "_run_in_fresh_directory", lambda self, files, argv, limits: hiccup)
    with pytest.raises(SandboxUnavailable, match="could not start a sandbox 5 times"):
        sandbox.run({}, ["true"], Limits())
