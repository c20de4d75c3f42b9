"""Human rankings exported by the playground's compare mode (`codebooga-rankings/1`), read so that a report
shows what people preferred next to what the tests measured — the way CodeBooga's author ranked merges."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

FORMAT = "codebooga-rankings/1"
POINTS = (0, 1, 2, 4)  # the model card's scale
SIDES = ("A", "B")


class RankingsError(ValueError):
    """The file is not a readable `codebooga-rankings/1` export; the message says what is wrong."""


@dataclass(frozen=True)
class HumanRankings:
    source: str
    endpoints: dict[str, str]
    prompts: int
    points: dict[str, int]
    """Total points per side, recomputed from the rankings (the file's own totals are only checked)."""
    wins: dict[str, int]
    """Prompts where the side got more points than the other."""


def load_rankings(path: Path) -> HumanRankings:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RankingsError(f"{path}: cannot read a rankings file ({error})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise RankingsError(f"{path}: not a {FORMAT} export from the playground's compare mode")
    endpoints = document.get("endpoints") or {}
    rankings = document.get("rankings")
    if not isinstance(rankings, list):
        raise RankingsError(f"{path}: 'rankings' must be a list")
    points = dict.fromkeys(SIDES, 0)
    wins = dict.fromkeys(SIDES, 0)
    for index, entry in enumerate(rankings):
        given = entry.get("points") if isinstance(entry, dict) else None
        if not isinstance(given, dict) or any(given.get(side) not in POINTS for side in SIDES):
            raise RankingsError(f"{path}: rankings[{index}].points must give A and B one of {POINTS}")
        for side in SIDES:
            points[side] += given[side]
        if given["A"] != given["B"]:
            wins["A" if given["A"] > given["B"] else "B"] += 1
    totals = document.get("totals")
    if isinstance(totals, dict) and any(totals.get(side) != points[side] for side in SIDES):
        raise RankingsError(f"{path}: its totals {totals} do not add up to its rankings {points}")
    return HumanRankings(
        source=str(path),
        endpoints={side: str(endpoints.get(side, "")) for side in SIDES},
        prompts=len(rankings),
        points=points,
        wins=wins,
    )
