"""The part of Upstox's v3 feed schema hmt reads, built at import time for protobuf's parser.

Written here from the schema in docs/upstox/FACTS.md 1.4 (Upstox ships its
.proto inside its SDKs): the FeedResponse map, the Feed oneof, and the LTPC
wherever a mode puts it. Fields hmt does not read (depth, OHLC, greeks,
market info) are not declared: protobuf keeps them as unknown fields, so a
frame with more than this says still parses. Building the descriptor in code
instead of vendoring protoc's output keeps one small, reviewed definition and
no generated file whose protobuf version must match the runtime's.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

PACKAGE = "hmt.upstox.feed"
_F = descriptor_pb2.FieldDescriptorProto


def _field(
    message: descriptor_pb2.DescriptorProto,
    name: str,
    number: int,
    kind: int,
    type_name: str | None = None,
    *,
    repeated: bool = False,
    oneof: int | None = None,
) -> None:
    added = message.field.add(name=name, number=number, type=kind)
    added.label = _F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL
    if type_name is not None:
        added.type_name = f".{PACKAGE}.{type_name}"
    if oneof is not None:
        added.oneof_index = oneof


def _file() -> descriptor_pb2.FileDescriptorProto:
    proto = descriptor_pb2.FileDescriptorProto(
        name="hmt_upstox_feed_v3.proto", package=PACKAGE, syntax="proto3"
    )
    ltpc = proto.message_type.add(name="LTPC")
    _field(ltpc, "ltp", 1, _F.TYPE_DOUBLE)
    _field(ltpc, "ltt", 2, _F.TYPE_INT64)
    _field(ltpc, "ltq", 3, _F.TYPE_INT64)
    _field(ltpc, "cp", 4, _F.TYPE_DOUBLE)
    for name in ("MarketFullFeed", "IndexFullFeed", "FirstLevelWithGreeks"):
        _field(proto.message_type.add(name=name), "ltpc", 1, _F.TYPE_MESSAGE, "LTPC")
    full = proto.message_type.add(name="FullFeed")
    full.oneof_decl.add(name="FullFeedUnion")
    _field(full, "marketFF", 1, _F.TYPE_MESSAGE, "MarketFullFeed", oneof=0)
    _field(full, "indexFF", 2, _F.TYPE_MESSAGE, "IndexFullFeed", oneof=0)
    feed = proto.message_type.add(name="Feed")
    feed.oneof_decl.add(name="FeedUnion")
    _field(feed, "ltpc", 1, _F.TYPE_MESSAGE, "LTPC", oneof=0)
    _field(feed, "fullFeed", 2, _F.TYPE_MESSAGE, "FullFeed", oneof=0)
    _field(feed, "firstLevelWithGreeks", 3, _F.TYPE_MESSAGE, "FirstLevelWithGreeks", oneof=0)
    _field(feed, "requestMode", 4, _F.TYPE_INT32)  # an enum on the wire: a varint
    response = proto.message_type.add(name="FeedResponse")
    entry = response.nested_type.add(name="FeedsEntry")
    entry.options.map_entry = True
    _field(entry, "key", 1, _F.TYPE_STRING)
    _field(entry, "value", 2, _F.TYPE_MESSAGE, "Feed")
    _field(response, "type", 1, _F.TYPE_INT32)
    _field(response, "feeds", 2, _F.TYPE_MESSAGE, "FeedResponse.FeedsEntry", repeated=True)
    _field(response, "currentTs", 3, _F.TYPE_INT64)
    return proto


# A pool of our own: the SDK's classes (in tests) register the same names in the default one.
# The stubs leave the pool's methods untyped; what they return is used only here.
_POOL = descriptor_pool.DescriptorPool()
_POOL.Add(_file())  # type: ignore[no-untyped-call,unused-ignore]
FeedResponse: Any = message_factory.GetMessageClass(
    _POOL.FindMessageTypeByName(f"{PACKAGE}.FeedResponse")  # type: ignore[no-untyped-call,unused-ignore]
)
