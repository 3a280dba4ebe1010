"""Alembic migrations of the state database: one history for SQLite and PostgreSQL, run by
`publisher.state.migrate` on a connection it holds (never an operator's CLI step)."""
