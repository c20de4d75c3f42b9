"""The eval tests need bubblewrap. On a fresh CI machine (root, Debian/Ubuntu) it is installed here; anywhere
else its absence fails the sandbox tests loudly instead of letting them pass unconfined."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from codebooga.server.eval.sandbox import Sandbox
from llama_checkpoints import make_checkpoint, make_recipe, tokenizer_model  # noqa: F401  (fixtures, by name)


def _install_bubblewrap() -> str:
    """Install bubblewrap with apt-get when we can; the message says what happened when we cannot."""
    if shutil.which("bwrap"):
        return "present"
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return "bubblewrap is missing and this is not a root apt-get machine: `apt-get install bubblewrap`"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", "bubblewrap"]
    done = subprocess.run(install, env=env, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, timeout=300)
        done = subprocess.run(install, env=env, capture_output=True, text=True, timeout=300)
    return "installed" if done.returncode == 0 else f"apt-get install bubblewrap failed: {done.stderr[-500:]}"


@pytest.fixture(scope="session", autouse=True)
def bubblewrap() -> str:
    """Every eval test, the CLI ones included, runs with bubblewrap installed when this machine allows it."""
    return _install_bubblewrap()


@pytest.fixture(scope="session")
def sandbox(bubblewrap: str) -> Sandbox:
    """The real bubblewrap sandbox. Fails (never skips) when it cannot be had: a passing sandbox test must mean
    the code really ran confined."""
    outcome = bubblewrap
    try:
        return Sandbox.open()
    except Exception as error:
        pytest.fail(f"no sandbox ({outcome}): {error}")
