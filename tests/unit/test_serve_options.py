"""Serve options are declared once (`ServeSettings`); the command line, the environment, the config file and the
README table all come from that declaration, with precedence CLI > environment > file > default."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from codebooga.server.cli import build_parser
from codebooga.server.settings import ServeSettings
from codebooga.server.settings_sources import readme_table, resolve_settings

README = Path(__file__).resolve().parents[2] / "README.md"
TABLE = re.compile(r"<!-- serve-options: start -->\n(.*?)\n<!-- serve-options: end -->", re.DOTALL)


def settings(*argv: str, environ: dict[str, str] | None = None) -> ServeSettings:
    """What `codebooga serve ARGV...` resolves to in the given environment."""
    args = build_parser().parse_args(["serve", *argv])
    return resolve_settings(vars(args), environ or {}, args.config)


def test_cli_beats_environment_beats_file_beats_default(tmp_path: Path) -> None:
    config = tmp_path / "serve.yaml"
    config.write_text(
        "ctx_size: 1024\nparallel: 2\nport: 9001\npreset: greedy\napi_keys: [file-key]\nsse_ping: 2.5\n"
        "gpu_split: [20, 24]\n"
    )
    environ = {"CODEBOOGA_CTX_SIZE": "512", "CODEBOOGA_PARALLEL": "3", "CODEBOOGA_API_KEYS": "env-a, env-b"}
    resolved = settings("--ctx-size", "256", "--config", str(config), environ=environ)
    assert resolved.ctx_size == 256  # CLI over environment and file
    assert resolved.parallel == 3  # environment over file
    assert resolved.api_keys == ("env-a", "env-b")  # environment over file
    assert (resolved.port, resolved.preset, resolved.sse_ping) == (9001, "greedy", 2.5)  # file over default
    assert resolved.gpu_split == (20.0, 24.0)
    defaults = ServeSettings()
    assert (resolved.batch_size, resolved.max_queue, resolved.host) == (
        defaults.batch_size, defaults.max_queue, defaults.host
    )  # fmt: skip


def test_nothing_given_is_the_declared_defaults() -> None:
    assert settings() == ServeSettings()


def test_repeated_api_key_flags_beat_the_environment() -> None:
    resolved = settings("--api-key", "a,with-comma", "--api-key", "b", environ={"CODEBOOGA_API_KEYS": "env"})
    assert resolved.api_keys == ("a,with-comma", "b")


def test_an_empty_environment_variable_counts_as_unset(tmp_path: Path) -> None:
    config = tmp_path / "serve.yaml"
    config.write_text("port: 9002\n")
    assert settings("--config", str(config), environ={"CODEBOOGA_PORT": ""}).port == 9002


@pytest.mark.parametrize(
    ("argv", "environ", "config", "message"),
    [
        (("--port", "eighty"), {}, None, "--port must be a whole number, got 'eighty'"),
        ((), {"CODEBOOGA_PARALLEL": "0"}, None, "CODEBOOGA_PARALLEL must be at least 1, got 0"),
        ((), {}, "queue_timeout: 0\n", "serve.yaml: queue_timeout must be positive, got 0"),
        ((), {}, "log_level: loud\n", "serve.yaml: log_level must be one of debug, info, warning, error, got 'loud'"),
        ((), {}, "ctx-size: 2048\n", "unknown setting 'ctx-size'; did you mean 'ctx_size'?"),
        ((), {}, "warmth: 3\n", "unknown setting 'warmth'; known settings: model, model_id, host"),
        ((), {}, "- port\n", "must be a mapping of settings"),
        ((), {}, "port: [1\n", "not valid YAML at line 2"),
    ],
)
def test_a_bad_value_anywhere_is_one_line_and_exit_2(
    run_cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, argv, environ, config, message
) -> None:
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    if config is not None:
        (tmp_path / "serve.yaml").write_text(config)
        argv = (*argv, "--config", tmp_path / "serve.yaml")
    code, out, err = run_cli("serve", *argv)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("codebooga: error: ") and message in err, err


def test_a_missing_config_file_is_one_line(run_cli, tmp_path: Path) -> None:
    code, _, err = run_cli("serve", "--config", tmp_path / "absent.yaml")
    assert code == 2 and err.count("\n") == 1 and "absent.yaml: cannot read it" in err


def test_the_readme_table_is_the_declaration() -> None:
    found = TABLE.search(README.read_text(encoding="utf-8"))
    assert found, "README.md lacks the <!-- serve-options: start/end --> markers around the option table"
    assert found.group(1) == readme_table(), (
        "README.md's option table differs from ServeSettings; replace it with:\n" + readme_table()
    )
