"""Ask, run, record: every (problem, sample) an endpoint still owes, `parallel` at a time."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass

from tqdm import tqdm

from codebooga.server.eval.client import EndpointClient, Sampling
from codebooga.server.eval.execution import execute
from codebooga.server.eval.results import ResultStore, SampleResult
from codebooga.server.eval.sandbox import Limits, Sandbox
from codebooga.server.eval.suites import Problem


@dataclass(frozen=True)
class RunPlan:
    problems: list[Problem]
    samples: int
    seed: int
    sampling: Sampling
    parallel: int
    limits: Limits

    @property
    def settings(self) -> str:
        """What makes two results comparable; resuming reuses only results with the same settings."""
        s = self.sampling
        return f"mode={s.mode} temperature={s.temperature:g} preset={s.preset or '-'} max_tokens={s.max_tokens}"

    def sample_seed(self, sample: int) -> int:
        """Sample i of every problem uses seed + i: samples differ from each other, reruns repeat them."""
        return self.seed + sample


def run_endpoint(client: EndpointClient, plan: RunPlan, sandbox: Sandbox, store: ResultStore) -> None:
    label = client.endpoint.label
    owed = [
        (problem, sample)
        for problem in plan.problems
        for sample in range(plan.samples)
        if not store.has((label, problem.task_id, sample, plan.settings))
    ]
    if not owed:
        return

    def one(job: tuple[Problem, int]) -> None:
        problem, sample = job
        started = time.monotonic()
        seed = plan.sample_seed(sample)
        completion = client.answer(problem, plan.sampling, seed)
        verdict = execute(sandbox, problem, completion, plan.limits)
        store.add(
            SampleResult(
                endpoint=label, task_id=problem.task_id, language=problem.language, sample=sample, seed=seed,
                settings=plan.settings, completion=completion, passed=verdict.passed, outcome=verdict.outcome,
                seconds=round(time.monotonic() - started, 3),
            )
        )  # fmt: skip

    pool = ThreadPoolExecutor(max_workers=plan.parallel)
    try:
        with tqdm(total=len(owed), desc=label, unit="sample") as bar:
            for done in as_completed([pool.submit(one, job) for job in owed]):
                done.result()
                bar.update()
    finally:
        # An endpoint error ends the run at once; what finished is saved, and the next run resumes from there.
        pool.shutdown(cancel_futures=True)
