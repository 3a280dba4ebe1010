"""Subscribers of the digest, over the `subscribers` table of the state database.

Identity: the validated address, lower-cased (`email`), so Bob@Example.COM and bob@example.com are
one subscriber; `address` keeps the validated spelling for the To header. Every subscriber gets a
random id (`uuid4().hex`) once; it names the .eml file and is signed into the unsubscribe token.

Status: active (receives the digest), pending (reserved for a confirmation step), unsubscribed (asked
to leave, or removed by the operator) and bounced (too many permanent failures). Nobody who left is
made active again behind their back: only an explicit `add(..., reactivate=True)` does that, never an
import. Library code never reads the clock: every change takes `now`.

Several processes may change the same rows at once (`publisher serve` on two machines, senders marking
bounces, against one PostgreSQL state): a read-then-write locks the row it read (SELECT ... FOR UPDATE;
SQLite has one writer at a time and ignores it), and an insert that may meet a row another process
inserted meanwhile runs in a savepoint, so a unique violation (which aborts the whole transaction on
PostgreSQL) undoes that insert alone, and the row is read again.
"""

from __future__ import annotations

import builtins
import unicodedata
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import sqlalchemy as sa
from email_validator import EmailNotValidError, validate_email
from sqlalchemy.exc import IntegrityError

from publisher.deliver import csvio
from publisher.errors import PublisherError
from publisher.state.dialect import savepoint
from publisher.state.schema import subscribers as table

STATUSES = ("pending", "active", "unsubscribed", "bounced")
BATCH = 500  # rows per query when streaming, and per insert when importing
IMPORT_RETRIES = 5  # times a batch of an import is read and inserted again when another process got there first
SMTPUTF8_REASON = ("the address needs SMTPUTF8 (non-ASCII before the @); set [email] smtputf8 = true if your "
                   "SMTP server supports it")


class SubscriberError(PublisherError):
    """Bad usage: an invalid address, an unknown subscriber, an unreadable import file."""

    exit_code = 2


class DuplicateSubscriber(SubscriberError):
    """The address is already subscribed (or left, and reactivation was not asked for); nothing changed."""

    exit_code = 1


class NeedsSmtpUtf8(SubscriberError):
    """The address has a non-ASCII local part and SMTPUTF8 is not enabled (`[email] smtputf8`)."""


class _NoSmtpUtf8(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Subscriber:
    id: str
    email: str  # lower case: the identity
    address: str  # as validated, for the To header
    name: str
    status: str
    bounces: int


@dataclass
class ImportReport:
    added: int = 0
    duplicates: int = 0  # already known: active, or left earlier (see `inactive`)
    invalid: list[tuple[int, str, str]] = field(default_factory=list)  # (line number, value, reason)
    inactive: int = 0  # of the duplicates: unsubscribed, bounced or pending ones, left as they are


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


def _validated(value: str) -> Any:
    """email-validator's result for `value`; ValueError with the reason when it is not a valid address."""
    text = value.strip(" \t")
    if not text:
        raise ValueError("empty address")
    if problem := _undecodable(text):
        raise ValueError(problem)
    try:
        return validate_email(text, check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError as e:
        raise ValueError(str(e).rstrip(".")) from e


def _parse(value: str, smtputf8: bool = True) -> tuple[str, str]:
    """(identity, address) in the form it is sent: the domain in IDNA (ASCII) form, the local part as
    it is. A non-ASCII local part needs SMTPUTF8: ValueError with that reason unless `smtputf8`."""
    valid = _validated(value)
    if valid.smtputf8 and not smtputf8:
        raise _NoSmtpUtf8(SMTPUTF8_REASON)
    address = f"{valid.local_part}@{valid.ascii_domain}"
    return address.lower(), address


def _identities(value: str) -> list[str]:
    """The identity of an address, and the one it had when the domain was kept in Unicode (older rows)."""
    valid = _validated(value)
    return list(dict.fromkeys([f"{valid.local_part}@{valid.ascii_domain}".lower(), valid.normalized.lower()]))


def normalize(value: str, smtputf8: bool = False) -> tuple[str, str]:
    """(identity, address) of an email address; SubscriberError when it is not a valid one, NeedsSmtpUtf8
    when it has a non-ASCII local part and `smtputf8` (the `email.smtputf8` setting) is off."""
    try:
        return _parse(value, smtputf8)
    except _NoSmtpUtf8 as e:
        raise NeedsSmtpUtf8(f"{value!r} cannot be subscribed: {e}",
                            "or give an address with only ASCII characters before the @") from e
    except ValueError as e:
        raise SubscriberError(f"{value!r} is not a valid email address: {e}",
                              "give an address such as reader@example.com") from e


def clean_name(value: str | None) -> str:
    """One line of printable text: control characters (CR, LF, tab ...) become spaces, runs of spaces one."""
    text = "".join(" " if unicodedata.category(c) in ("Cc", "Zl", "Zp") else c for c in value or "")
    return " ".join(text.split())


def _subscriber(row: Any) -> Subscriber:
    return Subscriber(row.id, row.email, row.address, row.name, row.status, row.bounces)


_COLUMNS = (table.c.id, table.c.email, table.c.address, table.c.name, table.c.status, table.c.bounces)


class Subscribers:
    """Subscriber management on a connection inside the caller's transaction (`Store.conn`)."""

    def __init__(self, conn: sa.Connection, *, smtputf8: bool = False) -> None:
        self.conn = conn
        self.smtputf8 = smtputf8  # accept addresses with a non-ASCII local part (setting email.smtputf8)

    # reading

    def get(self, email: str, *, lock: bool = False) -> Subscriber | None:
        """The subscriber with this address (in any case), or None; SubscriberError when it is invalid.
        `lock`: the row stays locked until the transaction ends (before changing it)."""
        try:
            identities = _identities(email)
        except ValueError as e:
            raise SubscriberError(f"{email!r} is not a valid email address: {e}",
                                  "give an address such as reader@example.com") from e
        return self._one(table.c.email.in_(identities), lock)

    def by_id(self, subscriber_id: str, *, lock: bool = False) -> Subscriber | None:
        return self._one(table.c.id == subscriber_id, lock)

    def _one(self, where: sa.ColumnElement[bool], lock: bool) -> Subscriber | None:
        query = sa.select(*_COLUMNS).where(where).order_by(table.c.email)
        row = self.conn.execute(query.with_for_update() if lock else query).first()
        return _subscriber(row) if row else None

    def list(self, status: str | None = None) -> builtins.list[Subscriber]:
        """Every subscriber (or those with `status`), by address."""
        return builtins.list(self._by_email(status))

    def counts(self) -> dict[str, int]:
        """status -> number of subscribers, every status included."""
        query = sa.select(table.c.status, sa.func.count()).group_by(table.c.status)
        found: dict[str, int] = {row[0]: int(row[1]) for row in self.conn.execute(query)}
        return {status: found.get(status, 0) for status in STATUSES}

    def active(self, batch: int = BATCH) -> Iterator[Subscriber]:
        """Active subscribers by id, a batch per query (never all in memory). Keyset paging: rows
        changed (or commits made) while iterating do not disturb it."""
        after = ""
        while True:
            query = (sa.select(*_COLUMNS).where(table.c.status == "active", table.c.id > after)
                     .order_by(table.c.id).limit(batch))
            rows = self.conn.execute(query).all()
            for row in rows:
                yield _subscriber(row)
            if len(rows) < batch:
                return
            after = rows[-1].id

    def _by_email(self, status: str | None, batch: int = BATCH, *columns: Any) -> Iterator[Any]:
        if status is not None and status not in STATUSES:
            raise SubscriberError(f"unknown status {status!r}", f"use one of {', '.join(STATUSES)}")
        after = ""
        while True:
            query = sa.select(*(columns or _COLUMNS)).where(table.c.email > after)
            if status is not None:
                query = query.where(table.c.status == status)
            rows = self.conn.execute(query.order_by(table.c.email).limit(batch)).all()
            for row in rows:
                yield row if columns else _subscriber(row)
            if len(rows) < batch:
                return
            after = rows[-1].email

    # changing

    def add(self, email: str, name: str, now: datetime, *, reactivate: bool = False) -> Subscriber:
        """Subscribe `email` (active). An active one raises DuplicateSubscriber; so does one who
        unsubscribed, bounced or is pending, unless `reactivate` (an explicit request by the operator),
        which makes them active again with no bounces (and takes the new spelling and name)."""
        identity, address = normalize(email, self.smtputf8)
        name = clean_name(name)
        old = self.get(email, lock=True)
        if old is None:
            values = self._new(identity, address, name, now)
            if self._insert_one(values):
                return Subscriber(values["id"], identity, address, name, "active", 0)
            old = self.get(email, lock=True)  # another process added the address a moment ago
            if old is None:
                raise SubscriberError(f"{address} was changed by another process meanwhile", "try again")
        if old.status == "active":
            raise DuplicateSubscriber(f"{old.address} is already subscribed", "nothing changed")
        if not reactivate:
            raise DuplicateSubscriber(f"{old.address} is {old.status}",
                                      "an explicit add (reactivate=True) subscribes them again")
        new = Subscriber(old.id, identity, address, name or old.name, "active", 0)
        self.conn.execute(table.update().where(table.c.id == old.id).values(
            address=new.address, name=new.name, status="active", bounces=0, changed=_iso(now)))
        return new

    def remove(self, email: str, now: datetime, forget: bool = False) -> Subscriber:
        """Unsubscribe `email` (the row stays, so an import cannot bring them back), or with `forget`
        delete the row. Returns the subscriber as they were before; SubscriberError when unknown."""
        old = self.get(email, lock=True)
        if old is None:
            raise SubscriberError(f"no subscriber {email.strip()!r}",
                                  "'publisher subscribers list' shows who is subscribed")
        if forget:
            self.conn.execute(table.delete().where(table.c.id == old.id))
        elif old.status != "unsubscribed":
            self._set_status(old.id, "unsubscribed", now)
        return old

    def unsubscribe_id(self, subscriber_id: str, now: datetime) -> Subscriber | None:
        """The reader's own unsubscribe (from a verified token): idempotent. None when the id is unknown
        (the subscriber was forgotten meanwhile)."""
        old = self.by_id(subscriber_id, lock=True)
        if old is None:
            return None
        if old.status != "unsubscribed":
            self._set_status(old.id, "unsubscribed", now)
        return Subscriber(old.id, old.email, old.address, old.name, "unsubscribed", old.bounces)

    def request(self, identity: str, address: str, name: str, now: datetime) -> Subscriber | None:
        """A web sign-up (double opt-in): a new pending row, or the existing pending, unsubscribed or
        bounced one, left as it is until confirmed. None for an active subscriber (or when the same
        address was inserted by a concurrent request a moment ago)."""
        existing = self.get(identity)
        if existing is not None:
            return None if existing.status == "active" else existing
        new_id = uuid.uuid4().hex
        values = {"id": new_id, "email": identity, "address": address, "name": name, "status": "pending",
                  "bounces": 0, "created": _iso(now), "changed": _iso(now)}
        if not self._insert_one(values):
            return None
        return Subscriber(new_id, identity, address, name, "pending", 0)

    def _insert_one(self, values: dict[str, Any]) -> bool:
        """Insert one row in a savepoint; False (nothing changed) when its address or id is taken."""
        try:
            with savepoint(self.conn):
                self.conn.execute(table.insert().values(values))
        except IntegrityError:
            return False
        return True

    def confirm(self, subscriber_id: str, issued: int, now: datetime) -> str:
        """Activate the subscriber a confirmation link (issued at POSIX time `issued`) names: "confirmed",
        "already" (active before), "unknown" (the row is gone) or "stale" (they unsubscribed or bounced
        after the link was sent: a link never brings back someone who left)."""
        query = sa.select(table.c.status, table.c.changed).where(table.c.id == subscriber_id).with_for_update()
        row = self.conn.execute(query).first()
        if row is None:
            return "unknown"
        status, changed = row
        if status == "active":
            return "already"
        if status != "pending" and int(datetime.fromisoformat(changed).timestamp()) > issued:
            return "stale"
        self.conn.execute(table.update().where(table.c.id == subscriber_id).values(
            status="active", bounces=0, changed=_iso(now)))
        return "confirmed"

    def mark_bounce(self, subscriber_id: str, now: datetime, max_bounces: int) -> Subscriber | None:
        """Count a permanent failure; at `max_bounces` an active (or pending) subscriber becomes
        bounced (an unsubscribed one stays unsubscribed). None when the id is unknown."""
        old = self.by_id(subscriber_id, lock=True)
        if old is None:
            return None
        bounces = old.bounces + 1
        status = "bounced" if bounces >= max_bounces and old.status in ("active", "pending") else old.status
        self.conn.execute(table.update().where(table.c.id == old.id).values(
            bounces=bounces, status=status, changed=_iso(now)))
        return Subscriber(old.id, old.email, old.address, old.name, status, bounces)

    def _set_status(self, subscriber_id: str, status: str, now: datetime) -> None:
        self.conn.execute(table.update().where(table.c.id == subscriber_id).values(
            status=status, changed=_iso(now)))

    @staticmethod
    def _new(identity: str, address: str, name: str, now: datetime) -> dict[str, Any]:
        stamp = _iso(now)
        return {"id": uuid.uuid4().hex, "email": identity, "address": address, "name": name,
                "status": "active", "bounces": 0, "created": stamp, "changed": stamp}

    # files

    def import_csv(self, path: Path, now: datetime) -> ImportReport:
        """Add the rows of a CSV file with a header row naming an `email` column (and maybe `name`;
        other columns are ignored; a BOM, blank lines, `;` or tab separators are fine). Invalid rows
        are reported and skipped; known addresses (whatever their status) count as duplicates and
        are left as they are: an import never re-subscribes someone who left."""
        try:
            with path.open(encoding="utf-8-sig", errors="surrogateescape", newline="") as stream:
                return self.import_stream(stream, now, str(path))
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as e:
            raise SubscriberError(f"{path}: no such file", "give the path of a CSV file") from e
        except OSError as e:
            raise SubscriberError(f"{path}: cannot read: {e.strerror or e}") from e

    def import_stream(self, stream: TextIO, now: datetime, where: str = "input") -> ImportReport:
        """`import_csv` on an open text stream (opened with newline="")."""
        try:
            rows = csvio.entries(stream)
        except csvio.HeaderError as e:
            raise SubscriberError(f"{where}: {e}", "the first row must name the columns, e.g. email,name") from e
        report = ImportReport()
        pending: dict[str, tuple[int, str, str, str]] = {}  # identity -> (line, value, address, name)
        for entry in rows:
            try:
                if entry.problem:
                    raise ValueError(entry.problem)
                identity, address = _parse(entry.email, self.smtputf8)
                if problem := _undecodable(entry.name):
                    raise ValueError(f"name: {problem}")
            except ValueError as e:
                report.invalid.append((entry.line, entry.email, str(e)))
                continue
            if identity in pending:
                report.duplicates += 1
                continue
            pending[identity] = (entry.line, entry.email, address, clean_name(entry.name))
            if len(pending) >= BATCH:
                self._insert_new(pending, now, report)
                pending = {}
        self._insert_new(pending, now, report)
        return report

    def _insert_new(self, pending: dict[str, tuple[int, str, str, str]], now: datetime,
                    report: ImportReport) -> None:
        """Insert the addresses of `pending` that the state does not know yet, in one statement in a
        savepoint; when another process inserted one of them meanwhile (a unique violation), read the
        known ones again and retry."""
        if not pending:
            return
        for _attempt in range(IMPORT_RETRIES):
            rows, duplicates, inactive = self._unknown(pending, now)
            try:
                with savepoint(self.conn):
                    if rows:
                        self.conn.execute(table.insert(), rows)
            except IntegrityError:
                continue
            report.added += len(rows)
            report.duplicates += duplicates
            report.inactive += inactive
            return
        raise SubscriberError(f"{len(pending)} addresses kept changing while being imported",
                              "another process is adding the same addresses; run the import again")

    def _unknown(self, pending: dict[str, tuple[int, str, str, str]],
                 now: datetime) -> tuple[builtins.list[dict[str, Any]], int, int]:
        """(new rows for the addresses the state does not know, by address: two imports at once then lock
        the rows they share in the same order, never each waiting for the other; known ones; known ones
        not active)."""
        # an IDN domain may still be stored in Unicode by an older version: look for that form too
        forms = {identity: _identities(value) if "xn--" in identity else [identity]
                 for identity, (_line, value, _address, _name) in pending.items()}
        wanted = builtins.list({form for found in forms.values() for form in found})
        known = dict(self.conn.execute(sa.select(table.c.email, table.c.status).where(
            table.c.email.in_(wanted))).all())
        rows, duplicates, inactive = [], 0, 0
        for identity, (_line, _value, address, name) in pending.items():
            if stored := next((form for form in forms[identity] if form in known), None):
                duplicates += 1
                inactive += known[stored] != "active"
            else:
                rows.append(self._new(identity, address, name, now))
        return sorted(rows, key=lambda row: str(row["email"])), duplicates, inactive

    def export(self, stream: TextIO, status: str | None = None) -> int:
        """Write CSV (email,name,status,created; by address) that `import_csv` reads back; returns the
        number of rows. `email` is the address as validated (its lower case is the identity). A cell a
        spreadsheet would run as a formula is neutralised (`csvio.escape_cell`); the import undoes it."""
        columns = (table.c.email, table.c.address, table.c.name, table.c.status, table.c.created)
        rows = self._by_email(status, BATCH, *columns)
        return csvio.write(stream, ((row.address, row.name, row.status, row.created) for row in rows))


def _undecodable(value: str) -> str | None:
    """Bytes that were not UTF-8 arrive as lone surrogates (errors="surrogateescape")."""
    if any("\udc80" <= c <= "\udcff" for c in value):
        return "not UTF-8 text (save the file as CSV UTF-8)"
    return None
