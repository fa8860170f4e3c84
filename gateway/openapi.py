"""The gateway's OpenAPI document, with the real request schemas, and the operator pages serving it.

The generation and tokenizer routes read their body themselves (gateway/deps.py: size, deadline and media type
before parsing), so FastAPI cannot see it: `request_body` names the wire model in the route's
`openapi_extra`, and `spec` adds those models' JSON Schemas (pydantic's, with their definitions)
to the document's components. Schemathesis tests the running gateway against this document.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel

from gateway.deps import require_operator_key

REF = "#/components/schemas/{model}"


def request_body(*models: type[BaseModel]) -> dict[str, Any]:
    """The route's `openapi_extra`: its JSON body is `models[0]`, or exactly one of `models`."""
    refs = [{"$ref": REF.format(model=model.__name__)} for model in models]
    schema = refs[0] if len(refs) == 1 else {"oneOf": refs}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def spec(app: FastAPI, models: list[type[BaseModel]]) -> dict[str, Any]:
    doc = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for model in models:
        schema = model.model_json_schema(ref_template=REF, mode="validation")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    return doc


def operator_pages(models: list[type[BaseModel]]) -> APIRouter:
    """/openapi.json and /docs, behind an operator key when authentication is on."""
    router = APIRouter(dependencies=[Depends(require_operator_key)], include_in_schema=False)

    @router.get("/openapi.json")
    async def openapi_json(request: Request) -> JSONResponse:
        app = request.app
        if not getattr(app.state, "openapi", None):
            app.state.openapi = spec(app, models)
        return JSONResponse(app.state.openapi)

    @router.get("/docs")
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="augserve gateway")

    return router
