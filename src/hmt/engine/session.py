"""The broker session: the one place that knows whether the access token is good.

Three things can tell: start-up without a token (awaiting the first login), the
broker refusing an order with 403 (`AuthExpired`), and the ticker's handshake
refused with 403 (its `token_invalid` event). One thing ends it: a new access
token (PUT /broker/session, or a Kite login), which is handed to every broker
client and, when a vault is configured, kept sealed for the next start.

While the session is not valid the engine fires nothing (`valid` is a plain
attribute so the tick path pays one attribute test), /stats shows
`login_required` and /health is down.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from enum import StrEnum

import structlog

from hmt.config import ConfigError
from hmt.engine.ports import BrokerLogin, SessionVault, TokenUser
from hmt.logs import register_secret

log = structlog.get_logger("hmt.session")


class SessionState(StrEnum):
    AWAITING_LOGIN = "awaiting_login"  # no access token yet: log in first
    VALID = "valid"
    EXPIRED = "expired"  # the broker refused the token (an order's or the ticker's 403)


class BrokerSession:
    """Whether the broker session is valid, and the way to a new one.

    Transitions: any state -> VALID on `renew`; VALID -> EXPIRED on `expired`;
    `expired` in AWAITING_LOGIN or EXPIRED changes nothing (the first reason is kept).
    """

    def __init__(
        self,
        users: Iterable[TokenUser] = (),
        *,
        awaiting_login: bool = False,
        vault: SessionVault | None = None,
        login: BrokerLogin | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._users = list(users)
        self._clock = clock
        self._vault = vault
        self._login = login
        self.state = SessionState.AWAITING_LOGIN if awaiting_login else SessionState.VALID
        self.valid = self.state is SessionState.VALID  # read on every tick: keep it an attribute
        self.reason = "no broker access token yet: log in" if awaiting_login else ""
        # Since when this access token has been in use (the login reminder: Kite's tokens
        # lapse at 06:00 IST, which hmt learns of only when Kite next refuses one).
        self.since: datetime | None = None if awaiting_login else clock()
        # Called when the session becomes valid (the engine reads the order book then).
        self.on_valid: list[Callable[[], None]] = []
        # Called with the reason when the broker refuses a valid session (the login notice).
        self.on_expired: list[Callable[[str], None]] = []

    def expired(self, reason: str) -> None:
        """The broker refused the token: fire nothing until `renew`."""
        if self.state is not SessionState.VALID:
            return
        self._move(SessionState.EXPIRED, reason)
        log.error("login_required", reason=reason)
        for listener in self.on_expired:
            listener(reason)

    def renew(self, access_token: str) -> None:
        """Use `access_token` from now on, for orders and ticks; the session is valid again."""
        register_secret(access_token)
        for user in self._users:
            user.set_access_token(access_token)
        self.since = self._clock()
        self._move(SessionState.VALID, "")

    async def use_access_token(self, access_token: str) -> bool:
        """Keep `access_token` in the vault (if there is one), then `renew`; kept?"""
        register_secret(access_token)
        if self._vault is not None:
            await self._vault.save(access_token)
        self.renew(access_token)
        log.info("broker_session_set", stored=self._vault is not None)
        return self._vault is not None

    async def login(self, request_token: str) -> bool:
        """Exchange a login's request token for an access token and use it; kept?"""
        register_secret(request_token)
        if self._login is None:
            raise ConfigError("a broker login is not configured")
        return await self.use_access_token(await self._login(request_token))

    def _move(self, state: SessionState, reason: str) -> None:
        self.state, self.reason = state, reason
        self.valid = state is SessionState.VALID
        if self.valid:
            for listener in self.on_valid:
                listener()
