"""http: calls to operator-registered endpoints only (CommonSettings.http_apis, an allow-list).

Arguments: {"endpoint": name, "params": {...}} (GET query) or {"endpoint": name, "body": ...}
(POST JSON), or the engine's form for a registered tool name, {"endpoint": name, "arguments":
{...}} (the query of a GET, the body of a POST). The model names an endpoint, never a URL:
anything not registered is refused with an error it can read. Redirects are not followed (they
could lead anywhere), proxies from the environment are not used, and at most a few times
`max_chars` bytes of the response are read before it is cut.
Network failures, timeouts, 429 and 5xx raise TransientError, which the task retries with backoff.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from api_executor.errors import ToolError, TransientError
from common.settings import HttpApiSpec

_Scalar = (str, int, float, bool)


def run(arguments: dict[str, Any], apis: dict[str, HttpApiSpec], max_chars: int) -> str:
    name = arguments.get("endpoint")
    if name is None:
        raise ToolError("missing argument 'endpoint' (the name of a registered http API)")
    if not isinstance(name, str):
        raise ToolError("argument 'endpoint' must be the name of a registered http API")
    spec = apis.get(name)
    if spec is None:
        known = f"registered: {', '.join(sorted(apis))}" if apis else "none are registered"
        raise ToolError(f"http endpoint {name[:100]!r} is not registered ({known})")
    params, body = _params(arguments.get("params")), arguments.get("body")
    if body is not None and spec.method == "GET":
        raise ToolError(f"http endpoint {name!r} takes GET 'params', not a 'body'")
    tool_args = arguments.get("arguments")
    if tool_args is not None:
        # The engine's form for a registered tool name: the model's own arguments, sent as the
        # query of a GET or the JSON body of a POST.
        if not isinstance(tool_args, dict):
            raise ToolError("argument 'arguments' must be an object")
        if spec.method == "GET":
            params = {**_params({k: v if isinstance(v, _Scalar) else json.dumps(v) for k, v in tool_args.items()}),
                      **params}
        elif body is None:
            body = tool_args
    fixed = sorted(set(params) & set(httpx.URL(str(spec.url)).params))
    if fixed:
        # The operator's URL says them (an API key, a fixed format): a param must not replace them.
        raise ToolError(f"http endpoint {name!r} fixes {', '.join(repr(k) for k in fixed)} in its URL: "
                        "those params cannot be set")
    return _fetch(name, spec, params, body, max_chars)


def _params(raw: Any) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(isinstance(v, _Scalar) for v in raw.values()):
        raise ToolError("argument 'params' must be an object of string/number/boolean values")
    return {str(k): str(v).lower() if isinstance(v, bool) else str(v) for k, v in raw.items()}


def _fetch(name: str, spec: HttpApiSpec, params: dict[str, str], body: Any, max_chars: int) -> str:
    max_bytes = 4 * max_chars + 4
    try:
        with httpx.Client(timeout=spec.timeout_s, follow_redirects=False, trust_env=False) as client:
            # Merged into the URL's own query: httpx's params= would replace that query whole.
            url = httpx.URL(str(spec.url)).copy_merge_params(params)
            with client.stream(spec.method, url, json=body) as resp:
                data = bytearray()
                for chunk in resp.iter_bytes():
                    data += chunk
                    if len(data) >= max_bytes:
                        break
                status, encoding = resp.status_code, resp.encoding or "utf-8"
    except httpx.TimeoutException:
        raise TransientError(f"http endpoint {name!r} timed out after {spec.timeout_s:g}s") from None
    except httpx.TransportError as exc:
        raise TransientError(f"http endpoint {name!r} unreachable ({type(exc).__name__})") from None
    text = data.decode(encoding, errors="replace")
    if status == 429 or status >= 500:
        raise TransientError(f"http endpoint {name!r} returned HTTP {status}")
    if status >= 300:
        raise ToolError(f"http endpoint {name!r} returned HTTP {status}: {text[:200]}")
    return truncate(text, max_chars)


def truncate(text: str, max_chars: int) -> str:
    if len(text) <= max_chars:
        return text
    return text[:max_chars] + f" ... [truncated to {max_chars} characters]"
