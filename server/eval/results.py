"""Per-sample results, one JSON line each, appended as they come: a run cut short resumes where it stopped, and
the file is the raw material of every report and comparison."""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

from codebooga.merge.shared.cli_error import CliError


@dataclass(frozen=True)
class SampleResult:
    endpoint: str
    task_id: str
    language: str
    sample: int
    seed: int
    settings: str  # mode, temperature, preset and token budget: results under other settings are not reused
    completion: str
    passed: bool
    outcome: str
    seconds: float

    @property
    def key(self) -> tuple[str, str, int, str]:
        return (self.endpoint, self.task_id, self.sample, self.settings)


class ResultStore:
    """The JSONL file of one output folder; `add` may be called from many threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._results: dict[tuple[str, str, int, str], SampleResult] = {}
        if path.exists():
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    result = SampleResult(**json.loads(line))
                except (ValueError, TypeError) as error:
                    raise CliError(f"{path} line {number}: not a result line ({error}); move the file away") from None
                self._results[result.key] = result

    def has(self, key: tuple[str, str, int, str]) -> bool:
        return key in self._results

    def add(self, result: SampleResult) -> None:
        with self._lock:
            self._results[result.key] = result
            with open(self.path, "a") as file:
                file.write(json.dumps(asdict(result)) + "\n")

    def select(self, settings: str, endpoints: list[str], task_ids: set[str]) -> list[SampleResult]:
        """The results of this run's endpoints, problems and settings (others in the file stay untouched)."""
        return [
            result
            for result in self._results.values()
            if result.settings == settings and result.endpoint in endpoints and result.task_id in task_ids
        ]
