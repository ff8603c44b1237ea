"""A user's notification channels as the API manages them: screened, stored, tested.

A URL is screened before it is stored (apprise understands it; its host is
not a forbidden address: RELIABILITY test 23) on the notifier's threads, since
screening resolves names. Stored only sealed; the API never gets it back.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence

from hmt.core.notices import Notice, NoticeKind
from hmt.engine.notices import Notifier
from hmt.store.channels import Channel, ChannelStore

# Blocking: the URL's hint (what may be shown), or a ValueError saying what is wrong.
Screen = Callable[[str], str]


class ChannelError(ValueError):
    """Bad input for a channel; `field` names it (the API's 422)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class Channels:
    def __init__(self, store: ChannelStore, notifier: Notifier, screen: Screen) -> None:
        self._store = store
        self._notifier = notifier
        self._screen = screen

    async def add(
        self, user_id: str, *, name: str, url: str, kinds: Sequence[NoticeKind]
    ) -> Channel:
        try:
            hint = await self._notifier.blocking(self._screen, url)
        except ValueError as error:
            raise ChannelError("url", str(error)) from None
        try:
            return await self._store.add(user_id, name=name, url=url, url_hint=hint, kinds=kinds)
        except ValueError as error:  # TooManyChannels
            raise ChannelError("url", str(error)) from None

    async def list(self, user_id: str) -> builtins.list[Channel]:
        return await self._store.list(user_id)

    async def delete(self, user_id: str, channel_id: str) -> bool:
        return await self._store.delete(user_id, channel_id)

    async def test(self, user_id: str, channel_id: str) -> str | bool | None:
        """False: no such channel of theirs; None: delivered; else why it was not."""
        target = await self._store.target(user_id, channel_id)
        if target is None:
            return False
        notice = Notice(
            NoticeKind.FIRED,
            "hmt: test notification",
            "This channel works: hmt will notify you here.",
            user_id=user_id,
        )
        return await self._notifier.send_now(target, notice)
