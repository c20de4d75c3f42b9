"""The slot a job takes: several users' prompts interleaved over fewer slots must not overwrite each other's
cached prompts while an empty slot sits unused, and follow-ups must land in the slot holding their history."""

from __future__ import annotations

from codebooga.server.engine.llama_cpp.slot_policy import (
    Slot,
    added_runs,
    common_prefix_length,
    pick_slot,
    shared_prefixes,
    spare_slots,
)

SYSTEM = list(range(1000, 1008))  # a short shared start, like "def " or a system prompt


def user_file(user: int, length: int = 200) -> list[int]:
    return SYSTEM + [user * 10_000 + i for i in range(length)]


def pick(slots: list[Slot], prompt: list[int], cached: bool = False) -> Slot:
    return pick_slot(slots, len(prompt), shared_prefixes(slots, prompt), overwritten_is_cached=cached)


def start(slots: list[Slot], prompt: list[int], clock: int) -> Slot:
    slot = pick(slots, prompt)
    slot.tokens, slot.last_used = list(prompt), clock
    return slot


def test_a_new_users_file_takes_an_empty_slot_not_another_users_cache() -> None:
    slots = [Slot(0), Slot(1), Slot(2), Slot(3)]
    taken = [start(slots, user_file(user), clock) for clock, user in enumerate(range(4))]
    assert [slot.seq_id for slot in taken] == [0, 1, 2, 3]  # each user its own slot despite the shared start


def test_interleaved_follow_ups_return_to_their_own_slots() -> None:
    slots = [Slot(0), Slot(1), Slot(2), Slot(3)]
    histories = {user: user_file(user) for user in range(4)}
    home = {user: start(slots, histories[user], user).seq_id for user in range(4)}
    clock = 4
    for turn in range(3):
        for user in (2, 0, 3, 1):
            histories[user] = histories[user] + [77, turn, user, 78]  # the answer and the next question
            assert start(slots, histories[user], clock).seq_id == home[user]
            clock += 1


def test_with_more_users_than_slots_the_least_recently_used_slot_is_overwritten() -> None:
    slots = [Slot(0), Slot(1)]
    start(slots, user_file(0), 1)
    start(slots, user_file(1), 2)
    start(slots, user_file(0) + [5], 3)  # user 0 is active again: slot 0 is the recently used one
    assert start(slots, user_file(2), 4).seq_id == 1


def test_a_prompt_that_extends_a_short_cached_one_reuses_it() -> None:
    slots = [Slot(0, tokens=[1, 2, 3, 4], last_used=5), Slot(1)]
    assert pick(slots, [1, 2, 3, 4] + list(range(100, 400))).seq_id == 0  # nothing of slot 0 is lost


def test_extra_choices_take_empty_slots_then_the_least_recently_used() -> None:
    slots = [Slot(0, [1], last_used=9), Slot(1, [2], last_used=3), Slot(2), Slot(3, [3], last_used=5)]
    assert [slot.seq_id for slot in spare_slots(slots, slots[0], 2, overwritten_is_cached=False)] == [2, 1]


def busy_slot(seq_id: int) -> Slot:
    return Slot(seq_id, [seq_id, 1, 2], busy=True, last_used=50)


def test_with_the_prompt_cache_the_slot_next_to_the_busy_one_is_overwritten_before_the_least_recently_used() -> None:
    slots = [busy_slot(0), Slot(1, user_file(1), last_used=5), Slot(2, user_file(2), last_used=6),
             Slot(3, user_file(3), last_used=1)]  # fmt: skip
    assert pick(slots, user_file(4), cached=True).seq_id == 1  # slot 1's prompt goes to the cache
    assert pick(slots, user_file(4), cached=False).seq_id == 3  # without a cache it would be lost: LRU decides


def test_a_gap_between_busy_slots_is_filled_first() -> None:
    slots = [busy_slot(0), Slot(1, user_file(1), last_used=9), busy_slot(2), Slot(3, user_file(3), last_used=1)]
    assert pick(slots, user_file(4), cached=True).seq_id == 1


def test_an_empty_slot_next_to_the_busy_one_goes_first() -> None:
    slots = [Slot(0), Slot(1), Slot(2), busy_slot(3)]
    assert pick(slots, user_file(4)).seq_id == 2


def test_a_follow_up_still_returns_to_its_own_slot_away_from_the_busy_one() -> None:
    slots = [busy_slot(0), Slot(1), Slot(2), Slot(3, user_file(3), last_used=1)]
    assert pick(slots, user_file(3) + [7, 8], cached=True).seq_id == 3


def test_extra_choices_sit_next_to_the_first_one() -> None:
    slots = [Slot(0), Slot(1), Slot(2, user_file(2), last_used=4), Slot(3), Slot(4)]
    primary = pick(slots, user_file(2) + [5], cached=True)
    spares = spare_slots(slots, primary, 2, overwritten_is_cached=True)
    taken = sorted([primary.seq_id, *(slot.seq_id for slot in spares)])
    assert primary.seq_id == 2 and taken == list(range(taken[0], taken[0] + 3)), taken


def test_added_runs() -> None:
    assert added_runs(2, set()) == 1
    assert added_runs(2, {0}) == 1
    assert added_runs(2, {1}) == 0
    assert added_runs(2, {3, 4}) == 0
    assert added_runs(2, {1, 3}) == -1


def test_common_prefix_length() -> None:
    assert common_prefix_length([1, 2, 3], (1, 2, 4)) == 2
    assert common_prefix_length([], (1,)) == 0
    assert common_prefix_length([1, 2], (1, 2, 3)) == 2
