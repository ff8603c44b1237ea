"""The engine: wires the feed, the book, the store and the broker into one service."""
