"""The backtest's edges: history from files and Kite's candles, the report and its plots.

The replay itself is pure and lives in the core (`hmt.core.replay`); this
adapter reads what it replays and writes what it found (docs/backtest.md).
"""
