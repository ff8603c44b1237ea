"""Notification channels on both backends: the URL sealed in its row, opened only for its
user and row; chosen by kind; listed without the URL."""

from __future__ import annotations

import pytest
from cryptography.exceptions import InvalidTag
from sqlalchemy import select, text, update

from hmt.core.notices import NoticeKind
from hmt.store.channels import MAX_PER_USER, ChannelStore, TooManyChannels
from hmt.store.db import Database
from hmt.store.sealing import Sealer
from hmt.store.tables import notify_channels

KEY = "k" * 32
HOOK = "json://hooks.example.com/CanaryHookKey8d7c6b5a"
BOT = "tgram://123456789:CanaryBotToken3e2f1a0b/4242"


async def test_sealed_at_rest_and_never_listed(db: Database) -> None:
    channels = ChannelStore(db, Sealer([KEY]))
    hook = await channels.add(
        "alice",
        name="hook",
        url=HOOK,
        url_hint="json://hooks.example.com/…",
        kinds=[NoticeKind.PLACED],
    )
    await channels.add(
        "alice", name="bot", url=BOT, url_hint="tgram://1...9", kinds=list(NoticeKind)
    )
    async with db.engine.connect() as conn:
        dump = repr((await conn.execute(text("SELECT * FROM hmt_notify_channels"))).all())
    assert "CanaryHookKey8d7c6b5a" not in dump
    assert "CanaryBotToken3e2f1a0b" not in dump
    listed = await channels.list("alice")
    assert [c.name for c in listed] == ["hook", "bot"]
    assert "Canary" not in repr(listed)
    assert await channels.list("bob") == []
    target = await channels.target("alice", hook.id)
    assert target is not None
    assert target.url == HOOK
    assert "Canary" not in repr(target)
    assert await channels.target("bob", hook.id) is None


async def test_targets_by_kind_and_user(db: Database) -> None:
    channels = ChannelStore(db, Sealer([KEY]))
    await channels.add("alice", name="a", url=HOOK, url_hint="h", kinds=[NoticeKind.PLACED])
    await channels.add(
        "bob", name="b", url=BOT, url_hint="h", kinds=[NoticeKind.FAILED, NoticeKind.LOGIN_REQUIRED]
    )
    assert [t.url for t in await channels.targets("alice", NoticeKind.PLACED)] == [HOOK]
    assert await channels.targets("alice", NoticeKind.FAILED) == []
    assert [t.user_id for t in await channels.targets(None, NoticeKind.LOGIN_REQUIRED)] == ["bob"]
    assert await channels.targets("bob", NoticeKind.GAP_FIRED) == []


async def test_a_sealed_url_moved_to_another_row_does_not_open(db: Database) -> None:
    channels = ChannelStore(db, Sealer([KEY]))
    first = await channels.add("alice", name="a", url=HOOK, url_hint="h", kinds=[NoticeKind.FIRED])
    second = await channels.add("alice", name="b", url=BOT, url_hint="h", kinds=[NoticeKind.FIRED])
    async with db.engine.begin() as conn:
        query = select(notify_channels.c.url_sealed).where(notify_channels.c.id == first.id)
        sealed = (await conn.execute(query)).scalar_one()
        await conn.execute(
            update(notify_channels)
            .where(notify_channels.c.id == second.id)
            .values(url_sealed=sealed)
        )
    with pytest.raises(InvalidTag):
        await channels.target("alice", second.id)


async def test_delete_only_your_own_and_a_cap_per_user(db: Database) -> None:
    channels = ChannelStore(db, Sealer([KEY]))
    mine = await channels.add("alice", name="a", url=HOOK, url_hint="h", kinds=[NoticeKind.FIRED])
    assert not await channels.delete("bob", mine.id)
    assert not await channels.delete("alice", "not-a-uuid")
    assert await channels.delete("alice", mine.id)
    assert not await channels.delete("alice", mine.id)
    for n in range(MAX_PER_USER):
        await channels.add("alice", name=f"c{n}", url=HOOK, url_hint="h", kinds=[NoticeKind.FIRED])
    with pytest.raises(TooManyChannels):
        await channels.add(
            "alice", name="one more", url=HOOK, url_hint="h", kinds=[NoticeKind.FIRED]
        )
    assert len(await channels.list("alice")) == MAX_PER_USER


async def test_reseal_all_moves_every_url_to_the_new_key(db: Database) -> None:
    """Sealed under OLD, re-sealed with [KEY, OLD]: every URL opens with KEY alone; a
    rerun changes nothing; a URL no key opens writes nothing."""
    old = "o" * 32
    before = ChannelStore(db, Sealer([old]))
    hook = await before.add("alice", name="hook", url=HOOK, url_hint="h", kinds=[NoticeKind.PLACED])
    await before.add("bob", name="bot", url=BOT, url_hint="b", kinds=[NoticeKind.PLACED])
    with pytest.raises(InvalidTag):  # KEY alone cannot open OLD's values yet
        await ChannelStore(db, Sealer([KEY])).targets(None, NoticeKind.PLACED)
    assert await ChannelStore(db, Sealer([KEY, old])).reseal_all() == 2
    assert await ChannelStore(db, Sealer([KEY, old])).reseal_all() == 0
    after = ChannelStore(db, Sealer([KEY]))
    assert sorted(t.url for t in await after.targets(None, NoticeKind.PLACED)) == sorted(
        [HOOK, BOT]
    )
    target = await after.target("alice", hook.id)
    assert target is not None
    assert target.url == HOOK
    with pytest.raises(InvalidTag):
        await ChannelStore(db, Sealer(["n" * 32])).reseal_all()
