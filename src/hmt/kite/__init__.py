"""The Zerodha Kite adapter: the ticker wire protocol and client, REST orders.

`ticks` holds the decoded values, `ticker_protocol` the binary codec,
`ticker_messages` the JSON text messages, `subscriptions` which connection
carries which instrument, `backoff` the reconnect schedule and `ticker` the
asyncio client that ties them to sockets. `rest` is the REST transport and
its error classification, `orders` the order endpoints.
"""
