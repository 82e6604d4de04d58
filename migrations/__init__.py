"""Alembic migrations of the Mashpipe database (see ``app/storage/migrate.py``)."""
