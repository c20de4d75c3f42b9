"""The numbers a report gives: unbiased pass@k, a confidence interval, the paired comparison (flipped problems and
McNemar's exact test) and the model card's 4/2/1/0 ranking."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

RANK_POINTS = (4, 2, 1)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Chen et al. (2021): the chance that at least one of k samples drawn from n, c of them correct, passes."""
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def mean_pass_at_k(counts: Sequence[tuple[int, int]], k: int) -> float:
    """pass@k over problems, from (samples, passed) per problem."""
    return sum(pass_at_k(n, c, k) for n, c in counts) / len(counts) if counts else 0.0


def confidence_95(counts: Sequence[tuple[int, int]]) -> float:
    """Half-width of the 95% interval of pass@1 from the spread over problems: how much the score would move on
    another draw of equally hard problems. The problems, not the samples, dominate the uncertainty."""
    if len(counts) < 2:
        return 0.0
    scores = [c / n for n, c in counts]
    mean = sum(scores) / len(scores)
    variance = sum((score - mean) ** 2 for score in scores) / (len(scores) - 1)
    return 1.96 * math.sqrt(variance / len(scores))


@dataclass(frozen=True)
class Paired:
    """Two endpoints on the problems both answered: which flipped, and how likely such a split is by chance."""

    a: str
    b: str
    problems: int
    only_a: list[str]
    only_b: list[str]
    p_value: float


def solved(n: int, c: int) -> bool:
    """A problem counts as solved by an endpoint when at least half its samples pass."""
    return 2 * c >= n and c > 0


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar test: a binomial test of the discordant pairs against a fair coin."""
    n = only_a + only_b
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(only_a, only_b) + 1)) / 2**n
    return min(1.0, 2 * tail)


def paired(a: str, b: str, counts_a: Mapping[str, tuple[int, int]], counts_b: Mapping[str, tuple[int, int]]) -> Paired:
    common = sorted(set(counts_a) & set(counts_b))
    only_a = [task for task in common if solved(*counts_a[task]) and not solved(*counts_b[task])]
    only_b = [task for task in common if solved(*counts_b[task]) and not solved(*counts_a[task])]
    return Paired(a, b, len(common), only_a, only_b, mcnemar_exact(len(only_a), len(only_b)))


def rank_points(scores_by_task: Mapping[str, Mapping[str, float]]) -> dict[str, int]:
    """The model card's scheme: per problem, the best endpoint gets 4 points, the second 2, the third 1.

    Ties share a place (two best both get 4, the next is third and gets 1) and a problem no sample passed
    gives no points."""
    totals: dict[str, int] = {}
    for scores in scores_by_task.values():
        for label, score in scores.items():
            totals.setdefault(label, 0)
            place = sum(1 for other in scores.values() if other > score)
            if score > 0 and place < len(RANK_POINTS):
                totals[label] += RANK_POINTS[place]
    return totals
