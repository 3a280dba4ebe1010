"""Which loaded articles a run publishes: those due (no drafts, nothing dated in the future), one
article per slug and one per id; each one left out is a Problem naming its file and the other one."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from publisher.models import Entry, Problem

if TYPE_CHECKING:
    from publisher.config import Settings


def visible(entries: Sequence[Entry], now: datetime) -> list[Entry]:
    """Drafts and articles dated in the future wait for their time."""
    return [e for e in entries if not e.draft and (e.date is None or e.date <= now)]


def free_slugs(entries: Sequence[Entry], settings: Settings) -> tuple[list[Entry], list[Problem]]:
    """Articles whose page would land on a name an output owns (`publisher.outputs.reserved`) are left
    out of everything, each with an error naming its file."""
    from publisher.outputs import unreserved

    refused, problems = unreserved(((e.slug, e.source) for e in entries), settings)
    return [e for e in entries if e.slug not in refused], problems


def unique_slugs(entries: Sequence[Entry], known: dict[str, str]) -> tuple[list[Entry], list[Problem]]:
    """One article per slug: the one the state already knows, else the first by path."""
    by_slug: dict[str, list[Entry]] = {}
    for entry in entries:
        by_slug.setdefault(entry.slug, []).append(entry)
    kept, problems = [], []
    for slug, group in by_slug.items():
        if len(group) == 1:  # nearly every slug: nothing to choose
            kept.append(group[0])
            continue
        group.sort(key=lambda e: (e.source != known.get(slug), e.source))
        kept.append(group[0])
        problems += [Problem(e.source, f"slug '{slug}' is already used by {group[0].source}",
                             "give one of them another slug (front matter 'slug:' or a new file name)")
                     for e in group[1:]]
    return kept, problems


def unique_ids(entries: Sequence[Entry], known: dict[str, tuple[str, str]]) -> tuple[list[Entry], list[Problem]]:
    """One article per id (the id the state gave its slug, else its `guid`): the article the state knows
    keeps it, else the first by path; an id the state gave an article no longer published stays its own."""
    owner = {slug: ident for ident, (slug, _) in known.items()}
    claims: dict[str, list[Entry]] = {}
    for entry in entries:
        if claim := owner.get(entry.slug) or entry.guid:
            claims.setdefault(claim, []).append(entry)
    refused: list[Problem] = []
    for ident, group in claims.items():
        holder = known.get(ident)  # (slug, source) of the article the state gave this id
        if len(group) > 1:  # nearly every id has one claimant: nothing to sort
            group.sort(key=lambda e: (holder is None or e.slug != holder[0], e.source))
        if holder is None or group[0].slug == holder[0]:
            keeper, first = group[0].source, group[0].source
        else:
            keeper, first = "", f"{holder[1]} (an article no longer published, which keeps it)"
        refused += [Problem(e.source, f"guid '{ident}' is already the id of {first}",
                            "give one of them another guid (front matter 'guid:'), or remove the line to get a "
                            "new one") for e in group if e.source != keeper]
    left_out = {p.path for p in refused}
    return [e for e in entries if e.source not in left_out], refused
