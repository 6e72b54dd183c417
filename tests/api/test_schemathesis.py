"""Fuzz every route of the app's own OpenAPI document over real HTTP, with real credentials.

Fails on any 5xx and on any reply that does not match what the document declares
(status, content type, headers, body schema, and that a route declaring security
refuses a request without it). Every route added later is fuzzed from the day it lands.

Each operation is called with the credentials its document declares, of a seeded,
approved merchant (its API user has the Developer role: every merchant API
permission): the Bearer API key on /api/v1, the Pay Hero Basic pair on /api/v2 and
/mailer, a wallet customer's token on the wallet routes, the operator's portal session
(with its CSRF token) on the operator's routes. Per database (SQLite, PostgreSQL):

1. every operation but those that can take the caller's own credentials away, stateless;
2. a stateful phase over the same operations (schemathesis chains them by the links it
   infers: a created channel is read, a registered customer looked up, …);
3. those that can take credentials away, last, in the order that keeps the others' callers
   in: a key that revokes itself, a role stripped of its grants, the merchant deactivated,
   the operator signed out would leave the rest of a run answering 401 or 403.

Budget: the suite's whole run matters (CI on 2 cores). With MAX_EXAMPLES = 8 generated
cases per operation (besides schemathesis' coverage cases: boundaries, wrong types, missing
fields) and STATEFUL_SCENARIOS = 15 scenarios of up to 6 steps, this module took 2 minutes
for both databases on a 2-core machine busy with other work. A longer fuzz against a running
server: ``bench/fuzz.py`` (see bench/README.md).

The schema is read from the app object at import (schemathesis' lazy fixture loader does
not work with pytest 9), and a test checks that it is exactly the document the running
server serves at /openapi.json.
"""

from __future__ import annotations

import copy
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import FlakyStrategyDefinition
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig

from malipo.app import create_app
from malipo.config import Settings
from malipo.core.logging import configure_logging
from tests.api.credentials import REVOKERS, Credentials, seed
from tests.fixtures.databases import BACKENDS
from tests.fixtures.servers import LiveServer

MAX_EXAMPLES = 8
STATEFUL_SCENARIOS = 15
STATEFUL_STEPS = 6

_DOCUMENT = create_app(Settings(var_dir=Path(tempfile.gettempdir()), inprocess_worker=False)).openapi()
# A generated body over the 1 MiB limit is refused with 413 before it is read: a rejection too.
_REJECTED = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429", "5xx"]
_CONFIG = SchemathesisConfig.from_dict(
    {
        "checks": {
            "negative_data_rejection": {"expected-statuses": _REJECTED},
            # A schema-valid request may still be refused for business reasons (wrong password,
            # unknown id): that is not a contract breach.
            "positive_data_acceptance": {"enabled": False},
        },
        # Credentials are not fuzzed (that a route refuses bad ones is the ignored_auth check's and
        # test_openapi_security's): left on, most negative cases of a route with few inputs would
        # only mangle them and earn a 401.
        "generation": {"with-security-parameters": False},
    }
)
# A copy: schemathesis adds to the document it is given (the links it infers for the stateful phase).
schema = schemathesis.openapi.from_dict(copy.deepcopy(_DOCUMENT), config=_CONFIG)


def _is_revoker(ctx: Any) -> bool:
    return (ctx.operation.method.upper(), ctx.operation.path) in REVOKERS


# The credentials and the log of the server under test, set by the `served` fixture.
_CURRENT: dict[str, Any] = {}


@schema.auth(refresh_interval=None)
class _DeclaredCredentials:
    """Presents, for each operation, the first credentials its document declares."""

    def get(self, case: Any, context: Any) -> Credentials | None:
        found: Credentials | None = _CURRENT.get("credentials")
        return found

    def set(self, case: Any, credentials: Credentials, context: Any) -> None:
        operation = case.operation.definition.raw
        requirements = operation.get("security") or []
        if requirements:
            sent = credentials.present(requirements[0], operation.get("x-callers"))
            case.headers = {**(case.headers or {}), **sent.headers}
            case.cookies = {**(case.cookies or {}), **sent.cookies}


def _authenticated(case: Any) -> Any:
    """``case`` with the credentials of the server under test, unless it is about leaving them out.

    Cases of schemathesis' coverage phase are made when the tests are collected, before any
    server runs: they carry made-up credentials, replaced here.
    """
    if not case.operation.schema.is_security_param_negated(case):
        # Through the schema's auth storage, so that schemathesis knows the credentials are
        # meant to be valid (its ignored_auth check then tries the case without them).
        schema.auth.set(case, schemathesis.AuthContext(operation=case.operation, app=None))
    return case


def _note_server_error(failure: BaseException) -> None:
    """Add the traceback of the server's last unhandled error, if any, to ``failure``."""
    errors = [line for line in _CURRENT["log"].read_text().splitlines() if '"http.unhandled_error"' in line]
    if errors:
        failure.add_note("The server's last unhandled error:\n" + json.loads(errors[-1])["exception"])


def _call_and_validate(case: Any, url: str) -> None:
    try:
        _authenticated(case).call_and_validate(base_url=url)
    except Exception as failure:
        _note_server_error(failure)
        raise


_HYPOTHESIS = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.generate],
)


@pytest.fixture(scope="module", params=BACKENDS)
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A live server on a fresh database of each backend, its demo merchant seeded and signed in."""
    databases = request.getfixturevalue(
        "sqlite_databases" if request.param == "sqlite" else "postgres_databases"
    )
    app_settings = Settings(
        env="test",
        var_dir=tmp_path_factory.mktemp("fuzz"),
        database_url=databases.new(),
        inprocess_worker=False,
    ).require_secrets()
    # JSON, as served: the console renderer's tracebacks (with locals) take seconds to draw on the
    # event loop, and a 5xx would then stall every request after it. A 5xx's traceback is here:
    log = app_settings.var_dir / "server.log"
    with log.open("a") as stream:
        configure_logging(json=True, level="WARNING", stream=stream)
        try:
            with LiveServer(create_app(app_settings)) as server:
                _CURRENT["log"] = log
                _CURRENT["credentials"] = seed(server.url, app_settings.resolved_database_url)
                yield server.url
        finally:
            _CURRENT.clear()
            configure_logging(json=True, level="INFO")


def test_fuzzed_document_is_the_served_document(served: str) -> None:
    assert httpx.get(f"{served}/openapi.json").json() == _DOCUMENT


@schema.exclude(_is_revoker).parametrize()
@_HYPOTHESIS
def test_every_route_honours_its_openapi_contract(case: Any, served: str) -> None:
    _call_and_validate(case, served)


_stateful_schema = schema.exclude(_is_revoker)


def test_call_sequences_honour_the_contract(served: str) -> None:
    """Stateful: scenarios of calls chained by the links schemathesis infers from the document.

    A scenario's next rule depends on what the server answered before, which Hypothesis may
    take for flaky data generation (FlakyStrategyDefinition) and stop. That is no finding
    about the server: every reply of every step ran through the checks, and a check's failure
    is kept and raised whatever Hypothesis says next; the run goes on until the scenarios are done.
    """
    scenarios = 0
    failures: list[Exception] = []

    class Workflow(_stateful_schema.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            nonlocal scenarios
            scenarios += 1

        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"base_url": served}

        def validate_response(self, response: Any, case: Any, *args: Any, **kwargs: Any) -> None:
            try:
                super().validate_response(response, case, *args, **kwargs)
            except Exception as failure:
                _note_server_error(failure)
                failures.append(failure)
                raise

    for _attempt in range(5):
        if scenarios >= STATEFUL_SCENARIOS:
            break
        try:
            Workflow.run(
                settings=settings(
                    max_examples=STATEFUL_SCENARIOS - scenarios,
                    stateful_step_count=STATEFUL_STEPS,
                    deadline=None,
                    suppress_health_check=list(HealthCheck),
                    phases=[Phase.generate],
                    database=None,
                )
            )
        except FlakyStrategyDefinition:
            if failures:
                raise failures[0] from None
    assert failures == []
    assert scenarios >= STATEFUL_SCENARIOS


@pytest.mark.parametrize(("method", "path"), REVOKERS, ids=[f"{m} {p}" for m, p in REVOKERS])
def test_credential_revoking_routes_last(method: str, path: str, served: str) -> None:
    operation = schema[path][method]
    cases = st.one_of([operation.as_strategy(mode) for mode in GenerationMode])

    @given(case=cases)
    @_HYPOTHESIS
    def fuzz(case: Any) -> None:
        _call_and_validate(case, served)

    fuzz()
