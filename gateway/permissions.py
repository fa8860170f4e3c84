"""Which request fields need which scope (gateway/auth.py): a pure check on the parsed body.

A scripted `plan` is the operator's (the benchmark's) tool: it waits stated durations in the
stand-ins (up to an hour each, 256 segments), calls any registered `http` endpoint directly with
its own params, and every such call's duration goes into the estimator that schedules every
tenant's requests. A plain key generates, with tools the model calls (their arguments are the
model's, and the stand-ins then wait durations drawn by the server, not stated by the client).
"""

from __future__ import annotations

from gateway.auth import Caller
from gateway.errors import ApiError
from gateway.protocol import GenerationFields


def check_scope(body: GenerationFields, caller: Caller) -> None:
    if body.plan is not None and not caller.is_operator:
        raise ApiError(403, "plan (scripted requests: stated durations, direct http calls) needs an operator key "
                            "(AUGSERVE_OPERATOR_API_KEYS)", code="insufficient_scope", param="plan")
