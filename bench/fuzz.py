"""A long schemathesis run against a running malipo, with a merchant's real credentials.

    .venv/bin/malipo seed-demo --json            # the demo's key, Pay Hero pair, operator
    .venv/bin/python bench/fuzz.py --url http://127.0.0.1:8765 \\
        --bearer mk_test_… --basic api_username:api_password \\
        [--operator admin@malipo.example:password] [--minutes 10]

Every operation is called with the first credentials its OpenAPI document declares that
were given: the API key (Bearer) on /api/v1, the Pay Hero pair (Basic) on /api/v2 and
/mailer, a wallet customer's token on the wallet routes (a customer is registered and
logged in with the key), the operator's portal session and CSRF token on the operator's
routes (with --operator). Two `schemathesis run`s, every phase (examples, coverage,
fuzzing, stateful) until their time is spent:

1. everything but the operations that can take the run's own credentials away
   (``tests.api.credentials.REVOKERS``), for all but the last ``--revokers-share`` of the time;
2. those operations, last, one run each in that list's order.

Checks: no 5xx, every reply as the document declares (status, content type, headers,
schema), a route declaring security refuses a request without it. A schema-valid
request may be refused for business reasons (an unknown id), so "valid data is accepted"
is not checked. Reports (JUnit, NDJSON, HAR of every request) go to ``--report-dir``; the
server's log has the traceback of any 5xx. Exits non-zero if either run failed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.api.credentials import REVOKERS  # noqa: E402

from malipo.api.openapi import (  # noqa: E402
    API_KEY,
    CSRF_COOKIE_SCHEME,
    CSRF_HEADER_SCHEME,
    CUSTOMER_JWT,
    PAYHERO_BASIC,
    PORTAL_SESSION,
)

# Statuses that count as refusing invalid data (a body over 1 MiB is refused with 413 unread).
REJECTED = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429", "5xx"]


def _toml_string(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def _customer_token(url: str, key: str) -> str:
    """A new wallet customer of the key's merchant, logged in: its JWT (good for 15 minutes)."""
    headers = {"Authorization": f"Bearer {key}"}
    customer = {"email": f"fuzz-{uuid.uuid4().hex[:8]}@example.com", "password": "correct horse battery"}
    registered = httpx.post(f"{url}/api/v1/customers/register", json=customer, headers=headers)
    registered.raise_for_status()
    token = httpx.post(f"{url}/api/v1/customers/login", json=customer, headers=headers)
    token.raise_for_status()
    return str(token.json()["accessToken"])


def _operator_session(url: str, operator: str) -> tuple[str, str]:
    email, _, password = operator.partition(":")
    reply = httpx.post(f"{url}/api/v1/account/login", json={"username": email, "password": password})
    reply.raise_for_status()
    return reply.cookies["malipo_session"], str(reply.json()["csrfToken"])


def write_config(path: Path, args: argparse.Namespace) -> None:
    """schemathesis.toml: the checks, and each security scheme's credentials."""
    auth: dict[str, dict[str, str]] = {API_KEY: {"bearer": args.bearer}}
    if args.basic:
        username, _, password = args.basic.partition(":")
        auth[PAYHERO_BASIC] = {"username": username, "password": password}
    auth[CUSTOMER_JWT] = {"bearer": args.customer_token or _customer_token(args.url, args.bearer)}
    if args.operator:
        session, csrf = _operator_session(args.url, args.operator)
        auth[PORTAL_SESSION] = {"api_key": session}
        auth[CSRF_COOKIE_SCHEME] = {"api_key": csrf}
        auth[CSRF_HEADER_SCHEME] = {"api_key": csrf}
    lines = [
        # Credentials are not fuzzed: most negative cases of a route with few inputs would only
        # mangle them and earn a 401 (schemathesis' ignored_auth check still tries without them).
        "[generation]",
        "with-security-parameters = false",
        "[checks.positive_data_acceptance]",
        "enabled = false",
        "[checks.negative_data_rejection]",
        f"expected-statuses = {json.dumps(REJECTED)}",
    ]
    for scheme, values in auth.items():
        lines.append(f"[auth.openapi.{scheme}]")
        lines += [f"{name} = {_toml_string(value)}" for name, value in values.items()]
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)


def revoker_operation_ids(document: dict[str, Any]) -> list[str]:
    found = []
    for method, path in REVOKERS:
        operation = document["paths"].get(path, {}).get(method.lower())
        if operation is not None:
            found.append(operation["operationId"])
    return found


def schemathesis_run(
    config: Path, args: argparse.Namespace, seconds: int, filters: list[str], name: str, phases: str
) -> int:
    report_dir = Path(args.report_dir) / name
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file",
        str(config),
        "run",
        f"{args.url}/openapi.json",
        "--max-time",
        str(seconds),
        "--phases",
        phases,
        "--workers",
        str(args.workers),
        "--continue-on-failure",
        "--request-timeout",
        "30",
        "--report",
        "junit,ndjson,har",
        "--report-dir",
        str(report_dir),
        *filters,
    ]
    if args.seed is not None:
        command += ["--seed", str(args.seed)]
    print(f"== {name}: {seconds} s, reports in {report_dir}", flush=True)
    # In the reports' directory: schemathesis keeps its cache (for `st replay`) where it runs.
    Path(args.report_dir).mkdir(parents=True, exist_ok=True)
    return subprocess.run(command, cwd=args.report_dir, check=False).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the running malipo")
    parser.add_argument("--bearer", required=True, help="an API key of an approved merchant's API user")
    parser.add_argument("--basic", help="the same API user's Pay Hero pair, api_username:api_password")
    parser.add_argument("--operator", help="an operator's email:password, to fuzz the operator's routes")
    parser.add_argument(
        "--customer-token", help="a wallet customer's JWT (default: register one with the key)"
    )
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--revokers-share", type=float, default=0.1, help="of the time, for the revokers")
    parser.add_argument("--workers", default="1", help="concurrent schemathesis workers, or 'auto'")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--report-dir", default=str(ROOT / "bench" / "results" / "fuzz"))
    args = parser.parse_args(argv)
    args.url = args.url.rstrip("/")
    args.report_dir = str(Path(args.report_dir).resolve())

    document = httpx.get(f"{args.url}/openapi.json").raise_for_status().json()
    revokers = revoker_operation_ids(document)
    total = max(int(args.minutes * 60), 2)
    last = max(int(total * args.revokers_share), 1)
    with tempfile.TemporaryDirectory() as scratch:
        config = Path(scratch) / "schemathesis.toml"
        write_config(config, args)
        main_filters = [f for op in revokers for f in ("--exclude-operation-id", op)]
        first = schemathesis_run(
            config, args, total - last, main_filters, "main", "examples,coverage,fuzzing,stateful"
        )
        # One run each, in order: a run does its operations in an order of its own.
        failed = [
            op
            for op in revokers
            if schemathesis_run(
                config,
                args,
                max(last // len(revokers), 1),
                ["--include-operation-id", op],
                f"last-{op}",
                "examples,coverage,fuzzing",
            )
        ]
    return 1 if first or failed else 0


if __name__ == "__main__":
    sys.exit(main())
