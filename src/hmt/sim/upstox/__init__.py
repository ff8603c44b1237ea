"""The Upstox simulator: Upstox's REST, OAuth2 login and protobuf v3 feed on loopback.

`wire` encodes the feed's frames and reads its requests (on its own, as the
Kite simulator does: the simulator never imports the adapter it tests),
`server` serves REST, the authorize step and the WebSocket feed on one
aiohttp application, with the Kite simulator's fault injection.
"""
