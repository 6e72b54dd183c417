"""One Settings class, read from ``MALIPO_*`` environment variables.

Secrets absent from the environment are generated on first run and kept in
``<var_dir>/secrets.json`` (mode 0600). In production (``MALIPO_ENV=production``)
malipo refuses to start unless every secret comes from the environment.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import secrets
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, PrivateAttr, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# Each secret: how to generate one. Keys are the Settings field names.
_SECRET_GENERATORS = {
    "secret_key": lambda: secrets.token_urlsafe(48),
    # AES-256-GCM key, base64: encrypts SMTP passwords, card data, channel credentials.
    "encryption_key": lambda: base64.b64encode(secrets.token_bytes(32)).decode(),
}


class ConfigurationError(RuntimeError):
    """Settings that cannot work; malipo refuses to start with these."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MALIPO_", extra="ignore", frozen=False)

    env: Literal["development", "test", "production"] = "development"
    var_dir: Path = Path("var")
    database_url: str = ""
    redis_url: str | None = None
    # Where malipo is reached from outside: links in emails, provider callback URLs, and the
    # address of the built-in simulators (malipo calls itself there). Unset: where `malipo serve`
    # listens (MALIPO_HOST and MALIPO_PORT, or --host and --port; 0.0.0.0 and :: read as 127.0.0.1).
    public_url: str = ""
    host: str = "127.0.0.1"
    port: int = 8000
    # Whether public_url was derived from host and port (so it follows where serve binds).
    _public_url_derived: bool = PrivateAttr(default=False)
    # On SIGTERM `malipo serve` stops listening and gives the requests in flight (and the in-process
    # worker's running jobs) this long to finish; then it cuts them short (jobs go back to the queue),
    # writes what it buffers and exits. A shutdown still stuck 5 s later is forced (exit code 1).
    shutdown_grace_seconds: float = Field(default=10.0, gt=0)

    secret_key: SecretStr | None = None
    encryption_key: SecretStr | None = None

    log_json: bool = True
    log_level: str = "INFO"

    db_pool_size: int = 10
    db_max_overflow: int = 20
    db_echo: bool = False
    sqlite_busy_timeout_ms: int = 10_000

    inprocess_worker: bool = True
    worker_concurrency: int = 16
    # Jobs of batched kinds (STK pushes, webhook deliveries …) in flight at once, on top of the
    # concurrency above: a batch is a few transactions and a burst of HTTP calls over one client.
    worker_batch_size: int = 256
    # Connections the worker's HTTP client keeps open (requests beyond wait their turn): about
    # the requests in flight at once, which for Daraja is pushes/s times its reply time.
    http_connections: int = 32
    worker_poll_seconds: float = 0.5
    worker_lease_seconds: float = 60.0
    worker_shutdown_grace_seconds: float = 10.0
    # Extra modules that register job handlers (comma separated), imported by the worker.
    job_modules: Annotated[list[str], NoDecode] = Field(default_factory=list)

    max_body_bytes: int = 1_048_576

    # Every API call is recorded; entries are written in batches this often.
    audit_enabled: bool = True
    audit_flush_seconds: float = 1.0

    # Operator mail (credentials, resets, keys). Unset: mail is kept for the dev mailbox
    # (`malipo mail list`, /portal/dev/mailbox) instead of sent.
    # smtp://user:pass@host:587 (STARTTLS), smtps://user:pass@host:465 (implicit TLS),
    # smtp://host:1025?tls=none for a local test server.
    smtp_url: SecretStr | None = None
    mail_from: str = "malipo <no-reply@malipo.local>"
    # Merchants' own SMTP servers (/mailer/register): may they resolve to loopback, private,
    # link-local or reserved addresses? Unset: only mailers registered with a sandbox key may
    # (a local test server); live ones may not, so the mailer cannot probe the internal network.
    smtp_allow_private: bool | None = None

    # Messaging. SMS goes through Africa's Talking when its API key is set, else through the
    # built-in simulator (mounted at /_sim/africastalking); sandbox keys always use the simulator.
    africastalking_username: str = "sandbox"
    africastalking_api_key: SecretStr | None = None
    # Unset: AT's live API when a key is set (https://api.africastalking.com).
    africastalking_base_url: str | None = None
    # Unset: the built-in Cloud API simulator (/_sim/whatsapp), whatever a session is bound to.
    # Set it (https://graph.facebook.com) to send through Meta for sessions with Cloud credentials.
    whatsapp_cloud_base_url: str | None = None
    # Meta's app secret: when set, status webhooks of Cloud sessions must carry its signature.
    whatsapp_app_secret: SecretStr | None = None
    # Mount the AT and WhatsApp simulators in `malipo serve` (the connectors' default target).
    simulators_enabled: bool = True
    # A flat price per SMS segment in the merchant's currency, debited from its service wallet.
    sms_price_per_segment: str = "0.80"
    # Where local numbers (07…) are read when a merchant has no country (ISO 3166 alpha-2).
    messaging_default_country: str = "KE"
    sms_bulk_max_recipients: int = 10_000
    # Recipients per Africa's Talking request in a bulk send.
    sms_bulk_chunk: int = 100
    # A bulk send is paced at this many recipients (SMS) or messages (WhatsApp) per second; 0: unpaced.
    sms_bulk_rate: float = 500.0
    whatsapp_bulk_rate: float = 20.0
    whatsapp_bulk_max_recipients: int = 10_000

    # M-Pesa (Daraja). Base URL unset: the built-in simulator, mounted at /_sim/daraja.
    # Sandbox (mk_test_) keys always use the simulator, whatever is set here.
    daraja_base_url: str | None = None
    daraja_consumer_key: SecretStr | None = None
    daraja_consumer_secret: SecretStr | None = None
    daraja_shortcode: str = "174379"
    daraja_passkey: SecretStr | None = None
    daraja_b2c_initiator: str = "testapi"
    daraja_b2c_security_credential: SecretStr | None = None
    # Where sandbox traffic (and live traffic with no base URL) goes; default {public_url}/_sim/daraja.
    daraja_simulator_url: str | None = None
    # Seconds the mounted simulator waits before it sends a callback.
    daraja_simulator_delay: float = 1.0
    # Source addresses (comma-separated CIDRs) allowed to call /callbacks/daraja/...; empty: any.
    daraja_callback_allow: str = ""
    # The header your reverse proxy appends the client's address to (e.g. X-Forwarded-For); its
    # right-most entry is then the source address. Empty: the socket peer.
    trusted_proxy_header: str = ""
    # Seconds between asks of each rail's balance (worker job); 0: never on its own.
    rail_balance_interval_seconds: float = 3600.0
    # Airtel Money (Airtel Africa's Open API, docs/airtel-money.md), network code 63903. Base URL
    # unset: the built-in simulator, mounted at /_sim/airtel. Sandbox (mk_test_) keys always use
    # the simulator, whatever is set here. The callback URL to set in Airtel's portal is
    # malipo.providers.registry.airtel_callback_url (one per app, not per request).
    airtel_base_url: str | None = None
    airtel_client_id: str | None = None
    airtel_client_secret: SecretStr | None = None
    # The operating company (X-Country, X-Currency); malipo's mobile money is Kenyan shillings.
    airtel_country: str = "KE"
    airtel_currency: str = "KES"
    # Disbursements: Airtel's RSA public key for the PIN (base64 DER as Airtel publishes it, or
    # PEM) and the merchant's disbursement PIN, which is sent only encrypted under that key.
    airtel_pin_public_key: str | None = None
    airtel_disbursement_pin: SecretStr | None = None
    # Callback authentication (Airtel's portal): the app's callback private key. Set, a callback
    # from Airtel is taken only with a valid ``hash`` (HMAC-SHA256 under this key); unset, Airtel's
    # callbacks are taken on their secret URL alone. The simulator always signs its callbacks.
    airtel_callback_key: SecretStr | None = None
    # Where sandbox traffic (and live traffic with no base URL) goes; default {public_url}/_sim/airtel.
    airtel_simulator_url: str | None = None
    # Seconds the mounted simulator waits before the simulated payer answers (and it calls back).
    airtel_simulator_delay: float = 1.0
    # No Daraja callback this long after the push: the worker asks Daraja (STK query).
    stk_query_after_seconds: float = 90.0
    # No B2C result this long after a payout was sent: the worker asks Daraja (transaction status).
    payout_query_after_seconds: float = 120.0
    # Daily reconciliation against the rails: a day is a calendar day in this time zone; the
    # worker reconciles the previous day at this hour of it (within Daraja's 48-hour window).
    reconciliation_timezone: str = "Africa/Nairobi"
    reconciliation_daily: bool = True
    reconciliation_hour: int = Field(default=2, ge=0, le=23)
    # Disbursement batches (docs/disbursements.md): items per batch at most; batches up to
    # `inline` items are processed in the request, larger ones by the worker `chunk` items per
    # transaction; a batch whose total is above the threshold (whole shillings) waits for a second
    # person's approval (unset: none does).
    disbursement_max_items: int = Field(default=100_000, ge=1, le=1_000_000)
    disbursement_inline_items: int = Field(default=200, ge=0, le=10_000)
    disbursement_chunk: int = Field(default=500, ge=1, le=10_000)
    disbursement_approval_threshold: int | None = Field(default=None, ge=0)
    # The body limit of a batch's submission (JSON, CSV or an upload), instead of max_body_bytes.
    disbursement_max_body_bytes: int = Field(default=64 * 1_048_576, ge=1024)
    # No status report this long after a bank transfer was sent: the worker asks the bank rail
    # (then again after twice as long, and so on).
    bank_query_after_seconds: float = 60.0
    # Bank payouts are M-Pesa B2B payments to the bank's paybill. A JSON object of Pay Hero bank
    # network code -> paybill that adds to or overrides malipo's table, e.g. {"16": "123456"}.
    bank_paybills: dict[str, str] = Field(default_factory=dict)
    # Bank transfers (ISO 20022 pacs.008/pacs.002, docs/bank-rail.md). Base URL unset: the built-in
    # simulator, mounted at /_sim/bank. Sandbox (mk_test_) keys always use the simulator.
    bank_rail_base_url: str | None = None
    # The rail's API key (sent as a Bearer token); required with a base URL.
    bank_rail_api_key: SecretStr | None = None
    # Where sandbox traffic (and live traffic with no base URL) goes; default {public_url}/_sim/bank.
    bank_rail_simulator_url: str | None = None
    # Seconds the mounted simulator waits before it sends a status callback.
    bank_rail_simulator_delay: float = 1.0
    # The gateway's own account at the rail, which bank transfers are debited from.
    bank_settlement_account: str = Field(default="SIMULATOR-SETTLEMENT-0001", min_length=1, max_length=34)
    # Cards (a JSON acquirer API with EMV 3-D Secure 2, docs/card-acquirer.md). Base URL unset: the
    # built-in simulator, mounted at /_sim/cards. Sandbox (mk_test_) keys always use the simulator.
    card_acquirer_base_url: str | None = None
    # The acquirer's API key (sent as a Bearer token); required with a base URL.
    card_acquirer_api_key: SecretStr | None = None
    # Where sandbox traffic (and live traffic with no base URL) goes; default {public_url}/_sim/cards.
    card_acquirer_simulator_url: str | None = None
    # Merchant callbacks: attempts before a delivery is marked failed, and the backoff between
    # them (seconds: doubling from the base, jittered, capped at the max).
    webhook_max_attempts: int = 8
    webhook_retry_base_seconds: float = 2.0
    webhook_retry_max_seconds: float = 900.0

    # Fees, in the collection's currency: percent of the amount plus a fixed part, kept
    # between a minimum and a maximum (major units, e.g. "1.5", "0", "1.00", "1000.00").
    # The defaults: an operator may give a merchant its own (PUT /api/v1/clients/{id}/pricing/{kind}).
    collection_fee_percent: str = "1.5"
    collection_fee_fixed: str = "0"
    collection_fee_min: str = "1.00"
    collection_fee_max: str = "1000.00"
    payout_fee_percent: str = "0"
    payout_fee_fixed: str = "15.00"
    payout_fee_min: str = "0"
    payout_fee_max: str = "1000.00"
    # Card captures: the acquirer's cost is higher than M-Pesa's, so is the default.
    card_fee_percent: str = "2.9"
    card_fee_fixed: str = "0"
    card_fee_min: str = "0"
    card_fee_max: str = "10000.00"

    @field_validator("reconciliation_timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r} (e.g. Africa/Nairobi)") from exc
        return value

    @field_validator("job_modules", mode="before")
    @classmethod
    def _split_modules(cls, value: object) -> object:
        if isinstance(value, str):
            return [m.strip() for m in value.split(",") if m.strip()]
        return value

    @field_validator("daraja_callback_allow")
    @classmethod
    def _allow_list_of_networks(cls, value: str) -> str:
        for part in (p.strip() for p in value.split(",")):
            if part:
                ipaddress.ip_network(part, strict=False)  # ValueError names the bad entry
        return value

    @field_validator("bank_paybills", mode="before")
    @classmethod
    def _paybills_as_digits(cls, value: object) -> object:
        if not isinstance(value, dict):
            return value
        paybills = {str(code).strip(): str(paybill).strip() for code, paybill in value.items()}
        for code, paybill in paybills.items():
            if not (paybill.isdigit() and 5 <= len(paybill) <= 7):
                raise ValueError(f"the paybill for bank {code!r} must be 5 to 7 digits, not {paybill!r}")
        return paybills

    @field_validator("public_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.strip().rstrip("/")

    @model_validator(mode="after")
    def _derive_public_url(self) -> Settings:
        if not self.public_url:
            self.public_url = local_url(self.host, self.port)
            self._public_url_derived = True
        return self

    @model_validator(mode="after")
    def _bank_rail_needs_its_key(self) -> Settings:
        if self.bank_rail_base_url and self.bank_rail_api_key is None:
            raise ValueError("MALIPO_BANK_RAIL_API_KEY is required when MALIPO_BANK_RAIL_BASE_URL is set")
        return self

    @model_validator(mode="after")
    def _airtel_needs_its_credentials(self) -> Settings:
        if self.airtel_base_url and not (self.airtel_client_id and self.airtel_client_secret):
            raise ValueError(
                "MALIPO_AIRTEL_CLIENT_ID and MALIPO_AIRTEL_CLIENT_SECRET are required when "
                "MALIPO_AIRTEL_BASE_URL is set"
            )
        if (self.airtel_pin_public_key is None) != (self.airtel_disbursement_pin is None):
            raise ValueError(
                "MALIPO_AIRTEL_PIN_PUBLIC_KEY and MALIPO_AIRTEL_DISBURSEMENT_PIN go together: "
                "set both or neither"
            )
        return self

    @model_validator(mode="after")
    def _card_acquirer_needs_its_key(self) -> Settings:
        if self.card_acquirer_base_url and self.card_acquirer_api_key is None:
            raise ValueError(
                "MALIPO_CARD_ACQUIRER_API_KEY is required when MALIPO_CARD_ACQUIRER_BASE_URL is set"
            )
        return self

    @property
    def public_url_derived(self) -> bool:
        """True when MALIPO_PUBLIC_URL is unset and the URL is where malipo listens."""
        return self._public_url_derived and self.public_url == local_url(self.host, self.port)

    def listen_on(self, host: str, port: int) -> None:
        """Record where the server listens (``port`` as bound, never 0); a derived public URL follows."""
        derived = self.public_url_derived
        self.host, self.port = host, port
        if derived:
            self.public_url = local_url(host, port)

    @cached_property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.var_dir / 'malipo.db').as_posix()}"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")

    def require_secrets(self) -> Settings:
        """Fill absent secrets from ``var/secrets.json``, generating it on first run.

        Production never generates: a missing secret there is a configuration error.
        """
        missing = [name for name in _SECRET_GENERATORS if getattr(self, name) is None]
        if not missing:
            return self._configure_encryption()
        if self.env == "production":
            names = ", ".join(f"MALIPO_{n.upper()}" for n in missing)
            raise ConfigurationError(f"production needs these secrets in the environment: {names}")
        stored = _load_or_create_secrets(self.var_dir / "secrets.json")
        for name in missing:
            setattr(self, name, SecretStr(stored[name]))
        return self._configure_encryption()

    def _configure_encryption(self) -> Settings:
        from malipo.core.crypto import configure_encryption

        assert self.encryption_key is not None
        configure_encryption(self.encryption_key.get_secret_value())
        return self


def local_url(host: str, port: int) -> str:
    """The URL of a server listening on ``host``:``port``, as a client on this machine reaches it."""
    host = host.strip().strip("[]")
    if host in ("", "0.0.0.0", "::"):  # noqa: S104 - every interface: reach it on loopback
        host = "127.0.0.1"
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    return f"http://{host}:{port}"


def _load_or_create_secrets(path: Path) -> dict[str, str]:
    stored: dict[str, str] = {}
    if path.exists():
        stored = json.loads(path.read_text())
    if all(name in stored for name in _SECRET_GENERATORS):
        return stored
    for name, generate in _SECRET_GENERATORS.items():
        stored.setdefault(name, generate())
    path.parent.mkdir(parents=True, exist_ok=True)
    # Create with 0600 from the first byte: never a window where others can read it.
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(stored, fh, indent=2)
    os.replace(tmp, path)
    return stored


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment, with secrets resolved."""
    return Settings(**overrides).require_secrets()  # type: ignore[arg-type]
