"""Turn a problem and a completion into a program, run it in the sandbox, and say whether it passed."""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from dataclasses import dataclass

from codebooga.merge.shared.cli_error import CliError
from codebooga.server.eval.sandbox import SANDBOX_PATH, Limits, Sandbox
from codebooga.server.eval.suites import Problem

PROGRAMS = {
    "python": ("program.py", ["python3", "-I", "program.py"]),
    # One V8 worker thread instead of one per core: a test is single-threaded, and node needs 3 tasks of the
    # sandbox's process budget instead of 6-8 (it hangs, not fails, when it cannot start them).
    "javascript": ("program.js", ["node", "--v8-pool-size=1", "program.js"]),
}
INSTALL = {"python": "apt-get install python3", "javascript": "apt-get install nodejs"}


@dataclass(frozen=True)
class Verdict:
    passed: bool
    outcome: str  # "passed", "failed", "timed out", with the tail of the error for "failed"


def check_interpreters(languages: Iterable[str]) -> None:
    """Refuse up front when a language's interpreter is missing from the sandbox's view: otherwise every problem
    of that language would quietly count as failed."""
    for language in sorted(set(languages)):
        command = PROGRAMS[language][1][0]
        if shutil.which(command, path=SANDBOX_PATH) is None:
            raise CliError(f"{language} problems need `{command}` in /usr/bin or /usr/local/bin ({INSTALL[language]})")


def program_text(problem: Problem, completion: str) -> str:
    """HumanEval's assembly: prompt + completion, the tests, then the call of `check` on the entry point."""
    return f"{problem.prompt}{completion}\n\n{problem.test}\n\ncheck({problem.entry_point})\n"


def execute(sandbox: Sandbox, problem: Problem, completion: str, limits: Limits) -> Verdict:
    name, argv = PROGRAMS[problem.language]
    result = sandbox.run({name: program_text(problem, completion)}, argv, limits)
    if result.passed:
        return Verdict(True, "passed")
    if result.timed_out:
        return Verdict(False, "timed out")
    return Verdict(False, f"failed: {_error_line(result.stderr) or f'exit {result.exit_code}'}")


def _error_line(stderr: str) -> str:
    """The line that names the error: Python ends its traceback with it, node prints its version after it."""
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    named = [line for line in lines if "Error" in line or "Exception" in line]
    return (named or lines or [""])[-1][:200]
