"""The OpenAPI document, with each surface's real error shape declared on every route.

FastAPI declares its own 422 body; malipo replies with problem+json on /api/v1
and Pay Hero's error object (400 for bad input) on /api/v2 and /mailer, so the
document says that instead, and a ``default`` response covers every other error.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from malipo.api.errors import PROBLEM_MEDIA_TYPE, PayHeroError, Problem, is_payhero_path

_METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}


def _schema(model: type[Problem] | type[PayHeroError]) -> dict[str, Any]:
    return model.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")


def build_openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema:
        return app.openapi_schema
    doc = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for model in (Problem, PayHeroError):
        schema = _schema(model)
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    problem = {
        "description": "Error (RFC 9457 problem details)",
        "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    payhero = {
        "description": "Error (Pay Hero error object)",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PayHeroError"}}},
    }
    for path, item in doc.get("paths", {}).items():
        error = payhero if is_payhero_path(path) else problem
        for method, operation in item.items():
            if method not in _METHODS:
                continue
            responses = operation.setdefault("responses", {})
            if "422" in responses:
                del responses["422"]
                responses["400" if is_payhero_path(path) else "422"] = {
                    **error,
                    "description": "The request is not valid; the reply names each field and why",
                }
            responses.setdefault("default", error)
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    app.openapi_schema = doc
    return doc
