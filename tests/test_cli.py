"""The `codebooga` command: bad input is one readable line and a non-zero exit, never a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from server_process import REPO_ROOT, free_port


def codebooga(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "codebooga.server", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )


def test_help_lists_serve() -> None:
    result = codebooga("--help")
    assert result.returncode == 0 and "serve" in result.stdout


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("serve", "--model", "/no/such/model.gguf"), "no such file"),
        (("serve", "--preset", "spicy"), "unknown preset 'spicy'"),
        (("serve", "--chat-template", "/no/template.jinja"), "not a readable file"),
        (("serve", "--parallel", "0"), "--parallel must be at least 1"),
        (("serve", "--max-connections", "0"), "--max-connections must be at least 1"),
        (("serve", "--body-timeout", "0"), "--body-timeout must be positive"),
    ],
)
def test_serve_rejects_bad_options_in_one_line(args: tuple[str, ...], words: str) -> None:
    result = codebooga(*args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_environment_variables_feed_options() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "codebooga.server", "serve"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
        env={**__import__("os").environ, "CODEBOOGA_MODEL": "/env/model.gguf"},
    )
    assert result.returncode == 2 and "/env/model.gguf" in result.stderr


def test_a_file_that_is_not_a_gguf_fails_with_one_error_line(tmp_path) -> None:
    bogus = tmp_path / "broken.gguf"
    bogus.write_bytes(b"not a model")
    result = codebooga("serve", "--model", str(bogus), "--port", str(free_port()))
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if "ERROR" in line and "codebooga" in line]
    assert len(errors) == 1 and "broken.gguf" in errors[0]
    assert "Traceback" not in result.stderr
