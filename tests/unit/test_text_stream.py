"""Stop-string holdback and UTF-8-safe incremental detokenization."""

from codebooga.server.engine.text_stream import ChoiceText, StopStringHoldback
from codebooga.server.engine.types import TokenLogprob


def feed_all(holdback: StopStringHoldback, parts: list[str]) -> tuple[str, bool]:
    released = ""
    for part in parts:
        text, stopped = holdback.feed(part)
        released += text
        if stopped:
            return released, True
    return released + holdback.flush(), False


def test_stop_string_split_across_pieces_is_removed() -> None:
    assert feed_all(StopStringHoldback(["###"]), ["Hello #", "#", "# more"]) == ("Hello ", True)


def test_text_that_only_resembles_a_stop_prefix_is_released() -> None:
    holdback = StopStringHoldback(["### Instruction:"])
    released, stopped = holdback.feed("a ##")
    assert (released, stopped) == ("a ", False)
    released, stopped = holdback.feed("x")
    assert (released, stopped) == ("##x", False)


def test_earliest_of_several_stop_strings_wins() -> None:
    assert feed_all(StopStringHoldback(["END", "\n\n"]), ["one\n\ntwo END"]) == ("one", True)


def test_held_text_is_flushed_when_generation_ends() -> None:
    assert feed_all(StopStringHoldback(["STOP"]), ["go ST"]) == ("go ST", False)


def test_no_stop_strings_releases_everything_immediately() -> None:
    assert StopStringHoldback([]).feed("abc") == ("abc", False)


def test_multibyte_character_split_over_tokens_is_never_emitted_in_halves() -> None:
    snowman = "☃".encode()
    choice = ChoiceText(0, [])
    first = choice.add_token(1, snowman[:1], None)
    second = choice.add_token(2, snowman[1:], None)
    assert first is None or first.text == ""
    assert second is not None and second.text == "☃"
    assert (first.token_ids if first else ()) + second.token_ids == (1, 2)


def test_invalid_bytes_become_replacement_characters_at_the_end() -> None:
    choice = ChoiceText(0, [])
    choice.add_token(1, b"ok\xe2\x98", None)
    final = choice.finish()
    assert final is not None and final.text == "\ufffd"


def test_logprobs_follow_released_text_and_drop_stop_tokens() -> None:
    def lp(token: str) -> TokenLogprob:
        return TokenLogprob(token=token, token_bytes=token.encode(), logprob=-1.0)

    choice = ChoiceText(0, ["##"])
    deltas = [choice.add_token(index, piece.encode(), lp(piece)) for index, piece in enumerate(["a", " #", "#", "b"])]
    emitted = [delta for delta in deltas if delta is not None]
    assert "".join(delta.text for delta in emitted) == "a "
    assert [entry.token for delta in emitted for entry in delta.logprobs] == ["a", " #"]
    assert choice.done and choice.hit_stop
