"""The composition's linked accounts: each one's order port, throttle, executor and
session, made from its stored row and added to the engine (docs/accounts.md).

Ticks are shared: the one feed of a broker serves every account. A Kite engine
trades linked Kite accounts (on the default account's ticker) and linked Upstox
accounts (one Upstox feed, on the first one's token: `hmt.compose.upstox.LinkedUpstox`);
an Upstox engine trades linked Upstox accounts (on its own feed and master:
`hmt.compose.upstox.EngineUpstox`), not Kite ones (Kite's ticker would need one of
them to run on). An account this engine does not trade stays out of it (logged), so
its triggers wait and are never sent through another account.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog
from pydantic import SecretStr

from hmt.compose.slots import THROTTLE_MARGIN_S, ClusterSlots
from hmt.compose.upstox import EngineUpstox, LinkedUpstox, on_linked_feed_state, paper_refusal
from hmt.config import ConfigError, Settings
from hmt.core.throttle import KITE_ORDER_LIMITS, UPSTOX_ORDER_LIMITS, Throttle
from hmt.engine.accounts import AccountExecutors, UnlinkRefused
from hmt.engine.executor import Executor, LeasePolicy, RetryPolicy
from hmt.engine.ports import BrokerLogin, BrokerRest, OrderPort, TokenUser
from hmt.engine.service import Engine, EngineState
from hmt.engine.session import BrokerSession
from hmt.engine.stats import EngineStats
from hmt.kite.orders import KiteOrders
from hmt.kite.rest import KiteRest
from hmt.kite.session import exchange_request_token
from hmt.logs import register_secret
from hmt.store.execution import ExecutionStore
from hmt.store.linked import LinkedAccount, LinkedAccounts
from hmt.upstox.session import exchange_code

log = structlog.get_logger("hmt.compose")

# Used in place of an account's access token until its first session: Kite refuses it.
AWAITING_LOGIN = "awaiting-kite-login"


class LinkedKiteLogin:
    """A linked Kite account's login exchange (its /kite/callback): the request token
    with that account's API key and secret, opened from its sealed row when used."""

    def __init__(self, store: LinkedAccounts, account_id: str, api_url: str) -> None:
        self._store = store
        self._account_id = account_id
        self._api_url = api_url

    async def __call__(self, request_token: str) -> str:
        account = await self._store.open(self._account_id)
        if account is None or account.api_secret is None:
            raise ConfigError(
                f"account {self._account_id!r} has no API secret linked: its login cannot "
                "be exchanged (link it with api_secret, or set its token with "
                f"PUT /accounts/{self._account_id}/session)"
            )
        secret = account.api_secret.get_secret_value()
        register_secret(secret)
        return await exchange_request_token(
            api_url=self._api_url,
            api_key=account.api_key,
            request_token=request_token,
            api_secret=secret,
        )


@dataclass
class StoredLogin:
    """The login of a linked Upstox account this engine does not trade (an Upstox
    engine's, a cluster node's): its code exchanged with that account's client id and
    secret, opened from its sealed row, and the token only kept sealed."""

    settings: Settings
    store: LinkedAccounts

    async def __call__(self, account_id: str, code: str) -> bool:
        account = await self.store.open(account_id)
        if account is None or account.broker != "upstox":
            return False
        refused = paper_refusal(self.settings)
        if refused is not None:  # RELIABILITY test 22: paper mode never reaches Upstox
            raise ConfigError(refused)
        token = await LinkedUpstoxLogin(self.store, account_id, self.settings)(code)
        await self.store.save_token(account_id, SecretStr(token))
        return True


class LinkedVault:
    """A linked account's new access token, kept sealed in its row."""

    def __init__(self, store: LinkedAccounts, account_id: str) -> None:
        self._store = store
        self._account_id = account_id

    async def save(self, access_token: str) -> None:
        await self._store.save_token(self._account_id, SecretStr(access_token))


class LinkedUpstoxLogin:
    """A linked Upstox account's login exchange (its /upstox/callback): the code with that
    account's client id and secret, opened from its sealed row when used."""

    def __init__(self, store: LinkedAccounts, account_id: str, settings: Settings) -> None:
        self._store = store
        self._account_id = account_id
        self._settings = settings

    async def __call__(self, code: str) -> str:
        account = await self._store.open(self._account_id)
        redirect_uri = self._settings.upstox_redirect_uri
        if account is None or account.api_secret is None or not redirect_uri:
            raise ConfigError(
                f"account {self._account_id!r}'s login needs its api_secret (linked with it) "
                "and HMT_UPSTOX_REDIRECT_URI (this hmt's /upstox/callback)"
            )
        secret = account.api_secret.get_secret_value()
        register_secret(secret)
        token = await exchange_code(
            code=code,
            client_id=account.api_key,
            client_secret=secret,
            redirect_uri=redirect_uri,
            api_url=self._settings.upstox_api_url,
        )
        register_secret(token)
        return token


@dataclass
class AccountMaker:
    """Makes a linked account's parts and adds them to the engine's executors."""

    settings: Settings
    store: LinkedAccounts
    execution: ExecutionStore
    executors: AccountExecutors
    stats: EngineStats
    broker: str  # the engine's broker ("kite" or "upstox")
    engine: Callable[[], Engine]  # read when used: the engine is made after this
    rests: list[BrokerRest] = field(default_factory=list)  # closed with the runtime
    # What linked Upstox accounts share: a Kite engine's one Upstox feed and master
    # (docs/accounts.md, "Two brokers in one process"), or an Upstox engine's own
    # (`EngineUpstox`); None where they are not traded (a cluster node, paper mode with
    # a live Upstox address).
    upstox: LinkedUpstox | EngineUpstox | None = None
    # Each account in the engine: its broker and REST client (closed when it is unlinked).
    made: dict[str, tuple[str, BrokerRest]] = field(default_factory=dict)
    # A cluster node's order slots (docs/cluster.md, "Orders"): each linked account's
    # orders hold a slot of its broker rate limit across the cluster. None on one node.
    slots: ClusterSlots | None = None

    def trades(self, broker: str) -> bool:
        """Whether this engine trades linked accounts of `broker`: Upstox ones wherever
        their shared parts are made (`upstox`); Kite ones in a Kite engine only. Kite's
        ticker runs on the default account's API key and token: an Upstox engine has no
        Kite account of its own to run it on (one of the linked ones would have to carry
        it, with its lapse stopping every Kite price), so Kite accounts there are stored,
        not traded."""
        if broker == "upstox":
            return self.upstox is not None
        return broker == self.broker

    async def add(self, account: LinkedAccount) -> None:
        """Trade through `account` from now on (a running engine reads its book first)."""
        if not self.trades(account.broker):
            log.warning(
                "account_not_wired",
                account=account.id,
                broker=account.broker,
                engine_broker=self.broker,
            )
            return
        for secret in (account.access_token, account.api_secret):
            if secret is not None:
                register_secret(secret.get_secret_value())
        token = None if account.access_token is None else account.access_token.get_secret_value()
        settings = self.settings
        feed = None
        if account.broker == "upstox":
            assert self.upstox is not None
            parts = await self.upstox.parts(account.id, token)
            rest: BrokerRest = parts.rest
            orders: OrderPort = parts.orders
            users: tuple[TokenUser, ...] = (parts.rest,)
            if parts.feed is not None:
                feed = parts.feed
                users += (parts.feed,)
            limits = UPSTOX_ORDER_LIMITS
            login: BrokerLogin = LinkedUpstoxLogin(self.store, account.id, settings)
        else:
            kite = KiteRest(
                api_url=settings.kite_api_url,
                api_key=account.api_key,
                access_token=token or AWAITING_LOGIN,
                timeout=settings.kite_timeout_ms / 1000,
                client=settings.kite_http,
            )
            rest, orders, users, limits = kite, KiteOrders(kite), (kite,), KITE_ORDER_LIMITS
            login = LinkedKiteLogin(self.store, account.id, settings.kite_api_url)
        self.rests.append(rest)
        self.made[account.id] = (account.broker, rest)
        slot_wait_s = 0.0
        if self.slots is not None:
            orders = await self.slots.slotted(orders, account.broker, account.api_key, limits)
            slot_wait_s = self.slots.wait_s  # the slot's wait is part of the request's time
        headroom = self.stats.headroom_of  # the /stats headroom stays the default account's
        executor = Executor(
            orders,
            self.execution,
            throttle=Throttle(limits, margin=THROTTLE_MARGIN_S),
            policy=RetryPolicy(
                max_retries=settings.max_retries, backoff=settings.retry_backoff_ms / 1000
            ),
            lease=LeasePolicy(
                length=settings.claim_lease_s,
                request_timeout=settings.broker_timeout_ms / 1000 + slot_wait_s,
            ),
            rng=random.Random(),
            stats=self.stats,
        )
        self.stats.headroom_of = headroom
        session = BrokerSession(
            users,
            awaiting_login=token is None,
            vault=LinkedVault(self.store, account.id),
            login=login,
        )
        if feed is not None:
            feed.on_state = lambda state: on_linked_feed_state(session, state)
        self.executors.add(account.id, executor, session)
        engine = self.engine()
        if session.valid and engine.state is not EngineState.STOPPED:
            await engine.account_renewed(account.id)  # running: its book, then live

    async def remove(self, account_id: str) -> None:
        """Stop trading through an account being unlinked: out of the engine (no order
        goes through it from now on), then its REST client closed. The Upstox account
        the shared feed runs on goes only when no other Upstox account is traded here
        (`UnlinkRefused`, nothing changed): the feed then stops (docs/accounts.md)."""
        made = self.made.get(account_id)
        if made is None:  # not traded here (another broker's, or never opened)
            return
        broker, rest = made
        upstox = self.upstox
        feeds_on_it = (
            broker == "upstox" and upstox is not None and upstox.feed_account == account_id
        )
        if feeds_on_it:
            others = sorted(
                i for i, (b, _) in self.made.items() if b == "upstox" and i != account_id
            )
            if others:
                raise UnlinkRefused(
                    account_id,
                    "feed_account",
                    f"the Upstox feed runs on account {account_id!r}'s token: unlink the "
                    f"other Upstox accounts first ({', '.join(others)})",
                )
        self.engine().remove_account(account_id)
        del self.made[account_id]
        if rest in self.rests:
            self.rests.remove(rest)
        if feeds_on_it:
            assert upstox is not None
            await upstox.release(account_id)
        try:
            await rest.aclose()
        except Exception as error:  # gone from the engine already: only logged
            log.warning("account_client_close_failed", account=account_id, error=str(error))

    async def add_stored(self) -> None:
        """Every stored account (start-up); a row that does not open is logged and left out
        alone (its triggers wait, never sent through another account): sealed under
        another HMT_SECRET_KEY, it is linked again or given a new token. None without
        HMT_SECRET_KEY: linked accounts are stored only sealed."""
        if self.store.sealer is None:
            return
        accounts, unreadable = await self.store.open_readable()
        for account_id in unreadable:
            log.warning(
                "linked_account_unreadable",
                account=account_id,
                reason="sealed under another HMT_SECRET_KEY: put that key after the new "
                "one in HMT_SECRET_KEY and run `hmt db reseal`, or unlink it "
                f"(DELETE /accounts/{account_id}) and link it again",
            )
        for account in accounts:
            await self.add(account)
