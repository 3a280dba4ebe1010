"""`publisher subscribe-form`: print the subscribe form to paste into any page (publisher/web/snippet.py)."""

from __future__ import annotations

from pathlib import Path

import click

from publisher.cli.options import config_option, read_settings


@click.command("subscribe-form")
@click.option("--with-name", is_flag=True, help="Add the optional name field (used to greet the reader).")
@config_option
def subscribe_form(with_name: bool, config: Path | None) -> None:
    """Print a paste-ready HTML form that subscribes to the digest from any page.

    A plain form posting to site.url + "subscribe" (served by `publisher serve`): an email field, a hidden
    honeypot field and a button; no JavaScript, no cookie. Readers confirm by email (double opt-in).
    """
    from urllib.parse import urlsplit

    from publisher.safety import is_loopback
    from publisher.web.snippet import subscribe_snippet

    settings = read_settings(config)
    if is_loopback(urlsplit(settings.site.url).hostname or ""):
        click.echo(f"warning: site.url = {settings.site.url!r} is this machine: the form works only here; set "
                   f"site.url to the public address before pasting it elsewhere", err=True)
    click.echo(subscribe_snippet(settings, with_name=with_name), nl=False)
