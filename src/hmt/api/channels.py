"""Notification channels: add, list, test and delete your own (docs/notifications.md).

A channel's URL is accepted once and never returned: a listing shows its hint
(secrets masked). Bad input is a 422 naming the field: a URL apprise does not
understand, or whose host is a loopback, private, link-local or metadata
address (RELIABILITY test 23) unless the operator allowed its range.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Response, status
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from hmt.api.auth import Caller, Writer
from hmt.api.problems import ApiError
from hmt.api.runtime import Runtime
from hmt.api.schemas import Problem
from hmt.core.notices import ALL_KINDS, NoticeKind, parse_kinds
from hmt.engine.channels import ChannelError
from hmt.engine.facade import ChannelsApi
from hmt.logs import register_secret
from hmt.store.channels import Channel

router = APIRouter(prefix="/notifications/channels", tags=["notifications"])

NOT_CONFIGURED: dict[int | str, dict[str, Any]] = {
    409: {"model": Problem, "description": "HMT_SECRET_KEY is not set"}
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "No such channel of yours"}
}


class ChannelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=64)]
    # An apprise URL: tgram://, mailto://, json://, slack://, discord:// ... Secret: it
    # carries the service's token.
    url: Annotated[SecretStr, Field(min_length=4, max_length=2048)]
    kinds: list[str] = Field(default_factory=lambda: [kind.value for kind in ALL_KINDS])

    @field_validator("kinds")
    @classmethod
    def _kinds(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("choose at least one kind of notice")
        parse_kinds(value)  # a ValueError naming the unknown kinds
        return value


class ChannelOut(BaseModel):
    id: str
    name: str
    url_hint: str
    kinds: list[NoticeKind]
    created_at: datetime


class ChannelTestOut(BaseModel):
    delivered: bool
    error: str | None = None


def _out(channel: Channel) -> ChannelOut:
    return ChannelOut(
        id=channel.id,
        name=channel.name,
        url_hint=channel.url_hint,
        kinds=list(channel.kinds),
        created_at=channel.created_at,
    )


def _channels(runtime: Runtime) -> ChannelsApi:
    channels = runtime.channels
    if channels is None:
        raise ApiError(
            status.HTTP_409_CONFLICT,
            "notifications need HMT_SECRET_KEY: channel URLs are stored only sealed",
            field="server",
            rule="not_configured",
        )
    return channels


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={
        422: {"model": Problem, "description": "A field broke a rule"},
        **NOT_CONFIGURED,
    },
)
async def add_channel(body: ChannelIn, runtime: Runtime, caller: Writer) -> ChannelOut:
    url = body.url.get_secret_value().strip()
    register_secret(url)
    try:
        channel = await _channels(runtime).add(
            caller.user_id, name=body.name, url=url, kinds=parse_kinds(body.kinds)
        )
    except ChannelError as error:
        raise ApiError(
            422, f"{error.field}: {error.message}", field=error.field, rule="channel"
        ) from None
    return _out(channel)


@router.get("", responses=NOT_CONFIGURED)
async def list_channels(runtime: Runtime, caller: Caller) -> list[ChannelOut]:
    return [_out(c) for c in await _channels(runtime).list(caller.user_id)]


@router.post("/{channel_id}/test", responses={**NOT_FOUND, **NOT_CONFIGURED})
async def test_channel(channel_id: str, runtime: Runtime, caller: Writer) -> ChannelTestOut:
    """Send a test notice now (no retry): whether it was delivered, and if not, why."""
    result = await _channels(runtime).test(caller.user_id, channel_id)
    if result is False:
        raise ApiError(404, "no such channel", field="channel_id", rule="not_found")
    if result is None:
        return ChannelTestOut(delivered=True)
    return ChannelTestOut(delivered=False, error=str(result))


@router.delete(
    "/{channel_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**NOT_FOUND, **NOT_CONFIGURED},
)
async def delete_channel(channel_id: str, runtime: Runtime, caller: Writer) -> Response:
    if not await _channels(runtime).delete(caller.user_id, channel_id):
        raise ApiError(404, "no such channel", field="channel_id", rule="not_found")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
