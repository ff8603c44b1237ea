"""Paper credentials: the api key and secret, request tokens, access tokens.

The login flow is Kite's (FACTS 2.1): a request token, exchanged at
POST /session/token with checksum = sha256(api_key + request_token +
api_secret). Credentials derive from the seed so a given `--seed` always
prints the same ones; they guard nothing but paper orders.
"""

from __future__ import annotations

import hashlib
import random
import string
from typing import Any

from hmt.sim.errors import INVALID_SESSION, KiteError

_ALPHANUM = string.ascii_lowercase + string.digits


def checksum(*parts: str) -> str:
    """Kite's checksums: sha256 over the concatenated parts, hex."""
    return hashlib.sha256("".join(parts).encode()).hexdigest()


class Sessions:
    """Who may call the simulator, and the login exchange that says so."""

    def __init__(self, seed: int, user_id: str = "SIM001", *, salt: str = "") -> None:
        """`salt`: another account's (`Simulator.add_account`), so its key differs."""
        self._rng = random.Random(f"{seed}:session{salt}")
        self.user_id = user_id
        self.api_key = self._token(16)
        self.api_secret = self._token(32)
        self.access_tokens: set[str] = set()
        self.request_tokens: set[str] = set()
        self.access_token = self.new_access_token()

    def _token(self, length: int) -> str:
        return "".join(self._rng.choice(_ALPHANUM) for _ in range(length))

    def new_access_token(self) -> str:
        token = self._token(32)
        self.access_tokens.add(token)
        return token

    def new_request_token(self) -> str:
        """What Kite's login redirect carries; good for one exchange."""
        token = self._token(32)
        self.request_tokens.add(token)
        return token

    def valid(self, api_key: str, access_token: str) -> bool:
        return api_key == self.api_key and access_token in self.access_tokens

    def check_header(self, header: str | None) -> str:
        """The access token in `Authorization: token api_key:access_token`, if valid."""
        scheme, _, credentials = (header or "").partition(" ")
        api_key, _, access_token = credentials.partition(":")
        if scheme != "token" or not self.valid(api_key, access_token):
            raise KiteError("TokenException", INVALID_SESSION)
        return access_token

    def exchange(self, api_key: str, request_token: str, sent_checksum: str) -> str:
        """POST /session/token: a valid request token and checksum buy an access token."""
        if api_key != self.api_key:
            raise KiteError("InputException", "Invalid `api_key`.")
        if request_token not in self.request_tokens:
            raise KiteError("TokenException", "Token is invalid or has expired.")
        if sent_checksum != checksum(api_key, request_token, self.api_secret):
            raise KiteError("TokenException", "Invalid `checksum`.")
        self.request_tokens.discard(request_token)
        return self.new_access_token()

    def invalidate(self, access_token: str) -> None:
        self.access_tokens.discard(access_token)

    def expire_all(self) -> None:
        """Kite's 06:00 expiry (or a master logout): every token stops working."""
        self.access_tokens.clear()
        self.request_tokens.clear()

    def session_data(self, access_token: str, login_time: str) -> dict[str, Any]:
        """The `data` of POST /session/token (fixtures/generate_session.json)."""
        return {
            **self.profile(),
            "api_key": self.api_key,
            "access_token": access_token,
            "public_token": checksum("public", access_token)[:32],
            "enctoken": checksum("enc", access_token)[:32],
            "refresh_token": "",
            "silo": "",
            "login_time": login_time,
        }

    def profile(self) -> dict[str, Any]:
        """The `data` of GET /user/profile (fixtures/profile.json)."""
        return {
            "user_id": self.user_id,
            "user_type": "individual",
            "email": "paper@hmt.invalid",
            "user_name": "Paper Trader",
            "user_shortname": "Paper",
            "broker": "ZERODHA",
            "exchanges": ["NSE"],
            "products": ["CNC", "NRML", "MIS"],
            "order_types": ["MARKET", "LIMIT", "SL", "SL-M"],
            "avatar_url": None,
            "meta": {"demat_consent": "physical"},
        }
