"""Which waiting request starts next: least prompt work first, earliest among equals, none overtaken forever."""

from __future__ import annotations

from dataclasses import dataclass

from codebooga.server.engine.llama_cpp.admission import MAX_OVERTAKEN, count_overtaking, next_to_start


@dataclass
class Request:
    name: str
    work: int
    choices: int = 1
    overtaken: int = 0


def work(request: Request) -> int:
    return request.work


def start_all(waiting: list[Request], idle_slots: int) -> list[str]:
    """Start requests one at a time, each in the single slot the previous one frees, until none is left."""
    order = []
    while (chosen := next_to_start(waiting, idle_slots, work)) is not None:
        count_overtaking(waiting, chosen)
        waiting.remove(chosen)
        order.append(chosen.name)
    return order


def test_the_least_prompt_work_starts_first_and_equals_in_arrival_order() -> None:
    waiting = [Request("first turn", 2000), Request("follow-up", 22), Request("other follow-up", 22)]
    assert start_all(waiting, idle_slots=1) == ["follow-up", "other follow-up", "first turn"]


def test_a_request_needing_more_slots_than_are_idle_lets_others_start() -> None:
    waiting = [Request("n=3", 10, choices=3), Request("n=1", 500)]
    assert next_to_start(waiting, 1, work) is waiting[1]
    assert next_to_start(waiting, 3, work) is waiting[0]
    assert next_to_start([Request("n=2", 1, choices=2)], 1, work) is None


def test_a_request_is_overtaken_at_most_max_overtaken_times() -> None:
    waiting = [Request("long", 5000)] + [Request(f"short {index}", 10) for index in range(MAX_OVERTAKEN + 5)]
    order = start_all(waiting, idle_slots=1)
    assert order.index("long") == MAX_OVERTAKEN


def test_one_overtaken_too_often_waits_for_enough_idle_slots_and_blocks_the_rest() -> None:
    starved = Request("n=2", 10, choices=2, overtaken=MAX_OVERTAKEN)
    waiting = [starved, Request("n=1", 1)]
    assert next_to_start(waiting, 1, work) is None
    assert next_to_start(waiting, 2, work) is starved


def test_only_the_requests_that_arrived_before_the_started_one_count_as_overtaken() -> None:
    waiting = [Request("a", 30), Request("b", 20), Request("c", 10), Request("d", 40)]
    count_overtaking(waiting, waiting[2])
    assert [request.overtaken for request in waiting] == [1, 1, 0, 0]


def test_a_lone_candidate_starts_without_its_prompt_work_being_measured() -> None:
    def unmeasurable(request: Request) -> int:
        raise AssertionError("prompt work measured with nothing to compare")

    only = Request("only", 100)
    assert next_to_start([only, Request("n=2", 1, choices=2)], 1, unmeasurable) is only
    assert next_to_start([], 1, unmeasurable) is None
