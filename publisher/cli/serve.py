"""`publisher serve`: the web service (publisher/web) under uvicorn, in the foreground.

Like the other modules of publisher.cli, this one parses, calls the library and prints; Starlette and uvicorn
are imported when the command runs, so `publisher --help` stays fast.
"""

from __future__ import annotations

import signal
from pathlib import Path

import click

from publisher.cli.options import config_option, fail, read_settings


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; put the service behind a reverse proxy (which sets X-Forwarded-For).")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535), help="Port to listen on.")
@config_option
def serve(host: str, port: int, config: Path | None) -> None:
    """Serve the feeds, the digest archive and the subscribe, confirm and unsubscribe pages, in the
    foreground until Ctrl-C or SIGTERM.

    Links in feeds and emails use site.url, the public address: serving on a non-loopback --host while
    site.url points to localhost is a config error (exit 2).
    """
    from publisher.errors import PublisherError

    settings = read_settings(config)
    try:
        from publisher.web import check_public_url, create_app, preflight

        check_public_url(settings, host)
        preflight(settings)
        app = create_app(settings)
    except PublisherError as e:
        fail(e, e.exit_code)
    import uvicorn

    from publisher.web.logs import redact_access_log

    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, proxy_headers=True, server_header=False,
                                           lifespan="off"))
    redact_access_log()
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"serving {settings.paths.output} and the subscribe pages on http://{shown}:{port}/ "
               f"(public address: {settings.site.url}); Ctrl-C stops", err=True)
    # uvicorn shuts down gracefully on SIGTERM / Ctrl-C, then raises the signal again for the handler it
    # found: this one ignores it, so a requested stop ends with exit code 0.
    previous = {sig: signal.signal(sig, lambda _number, _frame: None) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
