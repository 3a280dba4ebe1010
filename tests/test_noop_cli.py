"""`publisher publish` with nothing changed ends before publisher.pipeline (and SQLAlchemy) is imported, and
prints the same summary as the run before it; a changed article still gets the full run."""

from __future__ import annotations

import shutil
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


GC_RUN = ("import gc, sys; import publisher.pipeline as pipeline; from publisher.cli import main\n"
          "real = pipeline.publish\n"
          "def seen(*args, **kwargs):\n    print('collector during the run:', gc.isenabled())\n"
          "    return real(*args, **kwargs)\n"
          "pipeline.publish = seen\n"
          "try:\n    main(['publish', '--clock', sys.argv[1], '--no-send'])\n"
          "except SystemExit as e:\n    code = e.code\n"
          "print('collector on:', gc.isenabled(), code)\n")


def test_the_cycle_collector_is_on_again_after_a_run_that_worked_or_failed(site: Site) -> None:
    """A publish run switches the cyclic collector off (its entries are long-lived, freed by reference
    counting); delivery and a schedule's next wait run with it on again, also after a failed run."""
    site.write("a.md", "---\ntitle: A\ndate: 2026-11-20T10:00:00Z\n---\nText.\n")
    for failing in (False, True):
        result = subprocess.run([sys.executable, "-c", GC_RUN, CLOCK], cwd=site.root, capture_output=True,
                                text=True, timeout=120)
        assert "collector during the run: False" in result.stdout, result.stdout + result.stderr
        last = result.stdout.splitlines()[-1]
        assert last.startswith("collector on: True "), result.stdout + result.stderr
        assert (last != "collector on: True 0") is failing, result.stdout + result.stderr
        if failing:
            break
        shutil.rmtree(site.feeds)
        site.feeds.write_text("a file where the output folder should be\n", encoding="utf-8")
        site.write("b.md", "---\ntitle: B\ndate: 2026-11-21T10:00:00Z\n---\nMore.\n")  # not a no-op run
