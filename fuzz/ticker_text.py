"""Coverage-guided fuzzing of the ticker's JSON text messages (atheris / libFuzzer).

Run: `python -m fuzz.ticker_text -runs=20000 CORPUS_DIR`. Each input is read as
bytes and as text by both decoders (server-to-client and client-to-server);
neither may raise, and what they return must be of the documented shape.
"""

from __future__ import annotations

from fuzz.harness import instrumented, main

with instrumented(__name__ == "__main__"):
    from hmt.kite.ticker_messages import (
        MAX_TOKEN,
        BadText,
        ClientCommand,
        OrderUpdate,
        ServerError,
        ServerMessage,
        decode_client_text,
        decode_server_text,
    )
    from hmt.kite.ticks import FrameError, Mode


def check(data: bytes) -> None:
    """Decode `data` every way and check the shapes; AssertionError if one is wrong."""
    for text in (data, data.decode("utf-8", "replace")):
        server = decode_server_text(text)
        assert isinstance(server, OrderUpdate | ServerError | ServerMessage | BadText), server
        if isinstance(server, BadText):
            assert isinstance(server.kind, FrameError), server
            assert server.reason, server
        elif isinstance(server, OrderUpdate):
            assert isinstance(server.data, dict)
            assert server.order_id is None or isinstance(server.order_id, str)
            assert server.status is None or isinstance(server.status, str)
        else:
            assert isinstance(server.message, str)
        client = decode_client_text(text)
        if isinstance(client, BadText):
            assert client.kind is FrameError.BAD_TEXT, client
            assert client.reason, client
            continue
        assert isinstance(client, ClientCommand), client
        assert client.action in {"subscribe", "unsubscribe", "mode"}, client.action
        assert (client.mode is None) == (client.action != "mode")
        assert client.mode is None or isinstance(client.mode, Mode)
        assert all(type(t) is int and 0 < t <= MAX_TOKEN for t in client.tokens), client.tokens


def seeds() -> list[bytes]:
    """One of each documented message, both directions, for libFuzzer to start from."""
    return [
        b'{"type":"order","data":{"order_id":"151220000000000","status":"COMPLETE"}}',
        b'{"type":"error","data":"invalid token"}',
        b'{"type":"message","data":{"text":"maintenance"}}',
        b'{"a":"subscribe","v":[408065,738561]}',
        b'{"a":"unsubscribe","v":[408065]}',
        b'{"a":"mode","v":["full",[408065]]}',
    ]


if __name__ == "__main__":
    main(check, seeds())
