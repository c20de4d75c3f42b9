"""Token bytes → user-visible text, one choice at a time.

Two things make streaming text subtle: a token may carry only part of a UTF-8 character (so bytes are held
until they decode), and a stop string may arrive split across tokens (so text that could still be the start of
one is held back until it can't). `ChoiceText` does both and keeps each token's logprob attached to the text it
produced, so a delta's logprobs cover exactly the tokens whose text it completes.
"""

from __future__ import annotations

import codecs
from collections.abc import Sequence
from dataclasses import dataclass

from codebooga.server.engine.types import TextDelta, TokenLogprob


class StopStringHoldback:
    """Releases text as soon as it cannot be part of a stop string; reports the first stop string found."""

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = tuple(stop for stop in stops if stop)
        self._held = ""

    def feed(self, text: str) -> tuple[str, bool]:
        """Add text; return (text safe to release, whether a stop string was hit). After a hit, stop feeding."""
        if not self._stops:  # every streamed token passes here
            return text, False
        buffer = self._held + text
        hits = [index for index in (buffer.find(stop) for stop in self._stops) if index >= 0]
        if hits:
            self._held = ""
            return buffer[: min(hits)], True
        keep = self._longest_stop_prefix_suffix(buffer)
        self._held = buffer[len(buffer) - keep :]
        return buffer[: len(buffer) - keep], False

    def flush(self) -> str:
        """The held-back text, released because generation ended without completing a stop string."""
        held, self._held = self._held, ""
        return held

    def _longest_stop_prefix_suffix(self, buffer: str) -> int:
        longest = 0
        for stop in self._stops:
            for length in range(min(len(stop) - 1, len(buffer)), longest, -1):
                if buffer.endswith(stop[:length]):
                    longest = length
                    break
        return longest


@dataclass
class _PendingToken:
    token_id: int
    text_start: int
    text_end: int
    logprob: TokenLogprob | None


class ChoiceText:
    """Assembles one choice's text from sampled tokens: UTF-8 safe, stop strings removed, logprobs aligned."""

    def __init__(self, choice: int, stops: Sequence[str]) -> None:
        self.choice = choice
        self.done = False
        self.hit_stop = False
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._holdback = StopStringHoldback(stops)
        self._decoded_chars = 0
        self._released_chars = 0
        self._pending: list[_PendingToken] = []

    def add_token(self, token_id: int, piece: bytes, logprob: TokenLogprob | None) -> TextDelta | None:
        """Feed one sampled token. Returns the text (and tokens) that became final, if any."""
        if self.done:
            return None
        text = self._decoder.decode(piece)
        self._pending.append(
            _PendingToken(token_id, self._decoded_chars, self._decoded_chars + len(text), logprob)
        )
        self._decoded_chars += len(text)
        released, stopped = self._holdback.feed(text)
        if stopped:
            self.done = self.hit_stop = True
        return self._release(released)

    def finish(self) -> TextDelta | None:
        """Generation ended without a stop string: release everything still held."""
        if self.done:
            return None
        tail = self._decoder.decode(b"", final=True)
        if self._pending:
            self._pending[-1].text_end += len(tail)
        self._decoded_chars += len(tail)
        released, stopped = self._holdback.feed(tail)
        self.hit_stop = stopped
        if not stopped:
            released += self._holdback.flush()
        self.done = True
        return self._release(released)

    def _release(self, text: str) -> TextDelta | None:
        self._released_chars += len(text)
        if self.done:
            ready = self._pending
            if self.hit_stop:
                ready = [token for token in ready if token.text_start < self._released_chars]
            self._pending = []
        else:
            count = 0
            while count < len(self._pending) and self._pending[count].text_end <= self._released_chars:
                count += 1
            ready, self._pending = self._pending[:count], self._pending[count:]
        if not text and not ready:
            return None
        return TextDelta(
            choice=self.choice,
            text=text,
            token_ids=tuple(token.token_id for token in ready),
            logprobs=tuple(token.logprob for token in ready if token.logprob is not None),
        )
