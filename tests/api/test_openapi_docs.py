"""The API reference explains itself: every operation of /openapi.json has a tag of the declared
list, a summary written for people, a description that names its permission and its callers, and
every request body an example the route accepts."""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path
from typing import Any

import httpx
import jsonschema_rs
import pytest

from malipo.app import create_app
from malipo.config import Settings
from malipo.http.permissions import is_protected
from malipo.http.routes import effective_routes
from malipo.http.tags import PAYHERO_PREFIX, TAG_NAMES
from tests.fixtures.servers import LiveServer

_APP = create_app(Settings(var_dir=Path(tempfile.gettempdir()), inprocess_worker=False))
_DOC = _APP.openapi()
_METHODS = {"get", "put", "post", "delete", "patch"}
_ROUTES = {(r.path, m.lower()): r for r in effective_routes(_APP.routes) for m in r.methods}
_OPERATIONS = [
    pytest.param(path, method, operation, id=f"{method.upper()} {path}")
    for path, item in _DOC["paths"].items()
    for method, operation in item.items()
    if method in _METHODS
]
_WITH_BODY = [p for p in _OPERATIONS if "requestBody" in p.values[2]]


def test_the_reference_has_every_surface() -> None:
    # The list below would pass vacuously on an empty document.
    assert len(_OPERATIONS) >= 77
    assert len(_WITH_BODY) >= 33


@pytest.mark.parametrize(("path", "method", "operation"), _OPERATIONS)
def test_every_operation_has_one_declared_tag_of_its_surface(
    path: str, method: str, operation: dict[str, Any]
) -> None:
    declared = {tag["name"] for tag in _DOC["tags"]}
    assert declared <= TAG_NAMES
    tags = operation.get("tags", [])
    assert len(tags) == 1, tags
    assert tags[0] in declared
    payhero = path.startswith(("/api/v2/", "/mailer/"))
    assert tags[0].startswith(PAYHERO_PREFIX) == payhero, (path, tags)


def test_every_declared_tag_is_described_and_used() -> None:
    used = {op["tags"][0] for _p, _m, op in (p.values for p in _OPERATIONS)}
    for tag in _DOC["tags"]:
        assert tag["description"].strip(), tag
    assert {tag["name"] for tag in _DOC["tags"]} == used


@pytest.mark.parametrize(("path", "method", "operation"), _OPERATIONS)
def test_every_operation_is_summarised_and_described_for_people(
    path: str, method: str, operation: dict[str, Any]
) -> None:
    route = _ROUTES[(path, method)]
    summary = operation.get("summary", "")
    # Not the permission name FastAPI would show (`Clients.Approve`, `Clients Approve`).
    assert summary
    assert not re.search(r"\w\.\w", summary), summary
    assert summary.lower() not in (route.name.lower(), route.name.replace(".", " ").lower()), summary
    assert not summary.endswith("."), summary
    own, _, access = operation["description"].rpartition("\n\n")
    assert own.strip(), f"{method.upper()} {path} has no description of its own"
    if is_protected(route):
        assert access.startswith(f"Permission: `{route.name}`. Who: "), access
    else:
        assert access == "Public: no credentials needed."


def test_the_access_line_says_who_may_call() -> None:
    approve = _DOC["paths"]["/api/v1/clients/{id}/approve"]["post"]["description"]
    assert approve.endswith(
        "Permission: `Clients.Approve`. Who: operator staff. "
        "Granted by default to the roles `SuperAdmin` and `CompanyAdmin`."
    )
    sandbox = _DOC["paths"]["/api/v1/sandbox/api-keys"]["post"]["description"]
    assert (
        "Who: operator staff, a client's portal users and API users (an API key, or the Pay Hero pair)."
        in (sandbox)
    )
    balance = _DOC["paths"]["/api/v1/wallet/balance"]["get"]["description"]
    # Only the roles its callers can hold: the others' grants open nothing.
    assert balance.endswith(
        "Who: wallet customers (their customer token). Granted by default to the role `Customer`."
    )
    collect = _DOC["paths"]["/api/v2/payments"]["post"]["description"]
    assert collect.endswith(
        "Who: API users (an API key, or the Pay Hero pair). "
        "Granted by default to the roles `ClientAdmin` and `Developer`."
    )
    login = _DOC["paths"]["/api/v1/account/login"]["post"]["description"]
    assert login.endswith("\n\nPublic: no credentials needed.")


def test_no_restructuredtext_in_the_document() -> None:
    assert "``" not in json.dumps(_DOC, ensure_ascii=False)


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = _DOC["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _examples(operation: dict[str, Any]) -> list[tuple[str, Any, dict[str, Any]]]:
    """Each request body example of ``operation``: (media type, example, the body's schema)."""
    found = []
    for media, content in operation["requestBody"]["content"].items():
        schema = content.get("schema", {})
        if "example" in content:
            found.append((media, content["example"], schema))
        for example in content.get("examples", {}).values():
            found.append((media, example["value"], schema))
        for example in _resolve(schema).get("examples", []):
            found.append((media, example, schema))
    return found


@pytest.mark.parametrize(("path", "method", "operation"), _WITH_BODY)
def test_every_request_body_has_an_example_valid_for_its_schema(
    path: str, method: str, operation: dict[str, Any]
) -> None:
    examples = _examples(operation)
    assert examples, f"{method.upper()} {path} has no request example"
    for _media, example, schema in examples:
        document = {**_DOC, **schema}  # the body's schema, resolving #/components against the document
        jsonschema_rs.validator_for(document).validate(example)


@pytest.mark.parametrize(("path", "method", "operation"), _WITH_BODY)
def test_every_json_example_is_accepted_by_its_route(
    path: str, method: str, operation: dict[str, Any]
) -> None:
    """The route's own body validation (what the server runs) takes each example, as JSON sent it."""
    field = _ROUTES[(path, method)].original.body_field
    for media, example, _schema in _examples(operation):
        if media != "application/json":
            continue
        _value, errors = field.validate(json.loads(json.dumps(example)), {}, loc=("body",))
        assert not errors, errors


@pytest.fixture(scope="module")
def server_url(sqlite_databases: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    app_settings = Settings(
        env="test",
        var_dir=tmp_path_factory.mktemp("docs"),
        database_url=sqlite_databases.new(),
        inprocess_worker=False,
    ).require_secrets()
    with LiveServer(create_app(app_settings)) as server:
        yield server.url


def test_the_served_document_is_described_and_in_docs(server_url: str) -> None:
    served = httpx.get(f"{server_url}/openapi.json").json()
    assert served == json.loads(json.dumps(_DOC))
    assert httpx.get(f"{server_url}/docs").status_code == 200
