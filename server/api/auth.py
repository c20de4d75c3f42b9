"""API keys: `Authorization: Bearer <key>` on /v1 routes when keys are configured; /health stays open."""

from __future__ import annotations

import hmac

from fastapi import Request

from codebooga.server.api.errors import APIError


class ApiKeyCheck:
    def __init__(self, keys: list[str]) -> None:
        self._keys = [key.encode() for key in keys if key]

    async def __call__(self, request: Request) -> None:
        if not self._keys:
            return
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not presented:
            raise APIError(
                401,
                "missing API key: send it as 'Authorization: Bearer <key>'",
                code="invalid_api_key",
                headers={"WWW-Authenticate": "Bearer"},
            )
        candidate = presented.strip().encode()
        # Compare against every key (no early exit) so timing reveals neither the key nor which one matched.
        matched = False
        for key in self._keys:
            matched |= hmac.compare_digest(candidate, key)
        if not matched:
            raise APIError(401, "incorrect API key provided", code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})
