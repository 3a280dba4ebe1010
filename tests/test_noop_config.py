"""Reading the settings imports no email package (a no-op publish needs none of it), and gives the same
values as with it: the default sender's name quoted as email.utils.quote does, an address still checked."""

from __future__ import annotations

import email.utils
import subprocess
import sys
from pathlib import Path

import pytest

from publisher.config import load_settings, quote_phrase
from publisher.errors import ConfigError


@pytest.mark.parametrize("title", ["News", 'Say "Hi"', "Back\\slash", '\\"both\\"', ""])
def test_quote_phrase_is_email_utils_quote(title: str) -> None:
    assert quote_phrase(title) == email.utils.quote(title)


def test_the_default_sender_names_the_site_in_a_quoted_string(tmp_path: Path) -> None:
    (tmp_path / "publisher.toml").write_text('[site]\ntitle = "A \\"B\\" \\\\ C"\nurl = "https://news.example/"\n',
                                             encoding="utf-8")
    settings = load_settings(tmp_path / "publisher.toml", tmp_path)
    assert settings.email.sender == '"A \\"B\\" \\\\ C" <noreply@news.example>'


def test_a_bad_sender_address_is_still_refused(tmp_path: Path) -> None:
    (tmp_path / "publisher.toml").write_text('[email]\nfrom = "a@example.org, b@example.org"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"email\.from"):
        load_settings(tmp_path / "publisher.toml", tmp_path)


def test_the_settings_and_the_no_op_check_import_no_email_package(tmp_path: Path) -> None:
    code = ("import sys; from pathlib import Path; from publisher.config import load_settings; "
            "import publisher.cli, publisher.memo; load_settings(None, Path(sys.argv[1])); "
            "print(sorted(m for m in sys.modules if m == 'email' or m.startswith('email.')))")
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
