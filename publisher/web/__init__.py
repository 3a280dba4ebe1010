"""The web side of publisher (`publisher serve`): the output folder served with conditional GET and gzip,
double opt-in subscription, confirmation, and one-click unsubscribe (RFC 8058).

Only this package imports Starlette; `publisher serve` (publisher/cli/serve.py) imports it when it runs, so
`publisher --help` stays fast.
"""

from __future__ import annotations

from publisher.web.app import create_app, preflight
from publisher.web.options import WebOptions, check_public_url, web_options

__all__ = ["WebOptions", "check_public_url", "create_app", "preflight", "web_options"]
