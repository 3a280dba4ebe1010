"""`publisher publish`, `send`, `check`, `init`, `preview` and `related`: parse, call the library, print."""

from __future__ import annotations

import gc
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from publisher.cli.options import (
    ProgressBar,
    clock_option,
    clock_source,
    config_option,
    fail,
    locked,
    parse_clock,
    read_settings,
    wait_option,
)
from publisher.plural import count

if TYPE_CHECKING:
    from publisher.config import Settings
    from publisher.models import PublishReport


def _report(report: PublishReport, seconds: float, dry_run: bool) -> None:
    for problem in report.problems:
        click.echo(f"{problem.severity}: {problem}", err=True)
    verb = "to write" if dry_run else "written"
    hidden = f", {report.hidden} waiting (draft or future)" if report.hidden else ""
    digest = f"digest {report.digest}" if report.digest else "no new articles, no digest"
    click.echo(f"{count(report.read, 'article')} read, {report.published} published, {report.skipped} skipped "
               f"with errors{hidden}; {digest}; files {verb}: {len(report.written)}, unchanged: "
               f"{len(report.unchanged)}; {seconds:.2f} s")


def _run(settings: Settings, now: datetime, *, dry_run: bool, use_cache: bool, force: bool = False) -> PublishReport:
    """The publish run; one with nothing changed ends before publisher.pipeline is imported."""
    from publisher.errors import PublisherError
    from publisher.memo import first_look

    bar = ProgressBar()
    try:
        look = first_look(settings, now, check=not (dry_run or force))
        if look.same is not None:
            return look.same
        # A run holds tens of thousands of long-lived entries and related-list tuples, which the cyclic
        # collector would walk again and again (about 0.3 s of adding one article to 22,250, even at a
        # threshold of 50,000). Reference counting frees them as before; the run makes few cycles (peak
        # memory of a cold 22,250 with related reading: 355 MB with the collector, 357 MB without), and
        # the collector runs as usual again once the run is over (delivery follows in this process).
        gc.disable()
        from publisher.pipeline import publish

        try:
            return publish(settings, now, dry_run=dry_run, use_cache=use_cache, force_digest=force,
                           progress=bar, look=look)
        finally:
            gc.enable()
    except PublisherError as e:
        bar.close()
        fail(e, e.exit_code)
    finally:
        bar.close()


@click.command()
@config_option
@clock_option
@click.option("--dry-run", is_flag=True, help="Do everything but write files or state.")
@click.option("--force", is_flag=True, help="Make a digest even when no article is new (the newest ones).")
@click.option("--no-send", is_flag=True, help="Write everything but do not deliver the digest.")
@wait_option
def publish(config: Path | None, clock: str | None, dry_run: bool, force: bool, no_send: bool, wait: float) -> None:
    """Read the articles; write the feeds, the digest of new articles and the archive page; then
    deliver the digest to every active subscriber (finishing any earlier unfinished delivery first).

    Exit code 0 on success, 1 when some article was bad (the others are still
    published), 2 on a bad config or usage.
    """
    started = time.perf_counter()
    settings = read_settings(config)
    if not (dry_run or no_send):
        _refuse_local_links(settings)  # before anything is recorded: the digest would keep those links
    with locked(settings, wait, "publish", dry_run):
        report = _run(settings, parse_clock(clock), dry_run=dry_run, use_cache=True, force=force)
        _report(report, time.perf_counter() - started, dry_run)
        if not dry_run:
            _announce(settings, report.written)
        if not (dry_run or no_send):
            _deliver_queued(settings, clock)
    sys.exit(1 if report.errors else 0)


def _announce(settings: Settings, written: tuple[str, ...]) -> None:
    """Tell each WebSub hub which subscription documents changed; a failing hub is one warning line."""
    if not settings.feeds.hubs:  # checked first: no import when there is no hub
        return
    import os

    from publisher.websub import TIMEOUT, announce

    try:  # a test hook: a hub that hangs is waited for this long
        timeout = float(os.environ.get("PUBLISHER_WEBSUB_TIMEOUT") or TIMEOUT)
    except ValueError:
        timeout = TIMEOUT
    for failure in announce(settings, written, timeout=timeout):
        click.echo(f"warning: {failure}", err=True)


def _deliver_queued(settings: Settings, clock: str | None) -> None:
    """The delivery step after a publish: the full sender when the journal holds anything to send (or an
    SQLite look cannot tell); else only the delivery line. A run with nothing to send registers no sender
    row (`send --status` lists the senders that had work) and imports neither SQLAlchemy nor the sender."""
    from publisher.deliver.queued import pending_messages

    started = time.perf_counter()
    if pending_messages(settings.paths.state) != 0:
        _deliver(settings, clock)
        return
    _delivery_line(settings, (0, 0, 0, 0), time.perf_counter() - started)


def _delivery_line(settings: Settings, counts: tuple[int, int, int, int], seconds: float) -> None:
    """`delivery (outbox ...): S sent, F failed, B bounced, C cancelled; T s`."""
    sent, failed, bounced, cancelled = counts
    where = "outbox " + str(settings.email.outbox) if settings.email.transport == "outbox" else "SMTP"
    click.echo(f"delivery ({where}): {sent} sent, {failed} failed, {bounced} bounced, {cancelled} cancelled; "
               f"{seconds:.2f} s")


def _deliver(settings: Settings, clock: str | None, *, worker: bool = False, follow: bool = False,
             lease: float | None = None) -> None:
    """Send what the journal says is unsent; SIGTERM and Ctrl-C finish the message in flight, then stop."""
    import signal

    from publisher.deliver.send import deliver_pending
    from publisher.deliver.worker import LEASE
    from publisher.errors import PublisherError

    stopping: list[int] = []
    previous = {sig: signal.signal(sig, lambda number, _frame: stopping.append(number))
                for sig in (signal.SIGTERM, signal.SIGINT)}
    started = time.perf_counter()
    bar = ProgressBar("sending")
    try:
        report = deliver_pending(settings, clock_source(clock), lambda: bool(stopping), bar, worker=worker,
                                 follow=follow, lease=LEASE if lease is None else lease)
    except PublisherError as e:
        fail(e, e.exit_code)
    finally:
        bar.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    _delivery_line(settings, (report.sent, report.failed, report.bounced, report.cancelled),
                   time.perf_counter() - started)
    for severity, line in report.problem_lines():
        click.echo(f"{severity}: {line}", err=True)
    if report.stopped:
        click.echo("stopped by a signal after recording the last message; 'publisher send' goes on", err=True)
        sys.exit(130)
    if report.failed:
        sys.exit(1)


@click.command()
@config_option
@clock_option
@click.option("--resume", is_flag=True, help="Send what an earlier run left unsent (what send always does).")
@click.option("--status", "show_status", is_flag=True,
              help="Show, per digest: queued, sent, failed, expired, bounced, cancelled; the last error of each "
                   "message not delivered; and per sender: state, rows claimed, sent, failed, last seen.")
@click.option("--worker", is_flag=True,
              help="Be one of several senders on a PostgreSQL state (any number, on any machines; no run lock): "
                   "claim rows in small batches under a lease, send until nothing is left unsent, exit.")
@click.option("--follow", is_flag=True, help="With --worker: keep waiting for new digests until SIGTERM or Ctrl-C.")
@click.option("--lease", type=click.FloatRange(0.5), default=None, metavar="SECONDS", hidden=True,
              help="Seconds a claim holds its rows unless renewed (default 30).")
@wait_option
def send(config: Path | None, clock: str | None, resume: bool, show_status: bool, worker: bool, follow: bool,
         lease: float | None, wait: float) -> None:
    """Deliver recorded digests to their subscribers: only what the journal says is not sent yet."""
    settings = read_settings(config)
    if show_status:
        _print_status(settings)
        return
    if follow and not worker:
        fail(click.UsageError("--follow goes with --worker (a plain send holds the run lock until it ends)"), 2)
    if worker:
        _refuse_sqlite(settings)  # a usage error first, before any warning about the settings
    _warn_placeholders(settings)
    _refuse_local_links(settings)
    if worker:
        _deliver(settings, clock, worker=True, follow=follow, lease=lease)
        return
    with locked(settings, wait, "send"):
        _deliver(settings, clock, lease=lease)


def _warn_placeholders(settings: Settings) -> int:
    """One warning line per setting still naming localhost or an example domain; how many there were."""
    from publisher.safety import warnings

    lines = warnings(settings)
    for line in lines:
        click.echo(f"warning: {line}", err=True)
    return len(lines)


def _refuse_local_links(settings: Settings) -> None:
    """SMTP delivery of links to this machine ends the command (exit 2) before anything is sent."""
    if settings.email.transport != "smtp":  # checked first: the imports below are only for SMTP
        return
    from publisher.deliver.subscribers import Subscribers
    from publisher.errors import PublisherError
    from publisher.safety import is_local, refuse_local_links, url_host
    from publisher.store import open_store

    if not is_local(url_host(settings.site.url)):
        return
    try:
        with open_store(settings.paths.state, write=False) as store:
            refuse_local_links(settings, (s.email for s in Subscribers(store.conn).active()))
    except PublisherError as e:
        fail(e, e.exit_code)


def _refuse_sqlite(settings: Settings) -> None:
    from publisher.deliver.worker import check_worker_state
    from publisher.errors import PublisherError

    try:
        check_worker_state(settings.paths.state)
    except PublisherError as e:
        fail(e, e.exit_code)


def _print_status(settings: Settings) -> None:
    from publisher.deliver.journal import STATUSES, Journal
    from publisher.deliver.worker import list_workers
    from publisher.errors import PublisherError
    from publisher.store import open_store

    try:
        with open_store(settings.paths.state, write=False) as store:
            journal = Journal(store)
            rows, problems, senders = journal.status(), journal.problems(), list_workers(store.conn)
    except PublisherError as e:
        fail(e, e.exit_code)
    if not rows:
        click.echo("no digest has been queued for delivery")
    for digest_id, counts in rows:
        click.echo(f"{digest_id}: " + ", ".join(f"{counts[s]} {s}" for s in STATUSES))
    for p in problems:
        click.echo(f"  {p.digest_id} {p.status} after {count(p.attempts, 'try', 'tries')}: "
                   f"{p.address} ({p.subscriber_id}): {p.error}")
    for w in senders:
        click.echo(f"worker {w.id}: {w.state}, {w.claimed} claimed, {w.sent} sent, {w.failed} failed, "
                   f"last seen {_ago(w.ago)} ago")


def _ago(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"


@click.command()
@config_option
@clock_option
def check(config: Path | None, clock: str | None) -> None:
    """Validate the config and every article; write nothing."""
    started = time.perf_counter()
    settings = read_settings(config)
    placeholders = _warn_placeholders(settings)
    report = _run(settings, parse_clock(clock), dry_run=True, use_cache=False)
    for problem in report.problems:
        click.echo(f"{problem.severity}: {problem}", err=True)
    click.echo(f"{count(report.read, 'article')} checked, {len(report.errors)} with errors, "
               f"{count(len(report.problems) - len(report.errors) + placeholders, 'warning')}; "
               f"{time.perf_counter() - started:.2f} s")
    sys.exit(1 if report.errors else 0)


@click.command()
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False))
@click.option("--templates", "with_templates", is_flag=True,
              help="Also copy the built-in templates into DIRECTORY/templates to customise (a copy overrides "
                   "the built-in template for good: delete the ones you do not change).")
@clock_option
def init(directory: Path, with_templates: bool, clock: str | None) -> None:
    """Create a new site in DIRECTORY: publisher.toml (every key, commented) and an example article.
    The built-in templates are used until you copy one (--templates)."""
    from publisher.errors import PublisherError
    from publisher.scaffold import scaffold

    try:
        created = scaffold(directory, parse_clock(clock), templates=with_templates)
    except PublisherError as e:
        fail(e, e.exit_code)
    for path in created:
        click.echo(f"created {path}")
    click.echo(f"next: cd {directory} && publisher publish; before sending email, set site.url and email.from "
               f"in {directory / 'publisher.toml'}")


@click.command()
@config_option
@clock_option
@click.option("--open", "open_browser", is_flag=True, help="Open the HTML preview in the web browser.")
@click.option("--to", "to", metavar="EMAIL", help="Also send this test copy to EMAIL (not recorded anywhere).")
def preview(config: Path | None, clock: str | None, open_browser: bool, to: str | None) -> None:
    """Render the next digest, as publish would, for a dummy reader into <output>/preview/
    (HTML, text and a complete .eml). Records nothing: the next publish still sees the same new articles."""
    from publisher.errors import PublisherError
    from publisher.readonly import preview as make_preview

    settings = read_settings(config)
    try:
        result = make_preview(settings, parse_clock(clock), to)
        if result.digest_id and to:
            _send_test_copy(settings, result.digest_id, result.sender, to, result.message)
    except PublisherError as e:
        fail(e, e.exit_code)
    if result.digest_id is None:
        click.echo("no published articles: nothing to preview")
        return
    if not result.fresh:
        click.echo("no new articles since the last digest: previewing the newest ones")
    for name in result.files:
        click.echo(settings.paths.output / name)
    if to:
        click.echo(f"test copy sent to {to} through the {settings.email.transport} transport")
    if open_browser:
        import webbrowser

        webbrowser.open((settings.paths.output / "preview" / "digest.html").as_uri())


def _send_test_copy(settings: Settings, digest_id: str, sender: str, to: str, message: bytes) -> None:
    from publisher.deliver.send import open_transport
    from publisher.deliver.transport import Outgoing, SendFailure
    from publisher.errors import PublisherError

    transport = open_transport(settings)
    try:
        transport.send(Outgoing(f"preview-{digest_id}", "preview", sender, to, message))
    except SendFailure as e:
        raise PublisherError(f"test copy to {to} not sent: {e}", "check [email] and [email.smtp]") from e
    finally:
        transport.close()


@click.command()
@click.argument("slug", required=False)
@click.option("--all", "every", is_flag=True, help="Every article's list.")
@click.option("--json", "as_json", is_flag=True, help="JSON: one object, or one per line with --all.")
@config_option
@clock_option
def related(slug: str | None, every: bool, as_json: bool, config: Path | None, clock: str | None) -> None:
    """Print an article's related articles, ranked, with score and reason
    (source reference, similarity, shared tags). Without SLUG: the newest article."""
    import json

    from publisher.errors import PublisherError
    from publisher.readonly import related_report

    if slug and every:
        raise click.UsageError("give a SLUG or --all, not both")
    settings = read_settings(config)
    try:
        report = related_report(settings, parse_clock(clock), slug, every=every)
    except PublisherError as e:
        fail(e, e.exit_code)
    for item in report:
        if as_json:
            click.echo(json.dumps({"slug": item["slug"], "related": [
                {"slug": r["slug"], "score": r["score"], "reason": r["reason"]} for r in item["related"]]},
                ensure_ascii=False))
            continue
        click.echo(f"{item['slug']}: {item['title']}")
        for n, r in enumerate(item["related"], 1):
            score = "   ref" if r["score"] is None else f"{r['score']:.4f}"
            click.echo(f"  {n}. {score}  {r['reason']:<16}  {r['slug']}  {r['title']}")
