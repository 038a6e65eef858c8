"""Persistence: SQLAlchemy tables, the async engine, and alembic migrations.

Runs on SQLite (the embedded default, through aiosqlite) and PostgreSQL (psycopg 3).
"""
