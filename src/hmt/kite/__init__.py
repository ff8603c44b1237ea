"""The Kite Connect adapter: ticker protocol and client, REST orders, session."""
