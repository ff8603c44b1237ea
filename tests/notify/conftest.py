"""Notification tests run the whole system on loopback; the store where it matters."""

from tests.support.databases import database_url, live_pg_url, sqlite_url

__all__ = ["database_url", "live_pg_url", "sqlite_url"]  # fixtures, found by pytest by name
