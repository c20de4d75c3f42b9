"""Prefix-affinity routing for codebooga on Ray Serve: a user's follow-ups go to the replica whose prompt cache
holds their conversation so far.

Ray's HTTP proxy hands a replica only the request's ASGI scope (the body streams later), so a request router sees
no prompt. Hence two tiers: `AffinityIngress` reads the body and calls the engine replicas through a handle with
the prompt text as the first argument, where `PrefixAffinityRouter` (Ray's public `RequestRouter` API) sees it;
the engine replica runs the request through its unchanged FastAPI app (`CodeboogaReplica.forward`).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections import defaultdict, deque
from collections.abc import AsyncIterator
from typing import Any

from ray import serve
from ray.serve.handle import DeploymentHandle
from ray.serve.request_router import FIFOMixin, PendingRequest, ReplicaID, RequestRouter, RunningReplica
from starlette.types import Message, Receive, Scope, Send

# How many recent prompts per replica the router compares with, and how much of a prompt must match (characters)
# before affinity beats load: a shared chat template or system prompt alone is not worth a queue.
_REMEMBERED = 256
_MIN_MATCH = 64


def routing_key(body: bytes) -> str:
    """The text a request's prompt starts with: chat messages' contents in order, or the completion prompt."""
    try:
        request = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return ""
    if not isinstance(request, dict):
        return ""
    if isinstance(request.get("messages"), list):
        messages = [message for message in request["messages"] if isinstance(message, dict)]
        return "\n".join(str(message.get("content", "")) for message in messages)
    prompt = request.get("prompt")
    return prompt if isinstance(prompt, str) else ""


class PrefixAffinityRouter(FIFOMixin, RequestRouter):
    """Ranks first the replica that was sent the prompt sharing the longest prefix with this one (at least
    `_MIN_MATCH` characters), then every replica; Ray takes the first rank with room. A prompt matching none goes
    to the replica sent the fewest requests."""

    def initialize_state(self, **kwargs: Any) -> None:
        self._prompts: defaultdict[ReplicaID, deque[str]] = defaultdict(lambda: deque(maxlen=_REMEMBERED))
        self._sent: defaultdict[ReplicaID, int] = defaultdict(int)

    async def choose_replicas(
        self, candidate_replicas: list[RunningReplica], pending_request: PendingRequest | None = None
    ) -> list[list[RunningReplica]]:
        key = _key_of(pending_request)
        best, longest = None, _MIN_MATCH - 1
        for replica in candidate_replicas:
            for seen in self._prompts.get(replica.replica_id, ()):
                shared = len(os.path.commonprefix([key, seen]))
                if shared > longest:
                    best, longest = replica, shared
        if best is None:
            # a new conversation: to the replica that was sent the fewest, so conversations spread over replicas
            return [[replica] for replica in sorted(candidate_replicas, key=lambda r: self._sent[r.replica_id])]
        return [[best], candidate_replicas]

    def on_request_routed(self, pending_request: PendingRequest, replica_id: ReplicaID, result: Any) -> None:
        self._sent[replica_id] += 1
        key = _key_of(pending_request)
        if key:
            self._prompts[replica_id].append(key)

    def on_replica_actor_died(self, replica_id: ReplicaID) -> None:
        self._prompts.pop(replica_id, None)
        self._sent.pop(replica_id, None)
        super().on_replica_actor_died(replica_id)


def _key_of(pending_request: PendingRequest | None) -> str:
    if pending_request is None or not pending_request.args or not isinstance(pending_request.args[0], str):
        return ""
    return pending_request.args[0]


# no CPUs reserved: it only relays bytes, and replicas' CPUs are llama.cpp's threads
@serve.deployment(name="ingress", ray_actor_options={"num_cpus": 0})
@serve.ingress()
class AffinityIngress:
    """The HTTP tier: reads each request's body and forwards it, with its routing key, to the engine replicas."""

    def __init__(self, engine: DeploymentHandle) -> None:
        self._relay = Relay(engine.options(stream=True))

    def __serve_build_asgi_app__(self) -> "Relay":
        return self._relay


class Relay:
    """The ingress's ASGI app: the whole body read, then the engine replica's response messages sent on."""

    def __init__(self, engine: DeploymentHandle) -> None:
        self._engine = engine

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        request = {name: scope[name] for name in ("method", "path", "query_string", "headers")}
        async for reply in self._engine.forward.remote(routing_key(body), request, body):
            await send(reply)


async def run_asgi(app: Any, request: dict[str, Any], body: bytes) -> AsyncIterator[Message]:
    """One HTTP request through an ASGI app in-process; yields the response's ASGI messages as they are sent."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "scheme": "http", "root_path": "",
             "raw_path": request["path"].encode(), "client": None, "server": None, **request}  # fmt: skip
    replies: asyncio.Queue[Message | None] = asyncio.Queue()
    done = asyncio.Event()
    body_sent = False

    async def receive() -> Message:
        nonlocal body_sent
        if not body_sent:
            body_sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        await replies.put(message)

    async def respond() -> None:
        try:
            await app(scope, receive, send)
        finally:
            await replies.put(None)

    task = asyncio.create_task(respond())
    try:
        while (message := await replies.get()) is not None:
            yield message
    finally:
        done.set()
        task.cancel()
