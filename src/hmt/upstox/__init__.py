"""The Upstox adapter: the same roles as `hmt.kite`, for Upstox's API (docs/upstox/).

`feed_codec` decodes the v3 market-data feed's protobuf frames and builds its
requests (sans I/O), `prices` turns rupee doubles into the instrument's integer
units, `feed` is the asyncio WebSocket client, `rest` the REST transport and
its error classification, `orders` the order endpoints and the look-up by tag,
`tags` the tag rule, `session` the OAuth2 login and the token's daily expiry,
`instruments` the instrument master. Only the composition may import it.
"""
