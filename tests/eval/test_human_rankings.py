"""The playground's compare-mode export (`codebooga-rankings/1`) read by `codebooga eval --human-rankings`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from codebooga.server.eval.human_rankings import RankingsError, load_rankings
from codebooga.server.eval.report import build_report, markdown

EXPORT = {
    "format": "codebooga-rankings/1",
    "endpoints": {"A": "http://127.0.0.1:8000", "B": "http://127.0.0.1:8001"},
    "rankings": [
        {"prompt": "reverse a string", "answers": {"A": "...", "B": "..."}, "points": {"A": 4, "B": 1}},
        {"prompt": "parse a date", "answers": {"A": "...", "B": "..."}, "points": {"A": 0, "B": 2}},
        {"prompt": "sum a list", "answers": {"A": "...", "B": "..."}, "points": {"A": 2, "B": 2}},
    ],
    "totals": {"A": 6, "B": 5},
}


def write(tmp_path: Path, document: object) -> Path:
    path = tmp_path / "rankings.json"
    path.write_text(json.dumps(document))
    return path


def test_an_export_is_summed_and_reported_next_to_the_scores(tmp_path: Path) -> None:
    rankings = load_rankings(write(tmp_path, EXPORT))
    assert (rankings.prompts, rankings.points, rankings.wins) == (3, {"A": 6, "B": 5}, {"A": 1, "B": 1})
    report = build_report([], [], {"suites": [], "settings": {}, "samples": 1, "seed": 0, "sandbox": "x"}, [rankings])
    assert report["human_rankings"][0]["points"] == {"A": 6, "B": 5}
    text = markdown(report)
    assert "## Human rankings" in text and "| A | http://127.0.0.1:8000 | 6 | 1 | 3 |" in text


@pytest.mark.parametrize(
    ("document", "words"),
    [
        ({"format": "other"}, "not a codebooga-rankings/1 export"),
        ({**EXPORT, "rankings": [{"points": {"A": 3, "B": 0}}]}, "one of (0, 1, 2, 4)"),
        ({**EXPORT, "totals": {"A": 1, "B": 5}}, "do not add up"),
    ],
)
def test_a_file_that_is_not_a_valid_export_is_refused_in_one_line(tmp_path: Path, document: dict, words: str) -> None:
    with pytest.raises(RankingsError, match=words.replace("(", r"\(").replace(")", r"\)")):
        load_rankings(write(tmp_path, document))


def test_the_cli_refuses_a_bad_rankings_file_before_any_work(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text("{not json")
    result = subprocess.run(
        [sys.executable, "-m", "codebooga.server", "eval", "--endpoint", "http://127.0.0.1:9", "--human-rankings", str(path)],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert str(path) in result.stderr and len(result.stderr.strip().splitlines()) == 1
