"""Every limit a request meets before the server works on it, in one place.

One bad request must never stall the server, so each limit is checked before the work it guards: the body size
from `Content-Length` (or while reading, never buffering more than the limit), the request's shape while it is
validated, the prompt's length from its character count before it is tokenized. Each refusal is a 4xx in
OpenAI's error shape whose message says what to change.

The instance fields are `codebooga serve` options. The `ClassVar` counts are part of the published OpenAPI
schema (`maxItems`, `maxProperties`), so they are fixed: a schema must not depend on how a server was started.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

MIB = 1024 * 1024


@dataclass(frozen=True)
class RequestLimits:
    max_body_bytes: int = 0
    """Largest request body; 0 sizes it from the context once the model is loaded (`body_bytes`)."""

    max_connections: int = 512
    """Open HTTP connections, idle ones included; one more is answered 503 and closed."""

    header_timeout_seconds: float = 10.0
    """A connection must deliver a request's headers this long after it opens or the request starts."""

    body_timeout_seconds: float = 60.0
    """A request's whole body must arrive this long after it is first read; then 408."""

    MAX_MESSAGES: ClassVar[int] = 2048
    """Chat messages per request: more than a long conversation needs; each costs template rendering."""

    MAX_STOP_STRINGS: ClassVar[int] = 16
    """Stop strings per request: each is compared against every generated character."""

    MAX_LOGIT_BIAS: ClassVar[int] = 1024
    """`logit_bias` entries per request: each is applied to every sampled token."""

    MAX_TOOLS: ClassVar[int] = 128
    """Tools per request (OpenAI's own limit): each becomes part of the prompt and of the call grammar."""

    def body_bytes(self, context_length: int) -> int:
        """The body limit for a model with this context: the option, else 512 bytes per context token, at least
        4 MiB. A prompt filling the context is far smaller (a few bytes per token, at most ~12 JSON-escaped)."""
        return self.max_body_bytes or max(4 * MIB, 512 * context_length)

    @staticmethod
    def generated_tokens(context_length: int, sequences: int) -> int:
        """Most tokens one request may ask for (choices × max_tokens): what all sequences hold together."""
        return context_length * sequences
