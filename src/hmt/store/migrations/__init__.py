"""Alembic migrations, shipped inside the package and run by `hmt.store.migrate`."""
