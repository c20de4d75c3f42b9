"""The run's report: JSON for tools, Markdown for people, a PNG of pass@1 per endpoint and language."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from itertools import combinations
from pathlib import Path
from typing import Any

from codebooga.server.eval.human_rankings import HumanRankings
from codebooga.server.eval.results import SampleResult
from codebooga.server.eval.stats import confidence_95, mean_pass_at_k, paired, rank_points, solved

K_VALUES = (1, 10, 100)


def counts_by_task(results: list[SampleResult], endpoint: str) -> dict[str, tuple[int, int]]:
    """(samples, passed) per problem for one endpoint."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for result in results:
        if result.endpoint == endpoint:
            counts[result.task_id][0] += 1
            counts[result.task_id][1] += int(result.passed)
    return {task: (n, c) for task, (n, c) in counts.items()}


def _summary(counts: dict[str, tuple[int, int]]) -> dict[str, Any]:
    values = list(counts.values())
    smallest_n = min((n for n, _ in values), default=0)
    return {
        "problems": len(values),
        "samples": sum(n for n, _ in values),
        "passed_samples": sum(c for _, c in values),
        "solved_problems": sum(1 for n, c in values if solved(n, c)),
        "pass_at_k": {f"pass@{k}": mean_pass_at_k(values, k) for k in K_VALUES if k <= smallest_n},
        "pass_at_1_ci95": confidence_95(values),
    }


def build_report(
    results: list[SampleResult], endpoints: list[str], run: dict[str, Any], human: Sequence[HumanRankings] = ()
) -> dict[str, Any]:
    languages = sorted({result.language for result in results})
    language_of = {result.task_id: result.language for result in results}
    per_endpoint = {label: counts_by_task(results, label) for label in endpoints}
    scores = defaultdict(dict)
    for label, counts in per_endpoint.items():
        for task, (n, c) in counts.items():
            scores[task][label] = c / n
    points = rank_points(scores) if len(endpoints) > 1 else {}
    return {
        "run": run,
        "endpoints": [
            {
                "label": label,
                "total": _summary(counts),
                "by_language": {
                    language: _summary({t: v for t, v in counts.items() if language_of[t] == language})
                    for language in languages
                },
                "rank_points": points.get(label),
            }
            for label, counts in per_endpoint.items()
        ],
        "paired": [
            vars(paired(a, b, per_endpoint[a], per_endpoint[b])) for a, b in combinations(endpoints, 2)
        ],
        "human_rankings": [vars(rankings) for rankings in human],
    }


def markdown(report: dict[str, Any]) -> str:
    run = report["run"]
    lines = [
        "# codebooga eval",
        "",
        f"Suites: {', '.join(run['suites'])}; {run['settings']}; {run['samples']} sample(s) per problem, "
        f"seed {run['seed']}; sandbox: {run['sandbox']}.",
        "",
        "| endpoint | language | problems | passed / samples | pass@1 | ± 95% | other pass@k | rank points |",
        "|---|---|---:|---:|---:|---:|---|---:|",
    ]
    for entry in report["endpoints"]:
        rows = [*entry["by_language"].items(), ("all", entry["total"])]
        for language, summary in rows:
            other = ", ".join(f"{k} {v:.3f}" for k, v in summary["pass_at_k"].items() if k != "pass@1")
            points = entry["rank_points"] if language == "all" and entry["rank_points"] is not None else ""
            lines.append(
                f"| {entry['label']} | {language} | {summary['problems']} | "
                f"{summary['passed_samples']} / {summary['samples']} | {summary['pass_at_k'].get('pass@1', 0):.3f} | "
                f"{summary['pass_at_1_ci95']:.3f} | {other} | {points} |"
            )
    if report["paired"]:
        lines += ["", "## Paired comparison", "",
                  "| A | B | common problems | solved only by A | solved only by B | McNemar exact p |",
                  "|---|---|---:|---|---|---:|"]  # fmt: skip
        for pair in report["paired"]:
            lines.append(
                f"| {pair['a']} | {pair['b']} | {pair['problems']} | {_tasks(pair['only_a'])} | "
                f"{_tasks(pair['only_b'])} | {pair['p_value']:.3g} |"
            )
    if report.get("human_rankings"):
        lines += ["", "## Human rankings (playground compare mode, 4/2/1/0 points per prompt)", "",
                  "| file | side | endpoint | points | prompts won | prompts ranked |", "|---|---|---|---:|---:|---:|"]  # fmt: skip
        for rankings in report["human_rankings"]:
            for side, endpoint in rankings["endpoints"].items():
                lines.append(
                    f"| {rankings['source']} | {side} | {endpoint} | {rankings['points'][side]} | "
                    f"{rankings['wins'][side]} | {rankings['prompts']} |"
                )
    return "\n".join(lines) + "\n"


def _tasks(tasks: list[str]) -> str:
    return f"{len(tasks)}: " + ", ".join(tasks) if tasks else "0"


def write_reports(report: dict[str, Any], folder: Path) -> list[Path]:
    """report.json, report.md and, when matplotlib is installed, report.png; the paths written."""
    written = [folder / "report.json", folder / "report.md"]
    written[0].write_text(json.dumps(report, indent=2) + "\n")
    written[1].write_text(markdown(report))
    plot = folder / "report.png"
    if _plot(report, plot):
        written.append(plot)
    return written


def _plot(report: dict[str, Any], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    languages = sorted({language for entry in report["endpoints"] for language in entry["by_language"]})
    figure, axes = plt.subplots(figsize=(2 + 1.6 * len(report["endpoints"]) * max(1, len(languages)), 4))
    width = 0.8 / max(1, len(languages))
    for index, language in enumerate(languages):
        summaries = [entry["by_language"].get(language) for entry in report["endpoints"]]
        values = [s["pass_at_k"].get("pass@1", 0) if s else 0 for s in summaries]
        errors = [s["pass_at_1_ci95"] if s else 0 for s in summaries]
        positions = [i + index * width for i in range(len(summaries))]
        axes.bar(positions, values, width, yerr=errors, capsize=4, label=language)
    axes.set_xticks([i + width * (len(languages) - 1) / 2 for i in range(len(report["endpoints"]))])
    axes.set_xticklabels([entry["label"] for entry in report["endpoints"]], rotation=15, ha="right")
    axes.set_ylabel("pass@1 (95% interval)")
    axes.set_ylim(0, 1)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return True
