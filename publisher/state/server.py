"""A connection to a state database on a server, its schema made or checked first (see `migrate`).

A database error raised while it is open, by the caller too, becomes a StateError naming the database
(its password hidden), so a server that goes away mid-run is one line, never a traceback."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.exc import DatabaseError, OperationalError

from publisher.errors import StateError
from publisher.state.engine import SERVER_HINT, connect, first_line
from publisher.state.location import StateLocation
from publisher.state.migrate import ensure_schema


@contextmanager
def server_connection(location: StateLocation, *, write: bool) -> Iterator[sa.Connection]:
    """A pooled connection to the server's state database, with the publisher schema in it."""
    with connect(location) as conn:
        try:
            ensure_schema(conn, location, write=write)
            yield conn
        except (OperationalError, DatabaseError) as e:
            raise StateError(f"{location}: state database unusable: {first_line(e)}", SERVER_HINT) from e
