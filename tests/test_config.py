"""Settings from the environment: DESIGN section 5's names and defaults, clear errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hmt.config import (
    DEFAULT_DATABASE_URL,
    PREFIX,
    ApiLoop,
    Broker,
    BrokerApi,
    ClaimDurability,
    ClaimStatements,
    ConfigError,
    LoadPrices,
    LoadRows,
    Settings,
    SqliteWriters,
    TickMode,
    load_settings,
)

README = Path(__file__).resolve().parents[1] / "README.md"

NAMES = [
    "HMT_ENGINE_ENABLED",
    "HMT_MAX_RETRIES",
    "HMT_RETRY_BACKOFF_MS",
    "HMT_HEALTH_CHECK_INTERVAL_MS",
    "HMT_RECONNECT_DELAY_MS",
    "HMT_DATABASE_URL",
    "HMT_DB_AUTO_UPGRADE",
    "HMT_BROKER",
    "HMT_PAPER_BROKER",
    "HMT_UPSTOX_API_URL",
    "HMT_UPSTOX_ORDER_URL",
    "HMT_UPSTOX_MASTER_URL",
    "HMT_UPSTOX_CLIENT_ID",
    "HMT_UPSTOX_CLIENT_SECRET",
    "HMT_UPSTOX_REDIRECT_URI",
    "HMT_UPSTOX_ACCESS_TOKEN",
    "HMT_UPSTOX_TIMEOUT_MS",
    "HMT_KITE_API_KEY",
    "HMT_KITE_API_SECRET",
    "HMT_KITE_ACCESS_TOKEN",
    "HMT_KITE_API_URL",
    "HMT_KITE_WS_URL",
    "HMT_KITE_TIMEOUT_MS",
    "HMT_KITE_HTTP",
    "HMT_HOST",
    "HMT_PORT",
    "HMT_SECRET_KEY",
    "HMT_TICK_MODE",
    "HMT_KITE_LOGIN_URL",
    "HMT_MAX_BODY_BYTES",
    "HMT_MAX_BULK_BODY_BYTES",
    "HMT_MAX_TRIGGERS_PER_USER",
    "HMT_RATE_LIMIT_WRITES_PER_MIN",
    "HMT_METRICS_PUBLIC",
    "HMT_API_LOOP",
    "HMT_API_MAX_IN_FLIGHT",
    "HMT_ENGINE_ID",
    "HMT_CLAIM_LEASE_MS",
    "HMT_CLAIM_DURABILITY",
    "HMT_SQLITE_WRITERS",
    "HMT_CLAIM_STATEMENTS",
    "HMT_LOAD_PRICES",
    "HMT_LOAD_ROWS",
    "HMT_TIME_GRACE_S",
    "HMT_METRICS_SAMPLE_S",
    "HMT_RECORD_TICKS",
    "HMT_RECORD_MAX_MB",
    "HMT_NOTIFY_ALLOW_NETS",
    "HMT_NOTIFY_QUEUE",
    "HMT_NOTIFY_RETRIES",
    "HMT_NOTIFY_TIMEOUT_MS",
    "HMT_PUBLIC_URL",
    "HMT_FILL_SWEEP_MS",
    "HMT_TRAIL_FLUSH_MS",
    "HMT_FIRE_REHEARSAL_US",
    "HMT_CLUSTER_URL",
    "HMT_CLUSTER_PARTITIONS",
    "HMT_CLUSTER_LEASE_TTL_S",
]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Start each test from an environment with no HMT_ variables."""
    for name in NAMES:
        monkeypatch.delenv(name, raising=False)


def test_defaults_are_the_designed_ones() -> None:
    """With nothing set, every value is DESIGN section 5's default."""
    s = load_settings()
    assert s.engine_enabled is True
    assert (s.max_retries, s.retry_backoff_ms) == (2, 1000)
    assert (s.health_check_interval_ms, s.reconnect_delay_ms) == (30_000, 5000)
    assert s.database_url == DEFAULT_DATABASE_URL == "sqlite:///hmt.db"
    assert s.db_auto_upgrade is True
    assert s.broker is Broker.PAPER
    assert s.kite_api_key is None
    assert s.kite_api_secret is None
    assert s.kite_access_token is None
    assert s.kite_api_url == "https://api.kite.trade"
    assert s.kite_ws_url == "wss://ws.kite.trade"
    assert s.kite_timeout_ms == 7000
    assert s.kite_http == "aiohttp"
    assert (s.host, s.port) == ("127.0.0.1", 8000)
    assert s.secret_key is None
    assert s.tick_mode is TickMode.LTP
    assert (s.api_loop, s.api_max_in_flight) == (ApiLoop.THREAD, 16)


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every variable is read from its HMT_ name."""
    env = {
        "HMT_ENGINE_ENABLED": "false",
        "HMT_MAX_RETRIES": "5",
        "HMT_RETRY_BACKOFF_MS": "10",
        "HMT_HEALTH_CHECK_INTERVAL_MS": "1000",
        "HMT_RECONNECT_DELAY_MS": "0",
        "HMT_DATABASE_URL": "postgresql://u@db/hmt",
        "HMT_DB_AUTO_UPGRADE": "0",
        "HMT_BROKER": "kite",
        "HMT_KITE_API_KEY": "key",
        "HMT_KITE_API_SECRET": "sec",
        "HMT_KITE_ACCESS_TOKEN": "tok",
        "HMT_KITE_API_URL": "http://127.0.0.1:9000/",
        "HMT_KITE_WS_URL": "ws://127.0.0.1:9001",
        "HMT_KITE_TIMEOUT_MS": "2500",
        "HMT_KITE_HTTP": "httpx",
        "HMT_HOST": "0.0.0.0",  # noqa: S104 - only parsed, never bound
        "HMT_PORT": "9999",
        "HMT_SECRET_KEY": "s" * 32,
        "HMT_TICK_MODE": "full",
        "HMT_API_LOOP": "engine",
        "HMT_API_MAX_IN_FLIGHT": "8",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    s = load_settings()
    assert s.engine_enabled is False
    assert s.max_retries == 5
    assert s.database_url == "postgresql://u@db/hmt"
    assert s.db_auto_upgrade is False
    assert s.broker is Broker.KITE
    assert s.kite_api_url == "http://127.0.0.1:9000"
    assert s.kite_ws_url == "ws://127.0.0.1:9001"
    assert s.kite_timeout_ms == 2500
    assert s.kite_http == "httpx"
    assert s.port == 9999
    assert s.tick_mode is TickMode.FULL
    assert (s.api_loop, s.api_max_in_flight) == (ApiLoop.ENGINE, 8)
    assert s.kite_access_token is not None
    assert s.kite_access_token.get_secret_value() == "tok"
    assert s.require_secret_key().get_secret_value() == "s" * 32


@pytest.mark.parametrize(
    ("name", "value", "rule"),
    [
        ("HMT_MAX_RETRIES", "-1", "greater than or equal to 0"),
        ("HMT_MAX_RETRIES", "many", "valid integer"),
        ("HMT_PORT", "70000", "less than or equal to 65535"),
        ("HMT_KITE_TIMEOUT_MS", "10", "greater than or equal to 50"),
        ("HMT_BROKER", "zerodha", "'kite', 'upstox' or 'paper'"),
        ("HMT_PAPER_BROKER", "fyers", "'kite' or 'upstox'"),
        ("HMT_UPSTOX_API_URL", "ws://x", "http:// or https://"),
        ("HMT_UPSTOX_MASTER_URL", "ftp://x", "http:// or https://"),
        ("HMT_UPSTOX_TIMEOUT_MS", "10", "greater than or equal to 50"),
        ("HMT_TICK_MODE", "depth", "'ltp', 'quote' or 'full'"),
        ("HMT_KITE_HTTP", "requests", "'aiohttp' or 'httpx'"),
        ("HMT_DATABASE_URL", "mysql://db/hmt", "sqlite:// or postgresql://"),
        ("HMT_KITE_API_URL", "ftp://x", "http:// or https://"),
        ("HMT_KITE_WS_URL", "https://x", "ws:// or wss://"),
        ("HMT_SECRET_KEY", "short", "at least 16 characters"),
        ("HMT_ENGINE_ENABLED", "maybe", "valid boolean"),
    ],
)
def test_bad_values_name_the_variable_and_rule(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, rule: str
) -> None:
    """A bad value fails with the variable's name and the rule it broke."""
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as raised:
        load_settings()
    assert name in str(raised.value)
    assert rule in str(raised.value)


def test_secrets_stay_out_of_reprs_and_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    """Secrets never appear in the settings' repr, nor in a validation error."""
    monkeypatch.setenv("HMT_KITE_API_SECRET", "CANARYsecret")
    monkeypatch.setenv("HMT_KITE_ACCESS_TOKEN", "CANARYtoken")
    monkeypatch.setenv("HMT_SECRET_KEY", "CANARYsealingkey")
    monkeypatch.setenv("HMT_UPSTOX_CLIENT_SECRET", "CANARYupstoxsecret")
    monkeypatch.setenv("HMT_UPSTOX_ACCESS_TOKEN", "CANARYupstoxtoken")
    s = load_settings()
    for text in (repr(s), str(s), str(s.model_dump())):
        assert "CANARY" not in text
    monkeypatch.setenv("HMT_SECRET_KEY", "CANARYshort")
    with pytest.raises(ConfigError) as raised:
        load_settings()
    assert "CANARY" not in str(raised.value)


def test_missing_secret_key_names_the_variable() -> None:
    """When sealing needs HMT_SECRET_KEY and it is unset, the error says so."""
    with pytest.raises(ConfigError, match="HMT_SECRET_KEY is not set"):
        load_settings().require_secret_key()


def test_api_limits_have_safe_defaults_and_refuse_bad_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The API's limits default sensibly; a bad one names its variable and rule."""
    s = load_settings()
    assert (s.max_body_bytes, s.max_triggers_per_user, s.rate_limit_writes_per_min) == (
        65536,
        1000,
        600,
    )
    assert s.metrics_public is False
    assert s.kite_login_url == "https://kite.zerodha.com/connect/login"
    for name, value, rule in (
        ("HMT_MAX_BODY_BYTES", "10", "greater than or equal to 1024"),
        ("HMT_MAX_TRIGGERS_PER_USER", "0", "greater than or equal to 1"),
        ("HMT_RATE_LIMIT_WRITES_PER_MIN", "-1", "greater than or equal to 0"),
        ("HMT_KITE_LOGIN_URL", "ftp://x", "must start with http:// or https://"),
    ):
        monkeypatch.setenv(name, value)
        with pytest.raises(ConfigError, match=rule) as error:
            load_settings()
        assert name in str(error.value)
        monkeypatch.delenv(name)


def test_engine_identity_is_stable_and_configurable(monkeypatch: pytest.MonkeyPatch) -> None:
    """The derived id repeats across loads, ignores the password, follows the database;
    HMT_ENGINE_ID overrides it and is checked."""
    url = "postgresql://hmt:one@db.example:5432/hmt"
    derived = load_settings(database_url=url).engine_instance()
    assert derived == load_settings(database_url=url).engine_instance()
    assert derived == load_settings(database_url=url.replace("one", "two")).engine_instance()
    assert derived != load_settings(database_url=url + "2").engine_instance()
    assert len(derived) <= 64
    monkeypatch.setenv("HMT_ENGINE_ID", "engine-a")
    assert load_settings().engine_instance() == "engine-a"
    monkeypatch.setenv("HMT_ENGINE_ID", "two words")
    with pytest.raises(ConfigError, match="HMT_ENGINE_ID"):
        load_settings()


def test_claim_lease_outlasts_the_request_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """The lease defaults to 30 s or twice the timeout plus 2 s; a shorter one is refused."""
    assert load_settings().claim_lease_s == 30.0
    assert load_settings(kite_timeout_ms=20_000).claim_lease_s == 42.0
    monkeypatch.setenv("HMT_CLAIM_LEASE_MS", "5000")
    assert load_settings(kite_timeout_ms=1000).claim_lease_s == 5.0
    with pytest.raises(ConfigError, match=r"HMT_CLAIM_LEASE_MS: .*at least 16000"):
        load_settings()


def test_fill_sweep_is_5_seconds_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    """HMT_FILL_SWEEP_MS: how often brackets' entries are looked up in the order book."""
    assert load_settings().fill_sweep_ms == 5000
    monkeypatch.setenv("HMT_FILL_SWEEP_MS", "250")
    assert load_settings().fill_sweep_ms == 250
    for bad in ("-1", "often"):
        monkeypatch.setenv("HMT_FILL_SWEEP_MS", bad)
        with pytest.raises(ConfigError, match="HMT_FILL_SWEEP_MS"):
            load_settings()


def test_time_grace_is_60_seconds_unless_set_within_a_day(monkeypatch: pytest.MonkeyPatch) -> None:
    """HMT_TIME_GRACE_S: how late a time leg may still fire; negative or over a day refused."""
    assert load_settings().time_grace_s == 60
    monkeypatch.setenv("HMT_TIME_GRACE_S", "0")
    assert load_settings().time_grace_s == 0
    for bad in ("-1", "86401", "soon"):
        monkeypatch.setenv("HMT_TIME_GRACE_S", bad)
        with pytest.raises(ConfigError, match="HMT_TIME_GRACE_S"):
            load_settings()


def test_trail_flush_is_a_second_unless_set_within_range(monkeypatch: pytest.MonkeyPatch) -> None:
    """HMT_TRAIL_FLUSH_MS: how often moved trailing stops are written; 50 ms to 10 min."""
    assert load_settings().trail_flush_ms == 1000
    monkeypatch.setenv("HMT_TRAIL_FLUSH_MS", "250")
    assert load_settings().trail_flush_ms == 250
    for bad in ("0", "49", "600001", "often"):
        monkeypatch.setenv("HMT_TRAIL_FLUSH_MS", bad)
        with pytest.raises(ConfigError, match="HMT_TRAIL_FLUSH_MS"):
            load_settings()


def test_claim_durability_is_async_unless_set_to_sync(monkeypatch: pytest.MonkeyPatch) -> None:
    """Claims do not wait for the disk by default; `sync` restores the flush; others refused."""
    assert load_settings().claim_durability is ClaimDurability.ASYNC
    monkeypatch.setenv("HMT_CLAIM_DURABILITY", "sync")
    assert load_settings().claim_durability is ClaimDurability.SYNC
    monkeypatch.setenv("HMT_CLAIM_DURABILITY", "later")
    with pytest.raises(ConfigError, match="HMT_CLAIM_DURABILITY"):
        load_settings()


def test_sqlite_writers_queue_unless_set_to_busy_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().sqlite_writers is SqliteWriters.QUEUED
    monkeypatch.setenv("HMT_SQLITE_WRITERS", "busy_wait")
    assert load_settings().sqlite_writers is SqliteWriters.BUSY_WAIT
    monkeypatch.setenv("HMT_SQLITE_WRITERS", "race")
    with pytest.raises(ConfigError, match="HMT_SQLITE_WRITERS"):
        load_settings()


def test_claim_statements_are_inline_unless_set_to_an_old_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The claim runs on the loop's own connection by default (SQLite; the driver's on
    PostgreSQL); `raw`, `cached` and `built` are the old paths; others refused."""
    assert load_settings().claim_statements is ClaimStatements.INLINE
    monkeypatch.setenv("HMT_CLAIM_STATEMENTS", "raw")
    assert load_settings().claim_statements is ClaimStatements.RAW
    monkeypatch.setenv("HMT_CLAIM_STATEMENTS", "cached")
    assert load_settings().claim_statements is ClaimStatements.CACHED
    monkeypatch.setenv("HMT_CLAIM_STATEMENTS", "built")
    assert load_settings().claim_statements is ClaimStatements.BUILT
    monkeypatch.setenv("HMT_CLAIM_STATEMENTS", "fast")
    with pytest.raises(ConfigError, match="HMT_CLAIM_STATEMENTS"):
        load_settings()


def test_the_firing_path_is_rehearsed_only_when_asked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """0 (never) by default; an interval in microseconds when set; negative refused."""
    assert load_settings().fire_rehearsal_us == 0
    monkeypatch.setenv("HMT_FIRE_REHEARSAL_US", "1000")
    assert load_settings().fire_rehearsal_us == 1000
    monkeypatch.setenv("HMT_FIRE_REHEARSAL_US", "-1")
    with pytest.raises(ConfigError, match="HMT_FIRE_REHEARSAL_US"):
        load_settings()


def test_the_load_reads_stored_units_unless_set_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The start-up load reads the stored units by default; the earlier loads by name only."""
    assert load_settings().load_prices is LoadPrices.STORED
    monkeypatch.setenv("HMT_LOAD_PRICES", "decimal")
    assert load_settings().load_prices is LoadPrices.DECIMAL
    monkeypatch.setenv("HMT_LOAD_PRICES", "fast")
    with pytest.raises(ConfigError, match="HMT_LOAD_PRICES"):
        load_settings()


def test_the_load_builds_rows_directly_unless_set_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The direct row path by default; the third pass's, by name only."""
    assert load_settings().load_rows is LoadRows.DIRECT
    monkeypatch.setenv("HMT_LOAD_ROWS", "fields")
    assert load_settings().load_rows is LoadRows.FIELDS
    monkeypatch.setenv("HMT_LOAD_ROWS", "fast")
    with pytest.raises(ConfigError, match="HMT_LOAD_ROWS"):
        load_settings()


def _readme_settings() -> set[str]:
    """The HMT_ names in the first column of the README's configuration table."""
    text = README.read_text(encoding="utf-8")
    table = text[text.index("## Configuration") :]
    names: set[str] = set()
    for line in table.splitlines()[1:]:
        if line.startswith("#"):
            break  # the next section
        if line.startswith("| `HMT_"):
            names.update(re.findall(r"`(HMT_[A-Z0-9_]+)`", line.split("|")[1]))
    return names


def test_the_broker_and_its_api_default_to_paper_kite(monkeypatch: pytest.MonkeyPatch) -> None:
    """HMT_BROKER picks a live broker or paper; in paper HMT_PAPER_BROKER picks whose API."""
    assert (load_settings().broker, load_settings().broker_api) == (Broker.PAPER, BrokerApi.KITE)
    for broker, paper, api in [
        ("kite", "upstox", BrokerApi.KITE),  # HMT_PAPER_BROKER means nothing when live
        ("upstox", "kite", BrokerApi.UPSTOX),
        ("paper", "upstox", BrokerApi.UPSTOX),
        ("paper", "kite", BrokerApi.KITE),
    ]:
        monkeypatch.setenv("HMT_BROKER", broker)
        monkeypatch.setenv("HMT_PAPER_BROKER", paper)
        assert load_settings().broker_api is api


def test_upstox_hosts_follow_the_api_url_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    """Upstox's own hosts by default; a simulator's one URL serves orders and the master too."""
    s = load_settings()
    assert s.upstox_api_url == "https://api.upstox.com"
    assert s.upstox_orders_url == "https://api-hft.upstox.com"
    assert s.upstox_master == (
        "https://assets.upstox.com/market-quote/instruments/exchange/complete.json.gz"
    )
    monkeypatch.setenv("HMT_UPSTOX_API_URL", "http://127.0.0.1:9000/")
    s = load_settings()
    assert s.upstox_orders_url == "http://127.0.0.1:9000"
    assert s.upstox_master == (
        "http://127.0.0.1:9000/market-quote/instruments/exchange/complete.json.gz"
    )
    monkeypatch.setenv("HMT_UPSTOX_ORDER_URL", "http://127.0.0.1:9001")
    monkeypatch.setenv("HMT_UPSTOX_MASTER_URL", "http://127.0.0.1:9002/m.json.gz")
    s = load_settings()
    assert (s.upstox_orders_url, s.upstox_master) == (
        "http://127.0.0.1:9001",
        "http://127.0.0.1:9002/m.json.gz",
    )


def test_the_claim_lease_outlasts_the_chosen_brokers_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On Upstox the lease is derived from, and checked against, HMT_UPSTOX_TIMEOUT_MS."""
    monkeypatch.setenv("HMT_BROKER", "upstox")
    assert load_settings(upstox_timeout_ms=20_000).claim_lease_s == 42.0
    assert load_settings(kite_timeout_ms=20_000).claim_lease_s == 30.0
    monkeypatch.setenv("HMT_UPSTOX_TIMEOUT_MS", "9000")
    monkeypatch.setenv("HMT_CLAIM_LEASE_MS", "19000")
    with pytest.raises(ConfigError, match=r"HMT_CLAIM_LEASE_MS: .*at least 20000 .*UPSTOX"):
        load_settings()


def test_every_setting_is_in_the_readme_table() -> None:
    """Each field of Settings, as its environment variable, has a row in the README."""
    settings = {PREFIX + name.upper() for name in Settings.model_fields}
    assert settings - _readme_settings() == set()


def test_the_clean_environment_covers_every_setting() -> None:
    """NAMES (cleared before each test here) lists every setting, so none leaks in."""
    assert {PREFIX + name.upper() for name in Settings.model_fields} == set(NAMES)


def test_a_command_checks_only_the_settings_it_uses(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bad value outside `uses` falls back to its default; inside, it is refused by name."""
    monkeypatch.setenv("HMT_PORT", "not-a-port")
    monkeypatch.setenv("HMT_TICK_MODE", "depth")
    monkeypatch.setenv("HMT_DATABASE_URL", "postgresql://u@db/hmt")
    s = load_settings(uses=("database_url",))
    assert (s.database_url, s.port, s.tick_mode) == ("postgresql://u@db/hmt", 8000, TickMode.LTP)
    with pytest.raises(ConfigError) as refused:
        load_settings(uses=("database_url", "port"))
    assert "HMT_PORT" in str(refused.value)
    assert "HMT_TICK_MODE" not in str(refused.value)
    with pytest.raises(ConfigError, match=r"HMT_PORT.*HMT_TICK_MODE|HMT_TICK_MODE.*HMT_PORT"):
        load_settings()
    monkeypatch.setenv("HMT_DATABASE_URL", "mysql://db/hmt")
    with pytest.raises(ConfigError, match="HMT_DATABASE_URL") as both:
        load_settings(uses=("database_url",))
    assert "HMT_PORT" not in str(both.value)
    with pytest.raises(ValueError, match="not settings"):
        load_settings(uses=("database_ulr",))


def test_metrics_sample_is_10_seconds_unless_set_between_0_and_an_hour(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """HMT_METRICS_SAMPLE_S: how often a history row is written; 0 off; under 0 or over 3600 no."""
    assert load_settings().metrics_sample_s == 10
    monkeypatch.setenv("HMT_METRICS_SAMPLE_S", "0")
    assert load_settings().metrics_sample_s == 0
    for bad in ("-1", "3601", "often"):
        monkeypatch.setenv("HMT_METRICS_SAMPLE_S", bad)
        with pytest.raises(ConfigError, match="HMT_METRICS_SAMPLE_S"):
            load_settings()


def test_the_tick_recorder_is_off_unless_given_a_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """HMT_RECORD_TICKS: a directory turns it on; HMT_RECORD_MAX_MB bounds it (1 or more)."""
    assert load_settings().record_ticks is None
    assert load_settings().record_max_mb == 512
    monkeypatch.setenv("HMT_RECORD_TICKS", str(tmp_path))
    monkeypatch.setenv("HMT_RECORD_MAX_MB", "64")
    settings = load_settings()
    assert (settings.record_ticks, settings.record_max_mb) == (tmp_path, 64)
    monkeypatch.setenv("HMT_RECORD_MAX_MB", "0")
    with pytest.raises(ConfigError, match="HMT_RECORD_MAX_MB"):
        load_settings()


def test_notification_settings_are_checked_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bad allowed range or public URL stops start-up naming the variable."""
    monkeypatch.setenv("HMT_NOTIFY_ALLOW_NETS", "127.0.0.1/32, 10.9.0.0/16")
    settings = load_settings()
    assert [str(net) for net in settings.notify_allowed] == ["127.0.0.1/32", "10.9.0.0/16"]
    assert settings.login_link() == "http://127.0.0.1:8000/kite/login"
    monkeypatch.setenv("HMT_PUBLIC_URL", "https://hmt.example.com/")
    assert load_settings().login_link() == "https://hmt.example.com/kite/login"
    monkeypatch.setenv("HMT_NOTIFY_ALLOW_NETS", "10.0.0.0/8,intranet")
    with pytest.raises(ConfigError, match=r"HMT_NOTIFY_ALLOW_NETS.*intranet"):
        load_settings()
    monkeypatch.delenv("HMT_NOTIFY_ALLOW_NETS")
    monkeypatch.setenv("HMT_PUBLIC_URL", "hmt.example.com")
    with pytest.raises(ConfigError, match="HMT_PUBLIC_URL"):
        load_settings()


def test_several_sealing_keys_newest_first(monkeypatch: pytest.MonkeyPatch) -> None:
    """HMT_SECRET_KEY takes comma-separated keys while rotating: the first seals."""
    monkeypatch.setenv("HMT_SECRET_KEY", "n" * 20 + ", " + "o" * 16)
    assert load_settings().sealing_keys() == ("n" * 20, "o" * 16)
    monkeypatch.setenv("HMT_SECRET_KEY", "n" * 20)
    assert load_settings().sealing_keys() == ("n" * 20,)
    monkeypatch.delenv("HMT_SECRET_KEY")
    assert load_settings().sealing_keys() == ()


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        ("CANARYnewkey0123456789,CANARYshort", "key 2 of 2 must be at least 16 characters"),
        ("CANARYnewkey0123456789,,CANARYoldkey0123456789", "key 2 of 3 is empty"),
        ("CANARYnewkey0123456789,", "key 2 of 2 is empty"),
        (",CANARYoldkey0123456789", "key 1 of 2 is empty"),
    ],
)
def test_a_bad_key_among_several_is_named_by_position_never_shown(
    monkeypatch: pytest.MonkeyPatch, value: str, rule: str
) -> None:
    monkeypatch.setenv("HMT_SECRET_KEY", value)
    with pytest.raises(ConfigError) as raised:
        load_settings()
    assert "HMT_SECRET_KEY" in str(raised.value)
    assert rule in str(raised.value)
    assert "CANARY" not in str(raised.value)
