"""hmt: a server-side GTT/OCO trigger engine for Zerodha Kite."""

__version__ = "0.1.0"
