"""System tests run on both stores: a fresh SQLite file, and a private PostgreSQL database."""

from tests.support.databases import database_url, live_pg_url, sqlite_url

__all__ = ["database_url", "live_pg_url", "sqlite_url"]  # fixtures, found by pytest by name
