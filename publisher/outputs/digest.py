"""The digest output: the next digest (if one is due), recorded and queued for delivery, and the
"view in browser" copies of every digest under digests/."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from publisher.digests import next_digest, remember
from publisher.models import Problem

if TYPE_CHECKING:
    from publisher.pipeline import Archive


def digest_files(archive: Archive, now: datetime, *, force: bool,
                 record: bool) -> tuple[dict[str, bytes], str | None, list[Problem]]:
    """Render the next digest (if any); returns the archive copies, the digest id and the articles the
    digest had to leave out (it goes without them)."""
    from publisher.render.digest import archive_copy, render_digest_checked

    settings, store = archive.settings, archive.store
    digest = next_digest(archive.newest(), archive.identities, store, settings, now, archive.articles, force=force)
    rendered, problems = render_digest_checked(digest, settings, settings.paths.templates) if digest else (None, [])
    if rendered and record:
        from publisher.deliver.journal import Journal
        from publisher.deliver.message import subject_line

        remember(store, rendered, subject_line(rendered, settings))
        Journal(store).enqueue(rendered.digest.id, now)  # in the same transaction as the digest
    stored = store.digest_files()
    if rendered and not record:
        stored.append((rendered.digest.id, rendered.html, rendered.text))
    files: dict[str, bytes] = {}
    for digest_id, html, text in stored:
        files.update(archive_copy(settings, digest_id, html, text))
    if stored:
        files.update(archive_copy(settings, "latest", stored[-1][1], stored[-1][2]))
    return files, rendered.digest.id if rendered else None, problems
