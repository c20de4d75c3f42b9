"""The statistics and the answer handling, against values worked out by hand."""

from __future__ import annotations

import math

import pytest

from codebooga.server.eval.client import completion_from_chat, extract_code
from codebooga.server.eval.execution import execute
from codebooga.server.eval.sandbox import Limits, Sandbox
from codebooga.server.eval.stats import mcnemar_exact, pass_at_k, paired, rank_points
from codebooga.server.eval.suites import humaneval_js_problems, humaneval_problems


def test_pass_at_k_is_the_unbiased_estimator() -> None:
    assert pass_at_k(10, 0, 1) == 0.0
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert pass_at_k(10, 3, 5) == pytest.approx(1 - math.comb(7, 5) / math.comb(10, 5))
    assert pass_at_k(5, 1, 5) == 1.0


def test_mcnemar_exact_two_sided() -> None:
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(5, 0) == pytest.approx(2 / 32)
    assert mcnemar_exact(1, 9) == pytest.approx(2 * 11 / 1024)
    assert mcnemar_exact(3, 3) == 1.0


def test_paired_comparison_lists_the_flipped_problems() -> None:
    a = {"t1": (1, 1), "t2": (1, 0), "t3": (1, 1), "only-in-a": (1, 1)}
    b = {"t1": (1, 1), "t2": (1, 1), "t3": (1, 0)}
    result = paired("A", "B", a, b)
    assert (result.problems, result.only_a, result.only_b, result.p_value) == (3, ["t3"], ["t2"], 1.0)


def test_rank_points_follow_the_model_card_with_shared_places() -> None:
    scores = {
        "t1": {"A": 1.0, "B": 0.5, "C": 0.2, "D": 0.1},  # 4, 2, 1, 0
        "t2": {"A": 1.0, "B": 1.0, "C": 0.5, "D": 0.0},  # shared first: 4, 4; C is third: 1; D failed: 0
        "t3": {"A": 0.0, "B": 0.0, "C": 0.0, "D": 0.0},  # nobody solved it: no points
    }
    assert rank_points(scores) == {"A": 8, "B": 6, "C": 2, "D": 0}


def test_chat_answers_become_runnable_programs(sandbox: Sandbox) -> None:
    python = humaneval_problems()[23]  # strlen
    answer = "Sure!\n```python\ndef strlen(string: str) -> int:\n    return len(string)\n```\nDone."
    assert execute(sandbox, python, completion_from_chat(python, answer), Limits()).passed
    javascript = next(p for p in humaneval_js_problems() if p.entry_point == "strlen")
    answer = "```javascript\nfunction strlen(string) {\n  return string.length;\n}\n```"
    assert execute(sandbox, javascript, completion_from_chat(javascript, answer), Limits()).passed
    answer = "```js\nconst strlen = (string) => string.length;\n```"
    assert execute(sandbox, javascript, completion_from_chat(javascript, answer), Limits()).passed


def test_code_extraction_prefers_the_block_defining_the_entry_point() -> None:
    problem = humaneval_problems()[0]
    answer = "```\npip install x\n```\n```python\ndef has_close_elements(a, b):\n    return True\n```"
    assert extract_code(problem, answer).startswith("def has_close_elements")
    assert extract_code(problem, "    return True\n") == "    return True\n"


def test_a_missing_interpreter_is_refused_up_front(monkeypatch: pytest.MonkeyPatch) -> None:
    from codebooga.merge.shared.cli_error import CliError
    from codebooga.server.eval import execution

    check_interpreters = execution.check_interpreters
    check_interpreters(["python", "javascript"])
    monkeypatch.setattr(execution.shutil, "which", lambda name, path=None: None if name == "node" else "/usr/bin/" + name)
    with pytest.raises(CliError, match="nodejs"):
        check_interpreters(["python", "javascript"])


def test_results_are_reused_only_under_the_same_settings(tmp_path) -> None:
    from codebooga.merge.shared.cli_error import CliError
    from codebooga.server.eval.results import ResultStore, SampleResult

    path = tmp_path / "results.jsonl"
    greedy = SampleResult("e", "HumanEval/0", "python", 0, 0, "mode=completion temperature=0", "x", True, "passed", 1.0)
    ResultStore(path).add(greedy)
    reopened = ResultStore(path)
    assert reopened.has(greedy.key)
    assert not reopened.has(("e", "HumanEval/0", 0, "mode=chat temperature=0"))
    assert reopened.select(greedy.settings, ["e"], {"HumanEval/0"}) == [greedy]
    path.write_text(path.read_text() + "not json\n")
    with pytest.raises(CliError, match="line 2"):
        ResultStore(path)
