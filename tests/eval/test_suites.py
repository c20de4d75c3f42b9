"""The harness's correctness check: every shipped suite's canonical solutions pass through the same assembly and
sandbox the models' answers go through, and a `return None` stub passes nothing."""

from __future__ import annotations

import gzip
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from codebooga.merge.shared.cli_error import CliError
from codebooga.server.eval.execution import execute
from codebooga.server.eval.js_translate import translate_all
from codebooga.server.eval.sandbox import Limits, Sandbox
from codebooga.server.eval.suites import Problem, humaneval_js_problems, humaneval_problems, load_suite, select

STUBS = {"python": "    return None\n", "javascript": "  return null;\n}\n"}


def failures(sandbox: Sandbox, problems: list[Problem], completion_of) -> tuple[list[str], list[str]]:
    """(passed task ids, failed task ids with their outcome)."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        verdicts = list(pool.map(lambda p: execute(sandbox, p, completion_of(p), Limits()), problems))
    passed = [p.task_id for p, v in zip(problems, verdicts) if v.passed]
    failed = [f"{p.task_id}: {v.outcome}" for p, v in zip(problems, verdicts) if not v.passed]
    return passed, failed


def test_shipped_suites_have_the_expected_sizes() -> None:
    assert len(humaneval_problems()) == 164
    javascript = humaneval_js_problems()
    assert 140 <= len(javascript) <= 150
    assert all(p.language == "javascript" and p.task_id.startswith("HumanEval-JS/") for p in javascript)


def test_shipped_javascript_suite_is_what_the_generator_makes() -> None:
    """The file in the package is reproducible: regenerating it from HumanEval changes nothing."""
    regenerated = [json.dumps(record) for record in translate_all(humaneval_problems())]
    shipped = Path(__file__).parents[2] / "server" / "eval" / "data" / "humaneval-js.jsonl.gz"
    assert gzip.decompress(shipped.read_bytes()).decode().splitlines() == regenerated


@pytest.mark.parametrize("suite", ["humaneval", "humaneval-js"])
def test_canonical_solutions_all_pass(sandbox: Sandbox, suite: str) -> None:
    problems = load_suite(suite)
    passed, failed = failures(sandbox, problems, lambda p: p.canonical_solution)
    assert failed == []
    assert len(passed) == len(problems)


@pytest.mark.parametrize("suite", ["humaneval", "humaneval-js"])
def test_return_none_stub_scores_zero(sandbox: Sandbox, suite: str) -> None:
    passed, _ = failures(sandbox, load_suite(suite), lambda p: STUBS[p.language])
    assert passed == []


def test_a_users_suite_loads_by_path_plain_or_gzipped(tmp_path: Path, sandbox: Sandbox) -> None:
    record = {"task_id": "Mine/0", "prompt": "def double(x):\n", "test": "def check(f):\n    assert f(2) == 4\n",
              "entry_point": "double", "canonical_solution": "    return 2 * x\n"}  # fmt: skip
    plain = tmp_path / "mine.jsonl"
    plain.write_text(json.dumps(record) + "\n")
    zipped = tmp_path / "mine.jsonl.gz"
    zipped.write_bytes(gzip.compress(plain.read_bytes()))
    for path in (plain, zipped):
        (problem,) = load_suite(str(path))
        assert execute(sandbox, problem, problem.canonical_solution, Limits()).passed
    plain.write_text('{"task_id": "x"}\n')
    with pytest.raises(CliError, match="line 1: not a HumanEval problem"):
        load_suite(str(plain))


def test_selecting_problems_by_number_or_id_and_limit() -> None:
    problems = humaneval_problems()
    assert [p.task_id for p in select(problems, None, ["3", "HumanEval/7"])] == ["HumanEval/3", "HumanEval/7"]
    assert [p.task_id for p in select(problems, 2, None)] == ["HumanEval/0", "HumanEval/1"]
