"""`codebooga eval` end to end, small: Python and JavaScript problems, against the embedded model both as an
endpoint (the suite's shared server) and served by the command itself. The tiny model's score is not the point;
the report's structure and its agreement with the per-sample results are."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from server_process import RunningServer

pytestmark = pytest.mark.slow
SMALL = ("--problems", "0,23", "--max-tokens", "40", "--parallel", "2")


def results(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def test_two_endpoints_python_and_javascript(
    server: RunningServer, run_cli: Callable[..., tuple[int, str, str]], tmp_path: Path
) -> None:
    code, out, err = run_cli("eval", "--endpoint", server.api_url, "--serve", "embedded", "--serve-arg=--threads=2",
                             *SMALL, "--out", tmp_path)  # fmt: skip
    assert code == 0, err
    report = json.loads((tmp_path / "report.json").read_text())
    lines = results(tmp_path)
    assert {line["task_id"] for line in lines} == {"HumanEval/0", "HumanEval/23", "HumanEval-JS/0", "HumanEval-JS/23"}
    passed = Counter(line["endpoint"] for line in lines if line["passed"])
    assert len(report["endpoints"]) == 2
    for entry in report["endpoints"]:
        assert entry["total"]["problems"] == entry["total"]["samples"] == 4
        assert entry["total"]["passed_samples"] == passed[entry["label"]]
        assert {language: s["problems"] for language, s in entry["by_language"].items()} == {"python": 2, "javascript": 2}
        assert sum(s["passed_samples"] for s in entry["by_language"].values()) == passed[entry["label"]]
        assert entry["total"]["pass_at_k"]["pass@1"] == pytest.approx(passed[entry["label"]] / 4)
        assert isinstance(entry["rank_points"], int)
    (pair,) = report["paired"]
    assert pair["problems"] == 4 and 0 <= pair["p_value"] <= 1
    assert "| endpoint | language |" in out and "## Paired comparison" in out
    assert (tmp_path / "report.png").read_bytes().startswith(b"\x89PNG")

    code, _, err = run_cli("eval", "--endpoint", server.api_url, *SMALL, "--out", tmp_path)
    assert code == 0, err
    assert len(results(tmp_path)) == len(lines), "a rerun resumes: nothing already answered is asked again"


def test_chat_mode(server: RunningServer, run_cli: Callable[..., tuple[int, str, str]], tmp_path: Path) -> None:
    code, _, err = run_cli("eval", "--endpoint", server.api_url, "--mode", "chat", "--suite", "humaneval",
                           "--problems", "23", "--max-tokens", "40", "--out", tmp_path)  # fmt: skip
    assert code == 0, err
    (line,) = results(tmp_path)
    assert line["settings"].startswith("mode=chat")
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["endpoints"][0]["total"]["passed_samples"] == int(line["passed"])


def test_refuses_to_run_unconfined_without_being_told(
    monkeypatch: pytest.MonkeyPatch, run_cli: Callable[..., tuple[int, str, str]], tmp_path: Path
) -> None:
    from codebooga.server.eval import sandbox

    real_which = shutil.which
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None if name == "bwrap" else real_which(name))
    code, _, err = run_cli("eval", "--endpoint", "http://127.0.0.1:9/v1", "--out", tmp_path)
    assert code == 2 and "--unsafe-no-sandbox" in err
