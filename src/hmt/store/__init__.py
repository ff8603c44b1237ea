"""Persistence: SQLite and PostgreSQL tables, migrations, repositories and the change feed.

The database is the source of truth for every trigger and the place where
exactly-once is decided (the conditional claim in `triggers`). This package is
an adapter: it takes its settings as parameters and never reads hmt.config.
"""
