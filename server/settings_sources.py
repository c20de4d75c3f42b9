"""Where `codebooga serve` settings come from, derived from the one declaration in `ServeSettings`.

Precedence, highest first: the command line, the `CODEBOOGA_*` environment variables, a YAML config file
(`--config FILE`, keys as the settings' field names), the declared defaults. Every value from every source goes
through the same parser, so a bad one is reported the same way, as one line naming where it came from
(`--port`, `CODEBOOGA_PORT`, `serve.yaml: port`), never as a traceback.

The README's option table is rendered here too (`readme_table`), and a test compares it with the README.
"""

from __future__ import annotations

import argparse
import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from codebooga.merge.shared.cli_error import CliError
from codebooga.server.options import BadValue, DeclaredOption, declared_options
from codebooga.server.settings import ServeSettings

SERVE_OPTIONS: tuple[DeclaredOption, ...] = tuple(declared_options(ServeSettings))


def add_option_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per declared option, plus `--config`. Flags keep no defaults of their own (None = not given),
    so `resolve_settings` can tell a flag from the environment, the file and the default."""
    for item in SERVE_OPTIONS:
        parser.add_argument(
            item.flag,
            dest=item.name,
            default=None,
            metavar=item.spec.metavar,
            action="append" if item.spec.repeatable else "store",
            help=_help_line(item),
        )
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="YAML file of settings, keys as the environment variables' names without CODEBOOGA_ in lower case "
        "(e.g. ctx_size: 2048); the command line wins over the environment, the environment over the file",
    )


def resolve_settings(
    cli: Mapping[str, object], environ: Mapping[str, str], config_file: Path | None
) -> ServeSettings:
    """The settings from the command line (argparse's values by field name; None = not given), the environment
    and the config file, in that order of precedence, over the declared defaults."""
    config = read_config_file(config_file) if config_file is not None else {}
    values: dict[str, Any] = {}
    for item in SERVE_OPTIONS:
        if cli.get(item.name) is not None:
            where, raw = item.flag, cli[item.name]
        elif environ.get(item.env, "").strip():
            where, raw = item.env, environ[item.env]
        elif item.config_key in config:
            where, raw = f"{config_file}: {item.config_key}", config[item.config_key]
        else:
            continue
        try:
            values[item.name] = item.spec.parse(raw)
        except BadValue as error:
            raise CliError(f"{where} {error}") from None
    return ServeSettings(**values)


def read_config_file(path: Path) -> dict[str, object]:
    """A YAML mapping of option keys to values; an unknown key is an error (a typo would otherwise be ignored)."""
    import yaml  # only when a file is given: building the `codebooga` parser stays free of it

    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise CliError(f"--config {path}: cannot read it ({error.strerror or error})") from None
    except UnicodeDecodeError:
        raise CliError(f"--config {path}: not a UTF-8 text file") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise CliError(f"--config {path}: not valid YAML{where}") from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise CliError(f"--config {path}: must be a mapping of settings, like `port: 8000`")
    known = [item.config_key for item in SERVE_OPTIONS]
    for key in document:
        if key not in known:
            raise CliError(f"--config {path}: unknown setting {key!r}{_suggestion(str(key), known)}")
    return document


def _suggestion(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key.replace("-", "_").lower(), known, n=1)
    if close:
        return f"; did you mean {close[0]!r}?"
    return f"; known settings: {', '.join(known)}"


def _help_line(item: DeclaredOption) -> str:
    """`--help` text: the meaning, the default and the environment variable, in plain text."""
    listed = ", comma-separated" if item.spec.repeatable else ""
    line = f"{item.spec.help} (default: {item.shown_default}) [{item.env}{listed}]"
    return line.replace("`", "").replace("%", "%%")


def readme_table() -> str:
    """The README's `codebooga serve` option table (Markdown), one row per declared option."""
    rows = ["| option | default | meaning |", "| --- | --- | --- |"]
    for item in SERVE_OPTIONS:
        flag = f"{item.flag} {item.spec.metavar}" if item.spec.metavar else item.flag
        repeat = " (repeatable)" if item.spec.repeatable else ""
        listed = ", comma-separated" if item.spec.repeatable else ""
        cells = (f"`{flag}`{repeat} [`{item.env}`{listed}]", item.shown_default, item.spec.help)
        rows.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(rows)
