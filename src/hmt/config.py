"""Settings from the environment (DESIGN section 5): every name, its default and its rule.

An invalid value stops start-up with a message naming the variable and the rule;
secrets are `SecretStr`, so they never appear in a repr, a log line or a traceback.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
from collections.abc import Iterable, Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from hmt.core.errors import HmtError
from hmt.core.outbound import Network, parse_nets

PREFIX = "HMT_"
# Upstox's hosts (docs/upstox/FACTS.md 2.1, 4); named here, not imported: settings are
# read before any adapter is chosen, and the composition alone imports hmt.upstox.
UPSTOX_API_URL = "https://api.upstox.com"
UPSTOX_ORDER_URL = "https://api-hft.upstox.com"
UPSTOX_MASTER_PATH = "/market-quote/instruments/exchange/complete.json.gz"
UPSTOX_MASTER_URL = "https://assets.upstox.com" + UPSTOX_MASTER_PATH
DEFAULT_DATABASE_URL = "sqlite:///hmt.db"  # a file in the working directory


class Broker(StrEnum):
    """HMT_BROKER: a live account at Kite or Upstox, or paper against a simulator."""

    KITE = "kite"
    UPSTOX = "upstox"
    PAPER = "paper"  # the simulator named by HMT_PAPER_BROKER; refused off loopback


class BrokerApi(StrEnum):
    """Whose API the engine speaks (docs/upstox/WIRING.md, "Choosing the broker")."""

    KITE = "kite"
    UPSTOX = "upstox"


class ClaimDurability(StrEnum):
    """Whether a claim's commit waits for the disk (docs/engine.md)."""

    ASYNC = "async"  # not flushed; reconciliation with the broker's book covers a lost one
    SYNC = "sync"  # flushed before the order leaves (the earlier behaviour)


class SqliteWriters(StrEnum):
    """How this process's SQLite writers meet the one write lock (docs/store.md)."""

    QUEUED = "queued"  # they take turns at an in-process gate, the claims first
    BUSY_WAIT = "busy_wait"  # they race in SQLite's busy handler (before issue 12)


class ClaimStatements(StrEnum):
    """How the claim's statements are made (docs/engine.md, "The claim's CPU")."""

    INLINE = "inline"  # raw; on SQLite on the loop's thread, its own connection (no call)
    RAW = "raw"  # compiled once, run on the driver's own connection (one call)
    CACHED = "cached"  # built once per shape with bound parameters; compiled once
    BUILT = "built"  # built and compiled afresh for each claim (before issue 12)


class LoadPrices(StrEnum):
    """Where PostgreSQL's start-up load takes the wire units (docs/engine.md)."""

    STORED = "stored"  # the units columns the database keeps (revision 0008)
    COMPUTED = "computed"  # price x divisor computed in the query (issue 12's first pass)
    DECIMAL = "decimal"  # every price read as a Decimal (before issue 12)


class LoadRows(StrEnum):
    """How the `stored` start-up load on PostgreSQL turns rows into triggers (docs/engine.md)."""

    DIRECT = "direct"  # one generated loop per batch, the enums as one column
    FIELDS = "fields"  # one converter call per row (issue 12's third pass)


class TickMode(StrEnum):
    LTP = "ltp"
    QUOTE = "quote"
    FULL = "full"


class ApiLoop(StrEnum):
    THREAD = "thread"  # the API on its own thread and event loop (docs/engine.md)
    ENGINE = "engine"  # the API on the engine's event loop, as before issue 12


class ConfigError(HmtError, ValueError):
    """The environment holds a value hmt cannot run with; the message names it."""


_Millis = Annotated[int, Field(ge=0)]


class Settings(BaseSettings):
    """hmt's configuration. Field `name` is read from `HMT_NAME`."""

    model_config = SettingsConfigDict(
        env_prefix=PREFIX, extra="ignore", frozen=True, hide_input_in_errors=True
    )

    engine_enabled: bool = True  # the kill switch
    max_retries: Annotated[int, Field(ge=0, le=20)] = 2
    retry_backoff_ms: _Millis = 1000  # doubled after each retry
    health_check_interval_ms: Annotated[int, Field(ge=100)] = 30_000
    reconnect_delay_ms: _Millis = 5000
    database_url: str = DEFAULT_DATABASE_URL
    db_auto_upgrade: bool = True  # run migrations at start-up; off when a DBA runs them
    broker: Broker = Broker.PAPER
    # Which simulator paper mode speaks to: `hmt sim` (kite) or `hmt sim --broker upstox`.
    paper_broker: BrokerApi = BrokerApi.KITE
    kite_api_key: str | None = None
    kite_api_secret: SecretStr | None = None
    kite_access_token: SecretStr | None = None
    kite_api_url: str = "https://api.kite.trade"
    kite_ws_url: str = "wss://ws.kite.trade"
    # Every Kite REST call's timeout (the official client's 7 s). A call that
    # times out after sending is ambiguous: the order is looked up by tag.
    kite_timeout_ms: Annotated[int, Field(ge=50, le=120_000)] = 7000
    # The order leg's HTTP library (bench/bench_http.py measured aiohttp the faster);
    # httpx, the client before issue 12, stays selectable for the side-by-side.
    kite_http: Literal["aiohttp", "httpx"] = "aiohttp"
    # Upstox (docs/upstox/): HMT_BROKER=upstox, or paper with HMT_PAPER_BROKER=upstox.
    upstox_api_url: str = UPSTOX_API_URL
    # Order writes go to api-hft.upstox.com; unset: that host when HMT_UPSTOX_API_URL is
    # Upstox's own, else HMT_UPSTOX_API_URL (a simulator serves both on one port).
    upstox_order_url: str | None = None
    # The instrument master; unset: assets.upstox.com's when HMT_UPSTOX_API_URL is Upstox's
    # own, else the same path on HMT_UPSTOX_API_URL (as the simulator serves it).
    upstox_master_url: str | None = None
    upstox_client_id: str | None = None
    upstox_client_secret: SecretStr | None = None
    upstox_redirect_uri: str | None = None
    upstox_access_token: SecretStr | None = None
    upstox_timeout_ms: Annotated[int, Field(ge=50, le=120_000)] = 7000
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 8000
    secret_key: SecretStr | None = None
    tick_mode: TickMode = TickMode.LTP
    kite_login_url: str = "https://kite.zerodha.com/connect/login"
    # The API's resource limits (RELIABILITY.md, security table).
    max_body_bytes: Annotated[int, Field(ge=1024, le=16 * 1024 * 1024)] = 64 * 1024
    # POST /triggers/bulk's own cap: 1000 triggers of up to ~500 bytes each fit in 1 MiB.
    max_bulk_body_bytes: Annotated[int, Field(ge=1024, le=64 * 1024 * 1024)] = 1024 * 1024
    max_triggers_per_user: Annotated[int, Field(ge=1, le=1_000_000)] = 1000
    # 10 writes a second, bursts of 60: room for a scripted morning set-up, not for a flood.
    rate_limit_writes_per_min: Annotated[int, Field(ge=0, le=1_000_000)] = 600  # 0: off
    metrics_public: bool = False  # /metrics without an operator token
    # Where the API's handlers run: a thread of their own (a busy API cannot delay a
    # tick) or, for comparison, the engine's own event loop (docs/engine.md).
    api_loop: ApiLoop = ApiLoop.THREAD
    # Requests the API handles at once; the next is a 503 with Retry-After at once. About
    # the API's database pool (5 + 10 overflow): more would only queue for a connection.
    api_max_in_flight: Annotated[int, Field(ge=1, le=100_000)] = 16
    # Which engine instance a claim belongs to (docs/engine.md, "Two engines on one
    # database"): stable across restarts, unique among the engines sharing a database.
    engine_id: Annotated[str, Field(max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")] | None = None
    # How long a claim is its engine's without renewal; unset: max(30 s, 2 x timeout + 2 s).
    claim_lease_ms: Annotated[int, Field(ge=1000, le=3_600_000)] | None = None
    # `async`: a claim's commit does not wait for the disk; exactly once then rests on
    # reconciliation with the broker's order book (docs/engine.md). `sync`: it waits.
    claim_durability: ClaimDurability = ClaimDurability.ASYNC
    # SQLite: `queued` makes this process's writers (the engine's, the API's) take turns,
    # a claim before any other waiting writer; `busy_wait` leaves them to SQLite's busy
    # handler, which polls with growing sleeps and serves nobody in order (docs/store.md).
    sqlite_writers: SqliteWriters = SqliteWriters.QUEUED
    # `raw` runs SQLite's claim on aiosqlite's thread, `cached` runs the claim through
    # SQLAlchemy, `built` makes its statements afresh each time (before issue 12): for the
    # benchmark's side by side comparison only (docs/engine.md, "The claim on the loop's
    # own connection").
    claim_statements: ClaimStatements = ClaimStatements.INLINE
    # `stored` reads the price units the database keeps; `computed` and `decimal` are the
    # earlier start-up loads, for the benchmark's side by side comparison only.
    load_prices: LoadPrices = LoadPrices.STORED
    # `direct` builds each batch's triggers in one generated loop; `fields`, the third
    # pass's converter, for the benchmark's side by side comparison only.
    load_rows: LoadRows = LoadRows.DIRECT
    # A time leg whose time passed while the engine could not fire (down, restarting,
    # held) fires only this late at most; later, its trigger ends `expired` (docs/engine.md).
    time_grace_s: Annotated[int, Field(ge=0, le=86_400)] = 60
    # The performance history: one row of the key figures this often (0: none written);
    # folded to a row a minute after an hour, deleted after a day (docs/operations.md).
    metrics_sample_s: Annotated[int, Field(ge=0, le=3_600)] = 10
    # The live tick recorder (docs/backtest.md): a directory to record every tick the
    # engine is handed, for `hmt backtest --recording`; unset: nothing is recorded.
    record_ticks: Path | None = None
    # Its bound on disk: past this the oldest files are deleted.
    record_max_mb: Annotated[int, Field(ge=1, le=1_000_000)] = 512
    # Notifications (docs/notifications.md). Ranges a user's delivery URL may reach
    # although loopback, private or link-local (comma-separated CIDRs; none by default).
    notify_allow_nets: str = ""
    notify_queue: Annotated[int, Field(ge=10, le=1_000_000)] = 1000  # notices waiting, at most
    notify_retries: Annotated[int, Field(ge=0, le=10)] = 3  # more tries after a failed send
    notify_timeout_ms: Annotated[int, Field(ge=100, le=120_000)] = 10_000  # per send
    # Where users reach this hmt (the login link in a notice); unset: http://HOST:PORT.
    public_url: str | None = None
    # Brackets: how often the order book is read for the entry orders still waiting for
    # fills, besides every ticker reconnection and start (docs/engine.md, "Brackets").
    fill_sweep_ms: _Millis = 5000
    # Trailing stops that moved are written at most this often, and at shutdown; a crash
    # loses at most the moves of one interval (docs/engine.md, "Trailing stops").
    trail_flush_ms: Annotated[int, Field(ge=50, le=600_000)] = 1000
    # While ticks flow, the firing path is rehearsed this often (microseconds) on a probe
    # of its own, so that a fire finds it in the CPU's caches; 0 (the default): never. It
    # halves a fire's evaluate time here for some 10 % of a core at 1000 us
    # (docs/engine.md, "The evaluate path in the run (issue 12)").
    fire_rehearsal_us: Annotated[int, Field(ge=0, le=1_000_000)] = 0
    # The cluster (docs/cluster.md): NATS server URLs (comma-separated) of the JetStream
    # that holds the partition leases; unset, hmt runs as one node. PostgreSQL only.
    cluster_url: str | None = None
    # Instruments are hashed into this many partitions; the same on every node.
    cluster_partitions: Annotated[int, Field(ge=1, le=4096)] = 64
    # A partition lease's time-to-live, renewed every third of it; the same on every
    # node. A dead node's partitions move within about TTL + TTL/3.
    cluster_lease_ttl_s: Annotated[float, Field(ge=1.0, le=60.0)] = 3.0

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        scheme = value.split("://", 1)[0] if "://" in value else ""
        if scheme.split("+", 1)[0] not in {"sqlite", "postgresql", "postgres"}:
            raise ValueError("must start with sqlite:// or postgresql://")
        return value

    @field_validator("kite_api_url", "kite_ws_url", "kite_login_url")
    @classmethod
    def _url(cls, value: str, info: object) -> str:
        name = getattr(info, "field_name", "")
        wanted = ("ws://", "wss://") if name == "kite_ws_url" else ("http://", "https://")
        if not value.startswith(wanted):
            raise ValueError(f"must start with {' or '.join(wanted)}")
        return value.rstrip("/")

    @field_validator(
        "upstox_api_url", "upstox_order_url", "upstox_master_url", "upstox_redirect_uri"
    )
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return None if value is None else value.rstrip("/")

    @property
    def broker_api(self) -> BrokerApi:
        """Whose API the engine speaks: HMT_BROKER's, or HMT_PAPER_BROKER's in paper mode."""
        if self.broker is Broker.PAPER:
            return self.paper_broker
        return BrokerApi(self.broker.value)

    @property
    def broker_timeout_ms(self) -> int:
        """Every call to the chosen broker's REST API times out after this long."""
        if self.broker_api is BrokerApi.UPSTOX:
            return self.upstox_timeout_ms
        return self.kite_timeout_ms

    @property
    def upstox_orders_url(self) -> str:
        """Where Upstox's order writes go (HMT_UPSTOX_ORDER_URL, or as its comment says)."""
        if self.upstox_order_url is not None:
            return self.upstox_order_url
        return UPSTOX_ORDER_URL if self.upstox_api_url == UPSTOX_API_URL else self.upstox_api_url

    @property
    def upstox_master(self) -> str:
        """Where the Upstox master is read (HMT_UPSTOX_MASTER_URL, or as its comment says)."""
        if self.upstox_master_url is not None:
            return self.upstox_master_url
        if self.upstox_api_url == UPSTOX_API_URL:
            return UPSTOX_MASTER_URL
        return self.upstox_api_url + UPSTOX_MASTER_PATH

    @field_validator("notify_allow_nets")
    @classmethod
    def _allow_nets(cls, value: str) -> str:
        parse_nets(value)  # a ValueError naming the bad range
        return value

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return None if value is None else value.rstrip("/")

    @property
    def notify_allowed(self) -> tuple[Network, ...]:
        return parse_nets(self.notify_allow_nets)

    def login_link(self) -> str:
        """Where a trader starts the day's login: this hmt's /kite/login or /upstox/login."""
        base = self.public_url or f"http://{self.host}:{self.port}"
        return f"{base}/{self.broker_api.value}/login"

    @field_validator("cluster_url")
    @classmethod
    def _cluster_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None or not value.strip():
            return None
        servers = [part.strip() for part in value.split(",")]
        for server in servers:
            parts = urlsplit(server)
            if parts.scheme not in {"nats", "tls"} or not parts.hostname:
                raise ValueError(
                    f"{server!r} is not a NATS server URL (nats://host:port or tls://host:port)"
                )
            try:
                parts.port  # noqa: B018 (urlsplit checks the port only when asked)
            except ValueError:
                raise ValueError(f"{server!r} has a bad port") from None
        database = str(info.data.get("database_url", DEFAULT_DATABASE_URL))
        if not database.startswith(("postgresql", "postgres")):
            raise ValueError(
                "a cluster needs PostgreSQL (HMT_DATABASE_URL=postgresql://...): "
                "SQLite is for one process"
            )
        return ",".join(servers)

    @field_validator("secret_key")
    @classmethod
    def _secret_key(cls, value: SecretStr | None) -> SecretStr | None:
        # Several keys while rotating: comma-separated, newest first (the first seals,
        # every one opens). The message names the position, never the key.
        if value is None:
            return None
        items = _key_items(value.get_secret_value())
        for position, item in enumerate(items, start=1):
            where = f"key {position} of {len(items)}" if len(items) > 1 else "the key"
            if not item:
                raise ValueError(f"{where} is empty (keys are comma-separated, newest first)")
            if len(item) < MIN_SECRET_KEY:
                raise ValueError(
                    f"{where} must be at least {MIN_SECRET_KEY} characters "
                    "(use a long random string)"
                )
        return value

    @field_validator("claim_lease_ms")
    @classmethod
    def _claim_lease(cls, value: int | None, info: ValidationInfo) -> int | None:
        upstox = info.data.get("broker") is Broker.UPSTOX or (
            info.data.get("broker") is Broker.PAPER
            and info.data.get("paper_broker") is BrokerApi.UPSTOX
        )
        name = "upstox_timeout_ms" if upstox else "kite_timeout_ms"
        timeout = info.data.get(name)
        if value is not None and timeout is not None and value < _least_lease_ms(timeout):
            raise ValueError(
                f"must be at least {_least_lease_ms(timeout)} (2 x HMT_{name.upper()} + 2000): "
                "a claim must outlast the order request it sends, renewed a third of the way"
            )
        return value

    @property
    def claim_lease_s(self) -> float:
        """The claim lease in seconds: HMT_CLAIM_LEASE_MS, or derived from the timeout."""
        if self.claim_lease_ms is not None:
            return self.claim_lease_ms / 1000
        return max(30_000, _least_lease_ms(self.broker_timeout_ms)) / 1000

    def engine_instance(self) -> str:
        """HMT_ENGINE_ID, else one derived from host, database and working directory.

        The derived id is the same on every restart of one deployment, so a
        restarted engine recognises its own claims at once; two engines on one
        host with the same working directory and database must set HMT_ENGINE_ID.
        """
        if self.engine_id is not None:
            return self.engine_id
        parts = urlsplit(self.database_url)
        host = parts.hostname or ""
        netloc = (f"{parts.username}@" if parts.username else "") + host
        netloc += f":{parts.port}" if parts.port else ""
        database = urlunsplit(parts._replace(netloc=netloc))  # the password changes nothing
        name = socket.gethostname()
        digest = hashlib.sha256(f"{name}\0{database}\0{os.getcwd()}".encode()).hexdigest()
        return f"{name[:48]}-{digest[:12]}"

    def cluster_node_id(self) -> str:
        """This node's id in the cluster: the engine's id, which must suit a NATS key."""
        node = self.engine_instance()
        # The lease keeper's rule (`hmt.cluster.leases.NODE_ID`): a dot would add a
        # token to the node's key in the lease bucket.
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", node):
            raise ConfigError(
                f"HMT_ENGINE_ID {node!r} cannot name a cluster node: use letters, digits, "
                "'-' or '_' (no ':' or '.')"
            )
        return node

    def require_secret_key(self) -> SecretStr:
        """The sealing key, or a `ConfigError` naming HMT_SECRET_KEY when it is unset."""
        if self.secret_key is None:
            raise ConfigError(
                "HMT_SECRET_KEY is not set: it encrypts the stored broker tokens; "
                'set it to a long random string, e.g. `python -c "import secrets; '
                'print(secrets.token_urlsafe(32))"`'
            )
        return self.secret_key

    def sealing_keys(self) -> tuple[str, ...]:
        """HMT_SECRET_KEY's keys, newest (the one that seals) first; () when unset."""
        if self.secret_key is None:
            return ()
        return _key_items(self.secret_key.get_secret_value())


MIN_SECRET_KEY = 16  # characters of each HMT_SECRET_KEY key


def _key_items(text: str) -> tuple[str, ...]:
    """HMT_SECRET_KEY split at commas, each key's surrounding spaces dropped."""
    return tuple(item.strip() for item in text.split(","))


def _least_lease_ms(timeout_ms: int) -> int:
    return 2 * timeout_ms + 2000


def load_settings(*, uses: Iterable[str] | None = None, **overrides: object) -> Settings:
    """Read the environment; a bad value raises `ConfigError` naming each variable and rule.

    `uses` names the fields the caller reads (default: all of them). Only those
    must be valid: a bad value of another (`HMT_PORT` to `hmt token create`,
    which never listens) falls back to its default instead of stopping a
    command that does not need it.
    """
    used = None if uses is None else frozenset(uses)
    unknown = sorted((used or frozenset()) - set(Settings.model_fields))
    if unknown:
        raise ValueError(f"not settings: {unknown}")
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        problems = error.errors()
        if used is not None:
            unused = {_field(item) for item in problems} - used - {""}
            if unused and all(_field(item) in unused for item in problems):
                defaults = {
                    name: Settings.model_fields[name].get_default(call_default_factory=True)
                    for name in unused
                }
                return load_settings(uses=used, **{**overrides, **defaults})
            problems = [item for item in problems if _field(item) not in unused]
        named = []
        for item in problems:
            field = ".".join(str(part) for part in item["loc"])
            named.append(f"{PREFIX}{field.upper()}: {item['msg']}")
        raise ConfigError("invalid configuration: " + "; ".join(named)) from None


def _field(item: Mapping[str, Any]) -> str:
    """The settings field a validation error is about ("" for a whole-model rule)."""
    loc = item.get("loc") or ("",)
    return str(loc[0])
