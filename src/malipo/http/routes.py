"""The app's effective routes, with their full path templates.

FastAPI keeps included routers nested: the route a request matched
(``scope["route"]``) knows only its path inside its router. Permissions,
metrics and the audit log need the full template (``/api/v1/clients/{id}``),
so it is looked up here, from the effective routes FastAPI itself serves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import compile_path
from starlette.types import Scope


@dataclass(frozen=True, slots=True)
class EffectiveRoute:
    name: str
    path: str
    methods: frozenset[str]
    dependencies: tuple[Any, ...]
    openapi_extra: dict[str, Any]
    original: Any


def effective_routes(routes: Any) -> list[EffectiveRoute]:
    found = []
    for ctx in iter_route_contexts(routes):
        if not isinstance(ctx.original_route, APIRoute):
            continue
        found.append(
            EffectiveRoute(
                name=ctx.name or "",
                path=ctx.path_format or ctx.path or "",
                methods=frozenset(ctx.methods or ()),
                dependencies=tuple(getattr(ctx, "dependencies", ()) or ()),
                openapi_extra=dict(getattr(ctx, "openapi_extra", None) or {}),
                original=ctx.original_route,
            )
        )
    return found


def route_template(scope: Scope) -> str | None:
    """The full path template of the route this request matched, or None if none did."""
    route = scope.get("route")
    if route is None:
        return None
    app = scope.get("app")
    state = getattr(app, "state", None)
    table: dict[int, str] | None = getattr(state, "route_templates", None)
    if table is None and state is not None:
        table = {id(r.original): r.path for r in effective_routes(app.routes)}  # type: ignore[union-attr]
        state.route_templates = table
    return (table or {}).get(id(route)) or getattr(route, "path", None)


def allowed_methods(app: Any, path: str) -> list[str]:
    """Every method some route serves at ``path`` (for a 405's ``Allow``), across all routers."""
    state = app.state
    table: list[tuple[str, Any, frozenset[str]]] | None = getattr(state, "route_regexes", None)
    if table is None:
        table = [(r.path, compile_path(r.path)[0], r.methods) for r in effective_routes(app.routes)]
        state.route_regexes = table
    # A static path (/permissions/bulk) is its own resource, not an id of /permissions/{id}.
    exact = [methods for template, _regex, methods in table if template == path]
    matching = exact or [methods for _template, regex, methods in table if regex.match(path)]
    return sorted(set().union(*matching))
