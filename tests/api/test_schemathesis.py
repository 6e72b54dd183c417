"""Fuzz every route of the app's own OpenAPI document over real HTTP.

Fails on any 5xx and on any reply that does not match what the document
declares (status, content type, headers, body schema). Every route added later
is fuzzed from the day it lands; keep MAX_EXAMPLES such that this stays within
a few minutes.

The schema is read from the app object at import (schemathesis' lazy fixture
loader does not work with pytest 9), and a test checks that it is exactly the
document the running server serves at /openapi.json.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import positive_data_acceptance

from malipo.app import create_app
from malipo.config import Settings
from tests.fixtures.servers import LiveServer

MAX_EXAMPLES = 40

_DOCUMENT = create_app(Settings(var_dir=Path(tempfile.gettempdir()), inprocess_worker=False)).openapi()
# A generated body over the 1 MiB limit is refused with 413 before it is read: a rejection too.
_REJECTED = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429", "5xx"]
_CONFIG = SchemathesisConfig.from_dict(
    {"checks": {"negative_data_rejection": {"expected-statuses": _REJECTED}}}
)
schema = schemathesis.openapi.from_dict(_DOCUMENT, config=_CONFIG)


@pytest.fixture(scope="module")
def server_url(sqlite_databases: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    app_settings = Settings(
        env="test",
        var_dir=tmp_path_factory.mktemp("fuzz"),
        database_url=sqlite_databases.new(),
        inprocess_worker=False,
    ).require_secrets()
    with LiveServer(create_app(app_settings)) as server:
        yield server.url


def test_fuzzed_document_is_the_served_document(server_url: str) -> None:
    assert httpx.get(f"{server_url}/openapi.json").json() == _DOCUMENT


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_route_honours_its_openapi_contract(case: Any, server_url: str) -> None:
    # A schema-valid request may still be refused for business reasons (wrong password,
    # unknown id): that is not a contract breach, so "valid data is accepted" is not checked.
    case.call_and_validate(base_url=server_url, excluded_checks=[positive_data_acceptance])
