"""Who is calling: the bearer key, its scope, and the id that namespaces what the caller names.

Two scopes. `generate` (AUGSERVE_API_KEYS) may generate; `operator` (AUGSERVE_OPERATOR_API_KEYS,
the benchmark's) may also script requests (gateway/permissions.py), read /metrics and the docs,
and is not limited per key (gateway/key_limits.py). With no keys at all authentication is off:
a local, single-user run, whose one anonymous caller is the operator.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Literal

from fastapi import Request

from gateway.errors import ApiError
from gateway.settings import GatewaySettings

Scope = Literal["generate", "operator"]
ANONYMOUS_KEY_ID = "local"


@dataclass(frozen=True)
class Caller:
    key_id: str
    """A short digest of the key (never the key): names the caller's namespace in Redis."""
    scope: Scope

    @property
    def is_operator(self) -> bool:
        return self.scope == "operator"


def key_id(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _matches(given: bytes, keys: list[str]) -> bool:
    # compare_digest against every key: no early exit that would time which key prefix matched.
    return sum(hmac.compare_digest(given, key.encode()) for key in keys) > 0


def authenticate(request: Request, settings: GatewaySettings) -> Caller:
    """The caller of a request, or a 401. Bearer keys, as the openai client sends them."""
    if not settings.auth_on:
        return Caller(ANONYMOUS_KEY_ID, "operator")
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    challenge = {"WWW-Authenticate": "Bearer"}
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "missing API key: send it as the header 'Authorization: Bearer <key>'",
                       code="missing_api_key", headers=challenge)
    given = token.strip()
    # Both lists are always compared, so the time taken does not tell which scope a key has.
    operator = _matches(given.encode(), settings.operator_api_keys)
    plain = _matches(given.encode(), settings.api_keys)
    if not (operator or plain):
        raise ApiError(401, "invalid API key", code="invalid_api_key", headers=challenge)
    return Caller(key_id(given), "operator" if operator else "generate")


def require_operator(caller: Caller, what: str) -> None:
    if not caller.is_operator:
        raise ApiError(403, f"{what} needs an operator key (AUGSERVE_OPERATOR_API_KEYS)",
                       code="insufficient_scope")


def program_of(caller: Caller, program_id: str | None) -> str | None:
    """A program id in its caller's namespace: one tenant naming another's program (to join its
    queue position or its worker) names a different program of its own."""
    return None if program_id is None else f"{caller.key_id}/{program_id}"
