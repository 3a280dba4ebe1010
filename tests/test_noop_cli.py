"""`publisher publish` with nothing changed ends before publisher.pipeline (and SQLAlchemy) is imported, and
prints the same summary as the run before it; a changed article still gets the full run."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import CLOCK, Site

RUN = ("import sys; from publisher.cli import main\n"
       "try:\n    main(['publish', '--clock', sys.argv[1], '--no-send'])\n"
       "except SystemExit as e:\n    code = e.code\n"
       "print('imported:', sorted(m for m in ('publisher.pipeline', 'sqlalchemy') if m in sys.modules), code)\n")


def publish_and_list_imports(site: Site) -> str:
    result = subprocess.run([sys.executable, "-c", RUN, CLOCK], cwd=site.root, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_a_no_op_publish_imports_no_pipeline(site: Site) -> None:
    site.write("a.md", "---\ntitle: A\ndate: 2026-11-20T10:00:00Z\n---\nText.\n")
    first = publish_and_list_imports(site)
    assert "imported: ['publisher.pipeline', 'sqlalchemy'] 0" in first and "files written: " in first
    second = publish_and_list_imports(site)
    assert "imported: [] 0" in second and "files written: 0, unchanged: " in second
    site.write("a.md", "---\ntitle: A, revised\ndate: 2026-11-20T10:00:00Z\n---\nText.\n")
    third = publish_and_list_imports(site)
    assert "imported: ['publisher.pipeline', 'sqlalchemy'] 0" in third and "files written: 0," not in third
