"""The command line: the only package that prints or exits. Commands call the library.

`main` is the click group (the `publisher` script and `python -m publisher`); each module here defines
commands and this one adds them: `options` (what the commands share), `publish` (publish, send, check,
init, preview, related), `subscribers`, `schedule` and `serve`. The command modules import from
`options` only, never from each other.

Heavy libraries (feedgen, SQLAlchemy, nh3, markdown-it, Starlette, APScheduler) are imported inside the
commands, so that `publisher --help` starts fast.
"""

from __future__ import annotations

import click

from publisher import __version__
from publisher.cli import form, publish, schedule, serve, subscribers

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="publisher")
@click.option("-v", "--verbose", is_flag=True, help="Log what each stage does.")
def main(verbose: bool) -> None:
    """Publish a folder of articles as RSS, Atom and JSON feeds (and an email digest)."""
    import logging

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")


main.add_command(publish.publish)
main.add_command(publish.send)
main.add_command(publish.check)
main.add_command(publish.init)
main.add_command(publish.preview)
main.add_command(publish.related)
main.add_command(subscribers.subscribers)
main.add_command(schedule.schedule)
main.add_command(serve.serve)
main.add_command(form.subscribe_form)
