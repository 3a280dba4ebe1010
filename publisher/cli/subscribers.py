"""`publisher subscribers ...`: add, remove, list, import and export the subscribers of the digest.

Like the other modules of publisher.cli, this one only parses, calls the library (publisher.deliver.subscribers)
and prints; errors become one line on stderr and the error's exit code.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from publisher.cli.options import config_option, fail, read_settings

if TYPE_CHECKING:
    from publisher.deliver.subscribers import Subscribers

STATUSES = ("pending", "active", "unsubscribed", "bounced")  # as publisher.deliver.subscribers.STATUSES
SHOWN = 80  # characters of an invalid value shown in the import report


@contextmanager
def _subscribers(config: Path | None, *, write: bool = True) -> Iterator[Subscribers]:
    """The subscribers of the configured state database; a PublisherError ends the command."""
    from publisher.deliver.subscribers import Subscribers
    from publisher.errors import PublisherError
    from publisher.store import open_store

    settings = read_settings(config)
    try:
        with open_store(settings.paths.state, write=write) as store:
            yield Subscribers(store.conn, smtputf8=settings.email.smtputf8)
    except PublisherError as e:
        fail(e, e.exit_code)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def subscribers() -> None:
    """Manage the subscribers of the digest (kept in the state database)."""


@subscribers.command()
@click.argument("email")
@click.option("--name", default="", help="The subscriber's name, for the greeting and the To header.")
@config_option
def add(email: str, name: str, config: Path | None) -> None:
    """Subscribe EMAIL. Someone who unsubscribed or bounced is subscribed again: adding them here is
    the operator's explicit decision (an import never does it). Exit 1 when already subscribed."""
    with _subscribers(config) as people:
        before = people.get(email)
        added = people.add(email, name, datetime.now(UTC), reactivate=True)
    if before is None:
        click.echo(f"added {added.address}")
    else:
        click.echo(f"subscribed {added.address} again (was {before.status})")


@subscribers.command()
@click.argument("email")
@click.option("--forget", is_flag=True, help="Delete the subscriber's row instead of keeping it as unsubscribed "
                                             "(a later import may then subscribe them again).")
@config_option
def remove(email: str, forget: bool, config: Path | None) -> None:
    """Unsubscribe EMAIL (kept as unsubscribed, so that no import brings them back), or --forget them."""
    with _subscribers(config) as people:
        before = people.remove(email, datetime.now(UTC), forget=forget)
    if forget:
        click.echo(f"forgot {before.address} (the row is deleted)")
    elif before.status == "unsubscribed":
        click.echo(f"{before.address} was already unsubscribed")
    else:
        click.echo(f"unsubscribed {before.address}")


@subscribers.command("list")
@click.option("--status", type=click.Choice(STATUSES), help="Only the subscribers with this status.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@config_option
def list_(status: str | None, as_json: bool, config: Path | None) -> None:
    """List the subscribers by address: address, name, status and bounces."""
    with _subscribers(config, write=False) as people:
        rows = people.list(status)
        counts = people.counts()
    if as_json:
        for s in rows:
            click.echo(json.dumps({"id": s.id, "email": s.email, "address": s.address, "name": s.name,
                                   "status": s.status, "bounces": s.bounces}, ensure_ascii=False))
        return
    if not rows:
        click.echo(f"no {status} subscribers" if status else "no subscribers")
        return
    table = [("EMAIL", "NAME", "STATUS", "BOUNCES")] + [(s.address, s.name, s.status, str(s.bounces))
                                                        for s in rows]
    widths = [max(len(row[i]) for row in table) for i in range(3)]
    for address, name, state, bounces in table:
        click.echo(f"{address:<{widths[0]}}  {name:<{widths[1]}}  {state:<{widths[2]}}  {bounces}")
    total = sum(counts.values())
    click.echo(f"{len(rows)} shown of {total}: " + ", ".join(f"{counts[s]} {s}" for s in STATUSES))


@subscribers.command("import")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@config_option
def import_(file: Path, config: Path | None) -> None:
    """Add the subscribers of a CSV file with a header row naming an `email` column (and maybe `name`).
    Known addresses are left as they are (an unsubscribed one stays unsubscribed); invalid rows are
    listed and skipped. Exit 1 when some row was invalid."""
    with _subscribers(config) as people:
        report = people.import_csv(file, datetime.now(UTC))
    click.echo(f"{report.added} added, {report.duplicates} duplicates, {len(report.invalid)} invalid")
    if report.inactive:
        click.echo(f"{report.inactive} of the duplicates unsubscribed, bounced or are pending and were not "
                   f"subscribed again ('publisher subscribers add EMAIL' does that for one)")
    for line, value, reason in report.invalid:
        shown = value if len(value) <= SHOWN else value[:SHOWN] + "…"
        click.echo(f"line {line}: {shown!r}: {reason}")
    sys.exit(1 if report.invalid else 0)


@subscribers.command()
@click.option("--status", type=click.Choice(STATUSES), help="Only the subscribers with this status.")
@config_option
def export(status: str | None, config: Path | None) -> None:
    """Write the subscribers as CSV (email,name,status,created) to stdout; `import` reads it back."""
    with _subscribers(config, write=False) as people:
        people.export(sys.stdout, status)
