"""The subscribe form to paste into any page (`publisher subscribe-form`): a plain HTML form that posts to
site.url + "subscribe", with no script, no cookie and no token, so it works on any site and without
JavaScript. Field names: `email` (required), `name` (optional), and the honeypot `website`, which people
never see (moved off screen, hidden from screen readers, skipped by Tab, not autofilled) and bots fill in.

Labels wrap their inputs, so the snippet needs no id and may appear twice on one page. Deterministic: the
same settings always give the same bytes.
"""

from __future__ import annotations

from html import escape

from publisher.config import Settings

HIDDEN = "position:absolute;left:-10000px;top:auto;width:1px;height:1px;overflow:hidden"


def subscribe_snippet(settings: Settings, *, with_name: bool = False) -> str:
    """The HTML snippet, ending with a newline."""
    action = escape(settings.site.url + "subscribe")
    lines = ["<!-- Subscribe form made by `publisher subscribe-form`: paste it into any page; "
             "it needs no JavaScript. -->",
             f'<form method="post" action="{action}" accept-charset="utf-8" class="publisher-subscribe">',
             f"  <p>Get {escape(settings.site.title)} by email.</p>",
             "  <label>Email address",
             '    <input type="email" name="email" autocomplete="email" required maxlength="320" '
             'placeholder="you@example.com">',
             "  </label>"]
    if with_name:
        lines += ['  <label>Name (optional)',
                  '    <input type="text" name="name" autocomplete="name" maxlength="100">',
                  "  </label>"]
    lines += [f'  <div aria-hidden="true" style="{HIDDEN}">',
              '    <label>Leave this field empty <input type="text" name="website" tabindex="-1" '
              'autocomplete="off" value=""></label>',
              "  </div>",
              '  <button type="submit">Subscribe</button>',
              "</form>"]
    return "\n".join(lines) + "\n"
