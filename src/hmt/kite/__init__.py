"""The Zerodha Kite adapter: the ticker wire protocol and its WebSocket client.

`ticks` holds the decoded values, `ticker_protocol` the binary codec,
`ticker_messages` the JSON text messages, `subscriptions` which connection
carries which instrument, `backoff` the reconnect schedule and `ticker` the
asyncio client that ties them to sockets.
"""
