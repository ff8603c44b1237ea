"""Notification channels: each user's delivery URLs, sealed at rest like broker tokens.

The URL carries the service's secret (a bot token, a webhook key, a mail
password), so it is stored only sealed (`sealing.Sealer`, bound to its user
and channel) and never read back by the API: `url_hint`, apprise's privacy
form of it, is what a listing shows.
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from hmt.core.notices import NoticeKind
from hmt.store.db import Database
from hmt.store.sealing import Sealer
from hmt.store.tables import notify_channels as c
from hmt.store.users import ensure_user

MAX_PER_USER = 20


class TooManyChannels(ValueError):
    """A user already has MAX_PER_USER channels."""


@dataclass(frozen=True, slots=True)
class Channel:
    """A channel as it may be shown: no URL, only its hint."""

    id: str
    user_id: str
    name: str
    url_hint: str
    kinds: tuple[NoticeKind, ...]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Target:
    """Where one notice goes: a channel's id, owner and opened URL."""

    channel_id: str
    user_id: str
    url: str

    def __repr__(self) -> str:
        return f"Target(channel_id={self.channel_id!r}, user_id={self.user_id!r}, url='***')"


def _field(channel_id: str) -> str:
    return f"notify_url:{channel_id}"  # the sealed value is bound to its row


def _kinds(text: str) -> tuple[NoticeKind, ...]:
    known = {kind.value for kind in NoticeKind}
    return tuple(NoticeKind(part) for part in text.split(",") if part in known)


class ChannelStore:
    def __init__(
        self,
        db: Database,
        sealer: Sealer,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.db = db
        self.sealer = sealer
        self.clock = clock

    async def add(
        self, user_id: str, *, name: str, url: str, url_hint: str, kinds: Sequence[NoticeKind]
    ) -> Channel:
        channel_id = str(uuid.uuid4())
        now = self.clock()
        sealed = self.sealer.seal(url, user_id=user_id, field=_field(channel_id))
        text = ",".join(kind.value for kind in kinds)

        async def work(conn: AsyncConnection) -> None:
            await ensure_user(conn, user_id, now)
            count = select(func.count()).select_from(c).where(c.c.user_id == user_id)
            if (await conn.execute(count)).scalar_one() >= MAX_PER_USER:
                raise TooManyChannels(f"at most {MAX_PER_USER} channels per user")
            await conn.execute(
                c.insert().values(
                    id=channel_id,
                    user_id=user_id,
                    name=name,
                    url_sealed=sealed,
                    url_hint=url_hint,
                    kinds=text,
                    created_at=now,
                )
            )

        await self.db.transaction(work)
        return Channel(channel_id, user_id, name, url_hint, tuple(kinds), now)

    async def list(self, user_id: str) -> builtins.list[Channel]:
        async def work(conn: AsyncConnection) -> list[Channel]:
            query = (
                select(c.c.id, c.c.name, c.c.url_hint, c.c.kinds, c.c.created_at)
                .where(c.c.user_id == user_id)
                .order_by(c.c.created_at, c.c.id)
            )
            return [
                Channel(str(r.id), user_id, r.name, r.url_hint, _kinds(r.kinds), r.created_at)
                for r in (await conn.execute(query)).all()
            ]

        return await self.db.transaction(work, write=False)

    async def delete(self, user_id: str, channel_id: str) -> bool:
        if not _is_uuid(channel_id):
            return False

        async def work(conn: AsyncConnection) -> bool:
            gone = await conn.execute(delete(c).where(c.c.id == channel_id, c.c.user_id == user_id))
            return gone.rowcount == 1

        return await self.db.transaction(work)

    async def target(self, user_id: str, channel_id: str) -> Target | None:
        """One of `user_id`'s channels, opened (a test notice); None if not theirs."""
        if not _is_uuid(channel_id):
            return None
        found = await self._targets(c.c.id == channel_id, c.c.user_id == user_id)
        return found[0] if found else None

    async def targets(self, user_id: str | None, kind: NoticeKind) -> builtins.list[Target]:
        """Every channel of `user_id` (None: of every user) that wants `kind`, opened."""
        wanted = ("," + c.c.kinds + ",").contains(f",{kind.value},")
        if user_id is None:
            return await self._targets(wanted)
        return await self._targets(wanted, c.c.user_id == user_id)

    async def reseal_all(self) -> int:
        """Re-seal every channel's URL under the current key (after a key rotation), bound
        as before to its user and channel; returns how many changed. One transaction: a
        URL that does not open (`InvalidTag`) writes nothing; a rerun changes nothing."""

        async def work(conn: AsyncConnection) -> int:
            changed = 0
            rows = (await conn.execute(select(c.c.id, c.c.user_id, c.c.url_sealed))).all()
            for row in rows:
                if not self.sealer.needs_reseal(row.url_sealed):
                    continue
                field = _field(str(row.id))
                sealed = self.sealer.reseal(row.url_sealed, user_id=row.user_id, field=field)
                await conn.execute(update(c).where(c.c.id == row.id).values(url_sealed=sealed))
                changed += 1
            return changed

        return await self.db.transaction(work)

    async def _targets(self, *where: object) -> builtins.list[Target]:
        async def work(conn: AsyncConnection) -> list[tuple[str, str, str]]:
            query = select(c.c.id, c.c.user_id, c.c.url_sealed).where(*where)  # type: ignore[arg-type]
            return [(str(r.id), r.user_id, r.url_sealed) for r in (await conn.execute(query)).all()]

        rows = await self.db.transaction(work, write=False)
        return [
            Target(cid, uid, self.sealer.open(sealed, user_id=uid, field=_field(cid)))
            for cid, uid, sealed in rows
        ]


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
