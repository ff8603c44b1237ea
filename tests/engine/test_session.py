"""The broker session's states and every move between them, and the engine holding fire on it."""

from __future__ import annotations

import pytest

from hmt import logs
from hmt.config import ConfigError
from hmt.core.broker import BrokerError, ErrorKind
from hmt.engine.session import BrokerSession, SessionState
from tests.engine.test_service import engine
from tests.support.eventually import eventually
from tests.support.factories import INFY, make_trigger
from tests.support.ports import Broker, ClaimLedger, Feed, Source


class Client:
    """A broker client that only records the token it was given."""

    def __init__(self) -> None:
        self.tokens: list[str] = []

    def set_access_token(self, access_token: str) -> None:
        self.tokens.append(access_token)


class Vault:
    def __init__(self, fail: bool = False) -> None:
        self.saved: list[str] = []
        self.fail = fail

    async def save(self, access_token: str) -> None:
        if self.fail:
            raise OSError("disk full")
        self.saved.append(access_token)


def test_a_session_given_a_token_is_valid() -> None:
    """Built with a token (not awaiting a login): valid, no reason."""
    session = BrokerSession()
    assert (session.state, session.valid, session.reason) == (SessionState.VALID, True, "")


def test_awaiting_login_is_not_valid_and_a_403_keeps_it_awaiting() -> None:
    """Awaiting the first login: invalid; the placeholder token's 403 does not change that."""
    session = BrokerSession(awaiting_login=True)
    assert (session.state, session.valid) == (SessionState.AWAITING_LOGIN, False)
    reason = session.reason
    session.expired("HTTP 403 on the ticker")
    assert (session.state, session.valid, session.reason) == (
        SessionState.AWAITING_LOGIN,
        False,
        reason,
    )


def test_awaiting_login_to_valid_on_a_new_token() -> None:
    """The first token reaches every client and makes the session valid."""
    rest, ticker = Client(), Client()
    session = BrokerSession([rest, ticker], awaiting_login=True)
    session.renew("first-token-1")
    assert (session.state, session.valid, session.reason) == (SessionState.VALID, True, "")
    assert rest.tokens == ticker.tokens == ["first-token-1"]


def test_valid_to_expired_keeps_the_first_reason() -> None:
    """A 403 expires a valid session; a second 403 (the ticker after an order) keeps the first."""
    session = BrokerSession()
    session.expired("order refused: TokenException")
    session.expired("ticker: HTTP 403")
    assert (session.state, session.valid) == (SessionState.EXPIRED, False)
    assert session.reason == "order refused: TokenException"


def test_expired_to_valid_on_a_new_token() -> None:
    """A new token after expiry reaches every client; the session is valid again."""
    rest, ticker = Client(), Client()
    session = BrokerSession([rest, ticker])
    session.expired("403")
    session.renew("second-token-2")
    assert (session.state, session.valid, session.reason) == (SessionState.VALID, True, "")
    assert rest.tokens == ticker.tokens == ["second-token-2"]


def test_a_new_token_is_never_logged() -> None:
    """A token handed to the session is registered with the log redactor at once."""
    BrokerSession().renew("canary-session-token-77")
    assert logs.REDACTOR.scrub("x canary-session-token-77 y") == f"x {logs.MASK} y"


async def test_use_access_token_stores_before_use() -> None:
    """With a vault the token is saved, then used (True); without one it is only used (False)."""
    client, vault = Client(), Vault()
    session = BrokerSession([client], awaiting_login=True, vault=vault)
    assert await session.use_access_token("stored-token-3") is True
    assert vault.saved == client.tokens == ["stored-token-3"]
    assert session.valid
    bare = BrokerSession([client])
    assert await bare.use_access_token("unstored-token-4") is False
    assert client.tokens[-1] == "unstored-token-4"


async def test_a_token_that_cannot_be_stored_is_not_used() -> None:
    """A failing vault leaves the session as it was and the clients untouched."""
    client = Client()
    session = BrokerSession([client], awaiting_login=True, vault=Vault(fail=True))
    with pytest.raises(OSError, match="disk full"):
        await session.use_access_token("token-5-unsaved")
    assert (session.state, client.tokens) == (SessionState.AWAITING_LOGIN, [])


async def test_login_exchanges_then_uses_the_token() -> None:
    """A login trades the request token for an access token and uses that."""
    client = Client()
    seen: list[str] = []

    async def exchange(request_token: str) -> str:
        seen.append(request_token)
        return "access-from-login-6"

    session = BrokerSession([client], awaiting_login=True, login=exchange)
    assert await session.login("request-token-6") is False  # no vault: not stored
    assert seen == ["request-token-6"]
    assert client.tokens == ["access-from-login-6"]
    assert session.valid


async def test_a_refused_login_changes_nothing() -> None:
    """The broker refusing the request token leaves the session invalid; no login configured
    is a configuration error."""

    async def refuse(_request_token: str) -> str:
        raise BrokerError(ErrorKind.AUTH, "Token is invalid or has expired")

    session = BrokerSession(awaiting_login=True, login=refuse)
    with pytest.raises(BrokerError):
        await session.login("stale-request-token")
    assert session.state is SessionState.AWAITING_LOGIN
    with pytest.raises(ConfigError, match="login"):
        await BrokerSession(awaiting_login=True).login("request-token-7")


async def test_the_engine_fires_nothing_until_the_first_login() -> None:
    """Started while awaiting a login: login_required, a crossing tick sends nothing; after a
    token, once the order book has been read (reconciliation), a crossing tick places it."""
    trigger = make_trigger(trigger_price_1=100)
    ledger = ClaimLedger()
    source, broker, feed = Source(ledger, [trigger]), Broker(), Feed()
    session = BrokerSession([feed], awaiting_login=True)
    service = engine(source, broker, feed, session)
    await service.start()
    assert service.state.value == "login_required"
    service.on_ltp(INFY, 101)
    await service.drain()
    assert broker.sends == []
    assert trigger.id in service.book
    session.renew("first-token-8")
    assert service.state.value == "running"
    await eventually(lambda: not service.holding)
    assert broker.books == 1  # the book was read once, after the login
    service.on_ltp(INFY, 101)
    await service.drain()
    assert ledger.status[trigger.id] == "placed"
