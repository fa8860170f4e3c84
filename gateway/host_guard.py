"""Host allow-list (GatewaySettings.allowed_hosts): a 400 for any other Host header.

DNS rebinding points a name the attacker controls at 127.0.0.1, so a browser page sends its
requests to the local gateway with that name in Host; refusing unknown names ends it. Pure ASGI
(no Starlette TrustedHostMiddleware) so the refusal is in OpenAI's error shape like every other.
"""

from __future__ import annotations

from typing import Any

from gateway.errors import ApiError


def host_name(raw: str) -> str:
    """'Example.COM:8000' -> 'example.com'; '[::1]:8000' -> '::1'."""
    raw = raw.strip().lower()
    if raw.startswith("["):
        return raw[1:raw.find("]")] if "]" in raw else raw
    return raw.rpartition(":")[0] if raw.count(":") == 1 else raw


class HostGuard:
    def __init__(self, app: Any, hosts: frozenset[str] | None) -> None:
        self.app = app
        self.hosts = hosts

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or self.hosts is None:
            await self.app(scope, receive, send)
            return
        raw = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), "")
        if host_name(raw) not in self.hosts:
            shown = raw[:100] or "none"
            error = ApiError(400, f"Host {shown!r} is not served here (AUGSERVE_ALLOWED_HOSTS)", code="invalid_host",
                             param="Host")
            await error.response()(scope, receive, send)
            return
        await self.app(scope, receive, send)
