"""Every error the gateway returns, in OpenAI's shape: {"error": {message, type, param, code}}."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

def error_type(status: int) -> str:
    if status == 401:
        return "authentication_error"
    return "invalid_request_error" if status < 500 else "server_error"


class ApiError(Exception):
    """Raised anywhere in a request; the handler turns it into the OpenAI error response."""

    def __init__(self, status: int, message: str, *, code: str | None = None, param: str | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.headers = headers

    def body(self) -> dict[str, Any]:
        return error_body(self.status, self.message, code=self.code, param=self.param)

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def error_body(status: int, message: str, *, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": error_type(status), "param": param, "code": code}}


def _is_union_tag(part: object) -> bool:
    """Pydantic puts union member names ('str', 'list[Part]', 'NamedToolChoice') in locations.

    Field names of the wire schemas are lower-case identifiers, so this never hides a field.
    """
    return isinstance(part, str) and (
        any(c in part for c in "[](),") or part in {"str", "int", "float", "bool"}
        or (part[:1].isupper() and part.isidentifier())  # a class name; header names have dashes
    )


def location(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(p) for p in loc if not _is_union_tag(p))


def validation_error(errors: list[Any], *, strip_prefix: tuple[str, ...] = ()) -> ApiError:
    """One 400 naming every failing field (location: message), the first as `param`."""
    by_loc: dict[str, list[str]] = {}
    for err in errors:
        loc = list(err.get("loc", ()))
        if loc and loc[0] in strip_prefix:
            loc = loc[1:]
        if err.get("type") == "json_invalid":
            return ApiError(400, f"request body is not valid JSON: {err.get('ctx', {}).get('error', err['msg'])}",
                            code="invalid_json")
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        by_loc.setdefault(location(loc), [])
        if msg not in by_loc[location(loc)]:
            by_loc[location(loc)].append(msg)
    parts = [f"{loc or 'request body'}: {' or '.join(msgs)}" for loc, msgs in by_loc.items()]
    first = next(iter(by_loc), "") or None
    return ApiError(400, "; ".join(parts[:5]), code="invalid_request", param=first)


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _request_validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return validation_error(list(exc.errors()), strip_prefix=("body",)).response()

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        return ApiError(exc.status_code, str(exc.detail), code=code, headers=exc.headers).response()

    @app.exception_handler(Exception)
    async def _unhandled(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return ApiError(500, f"internal error: {type(exc).__name__}", code="internal_error").response()
