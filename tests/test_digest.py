"""The email digest: content, "since the last digest", size guard, plain text, templates."""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from publisher.config import load_settings
from publisher.errors import OutputError
from publisher.models import Article, Digest, Entry, Identity
from publisher.render.digest import cadence, greeting, render_digest, render_digest_checked
from publisher.render.templates import TemplateProblem, render
from tests.conftest import CLOCK, EXAMPLE_ARTICLES, REPO, SEED, Site, run_cli

GOLDEN = Path(__file__).parent / "golden"
HEADINGS = ["Symbolism in the Drone Attacks", "The Evolving Conflict and Stalemate",
            "Putin’s Defensive War Narrative", "Implications for Putin’s Regime"]
REFERENCE = "African Leaders Make Passionate Plea for Peace to Putin Amidst Ukraine Conflict"


def latest(site: Site, ext: str = "html") -> str:
    return (site.feeds / "digests" / f"latest.{ext}").read_text(encoding="utf-8")


def test_example_digest_matches_golden_files(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    root = tmp_path / "example"
    shutil.copytree(EXAMPLE_ARTICLES, root / "articles")
    shutil.copy(REPO / "publisher.toml", root / "publisher.toml")
    run_cli("publish", "--clock", CLOCK, cwd=root, check=True)
    made = {name: root / "feeds" / "digests" / f"2026-11-25.{name.split('.')[1]}"
            for name in ("digest.html", "digest.txt")}
    if request.config.getoption("--update-golden"):
        for name, path in made.items():
            shutil.copy(path, GOLDEN / name)
    for name, path in made.items():
        assert path.read_bytes() == (GOLDEN / name).read_bytes(), f"{name} differs; pytest --update-golden"


def test_seed_digest_full_text_has_headings_and_related_reference(seed_site: Site) -> None:
    seed_site.configure("[digest]\nfull_text = true")
    seed_site.write("peace.md", f"---\ntitle: {REFERENCE}\ndate: 2026-11-01\n---\nAn older article.\n")
    result = seed_site.publish()
    assert result.returncode == 0, result.stderr
    html = latest(seed_site)
    assert "Drone Attacks and Putin’s Regime: Impact and Implications" in html
    assert re.findall(r"<h2>(.*?)</h2>", html) == HEADINGS
    assert f'<a href="https://example.com/peace/">{REFERENCE}</a>' in html
    text = latest(seed_site, "txt")
    for heading in HEADINGS:
        assert heading.upper() in text
    for phrase in ("Also Read", "thought on", "Leave a Comment"):
        assert phrase not in html and phrase not in text


def test_unresolved_reference_is_a_warning_and_no_dead_link(seed_site: Site) -> None:
    result = seed_site.publish()
    assert result.returncode == 0
    assert f"warning: {SEED.name}: related reference '{REFERENCE}' matches no published article" in result.stderr
    assert "Related reading" not in latest(seed_site)
    seed_site.write("peace.md", f"---\ntitle: {REFERENCE}\n---\nArrives later.\n")
    later = seed_site.publish(clock="2026-11-26T12:00:00Z")
    assert "matches no published article" not in later.stderr
    rss = (seed_site.feeds / "rss.xml").read_text(encoding="utf-8")
    assert "https://example.com/peace/" in rss


def test_only_articles_new_since_the_last_digest(site: Site) -> None:
    site.write("one.md", "---\ntitle: One\n---\nFirst.\n")
    first = site.publish(clock="2026-11-25T08:00:00Z")
    assert "digest 2026-11-25" in first.stdout
    second = site.publish(clock="2026-11-25T09:00:00Z")
    assert "no new articles, no digest" in second.stdout
    assert sorted(p.name for p in (site.feeds / "digests").iterdir()) == [
        "2026-11-25.html", "2026-11-25.txt", "latest.html", "latest.txt"]
    site.write("two.md", "---\ntitle: Two\n---\nSecond.\n")
    third = site.publish(clock="2026-11-25T10:00:00Z")
    assert "digest 2026-11-25-2" in third.stdout
    html = latest(site)
    assert ">Two</a>" in html and ">One</a>" not in html
    forced = site.publish("--force", clock="2026-11-25T11:00:00Z")
    assert "digest 2026-11-25-3" in forced.stdout
    index = (site.feeds / "index.html").read_text(encoding="utf-8")
    for digest_id in ("2026-11-25", "2026-11-25-2", "2026-11-25-3"):
        assert f'href="digests/{digest_id}.html"' in index


def test_dry_run_records_no_digest(site: Site) -> None:
    site.write("one.md", "---\ntitle: One\n---\nFirst.\n")
    assert "digest 2026-11-25" in site.publish("--dry-run").stdout
    assert not site.feeds.exists()
    assert "digest 2026-11-25;" in site.publish().stdout


def test_size_guard_keeps_the_footer_under_100_kb(site: Site) -> None:
    site.configure("[digest]\nfull_text = true\nmax_articles = 60")
    paragraph = "Long article text about many things, written to fill the digest. " * 25
    for n in range(60):
        site.write(f"long-{n:02}.md", f"---\ntitle: Long article {n}\ndate: 2026-11-{1 + n % 20:02}\n---\n"
                   + f"{paragraph}\n\n" * 6)
    assert site.publish().returncode == 0
    html = latest(site)
    assert len(html.encode()) <= 100_000
    assert "Unsubscribe" in html and html.rstrip().endswith("</html>")
    more = re.search(r"(\d+) more articles on the web", html)
    assert more is not None
    shown = len(re.findall(r"class=\"title\"[^>]*>Long article \d+</a>", html))  # titles, not related links
    assert shown + int(more.group(1)) == 60 and shown >= 5
    assert "more articles on the web" in latest(site, "txt")


def test_plain_text_part_is_readable_on_its_own(seed_site: Site) -> None:
    seed_site.write("pic.md", "---\ntitle: Picture\nimage: /img/a.png\n---\n![A cat](cat.png) and "
                    "[a link](https://example.org/page) with <b>bold</b> text.\n")
    seed_site.configure("[digest]\nfull_text = true")
    assert seed_site.publish().returncode == 0
    text = latest(seed_site, "txt")
    assert all(len(line) < 78 for line in text.splitlines()), max(text.splitlines(), key=len)
    assert not re.search(r"<[a-zA-Z/][^>]*>", text)
    assert not re.search(r"\S+\.(png|jpe?g|gif)\b", text)
    assert "a link (https://example.org/page)" in text
    assert "Unsubscribe: https://example.com/unsubscribe" in text


def test_site_template_overrides_and_template_errors_are_one_line(site: Site) -> None:
    site.write("one.md", "---\ntitle: One\n---\nFirst.\n")
    templates = site.root / "templates"
    templates.mkdir()
    (templates / "digest.txt.j2").write_text("Custom {{ site.title }}\n{% for i in items %}{{ i.title }}\n{% endfor %}"
                                             "{{ unsubscribe_url }}\n", encoding="utf-8")
    assert site.publish(clock="2026-11-25T08:00:00Z").returncode == 0
    assert latest(site, "txt").startswith("Custom Test Site\nOne\n")
    before = site.feed_bytes()
    site.write("two.md", "---\ntitle: Two\n---\nSecond.\n")
    (templates / "digest.txt.j2").write_text("{% for x in items %}\n", encoding="utf-8")
    broken = site.publish(clock="2026-11-25T09:00:00Z")
    assert broken.returncode == 1 and "Traceback" not in broken.stderr
    (line,) = broken.stderr.strip().splitlines()
    assert "digest.txt.j2" in line and "syntax error" in line
    (templates / "digest.txt.j2").write_text("{{ no_such_thing }}\n", encoding="utf-8")
    undefined = site.publish(clock="2026-11-25T09:00:00Z")
    assert undefined.returncode == 1 and "'no_such_thing' is undefined" in undefined.stderr
    assert "digest.txt.j2" in undefined.stderr
    assert site.feed_bytes() == before, "nothing already written is damaged"


def test_article_with_empty_summary_is_a_warning(site: Site) -> None:
    site.write("pic.md", "---\ntitle: Only a picture\n---\n![](cat.png)\n")
    result = site.publish()
    assert result.returncode == 0
    assert "warning: pic.md: empty summary" in result.stderr
    assert "Only a picture" in latest(site)


def digest_article(slug: str, title: str) -> Article:
    when = datetime(2026, 10, 1, tzinfo=UTC)
    entry = Entry(f"{slug}.md", slug, title, f"About {slug}.", 1, "hash", when)
    return Article(entry, Identity(f"urn:uuid:{slug}", when, None, when), f"https://example.com/{slug}/",
                   f"<p>About {slug}.</p>")


def test_an_article_that_breaks_the_digest_is_reported_and_left_out(tmp_path: Path) -> None:
    """Past the load boundary nothing should break MJML; if something does, the others are still sent."""
    settings = load_settings(None, tmp_path)
    good, bad, other = digest_article("good", "Good"), digest_article("bad", "A\x01B"), digest_article("other", "Other")
    digest = Digest("2026-10-01", datetime(2026, 10, 1, 8, tzinfo=UTC), (good, bad, other))
    rendered, problems = render_digest_checked(digest, settings, settings.paths.templates)
    assert rendered is not None and [a.entry.slug for a in rendered.digest.articles] == ["good", "other"]
    assert rendered.digest.id == digest.id and rendered.shown == 2
    assert ">Good</a>" in rendered.html and ">Other</a>" in rendered.html and "\x01" not in rendered.html
    assert [(p.path, p.hint) for p in problems] == [("bad.md", "fix or remove the article")]
    assert problems[0].message.startswith("cannot be rendered into the digest: ")
    assert render_digest(digest, settings, settings.paths.templates) == rendered
    alone = Digest("2026-10-01", digest.created, (bad,))
    assert render_digest_checked(alone, settings, settings.paths.templates)[0] is None
    with pytest.raises(OutputError, match="none of its 1 articles can be rendered"):
        render_digest(alone, settings, settings.paths.templates)


def test_a_broken_site_template_is_not_blamed_on_an_article(tmp_path: Path) -> None:
    settings = load_settings(None, tmp_path)
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "digest.txt.j2").write_text("{{ no_such_thing }}\n", encoding="utf-8")
    digest = Digest("2026-10-01", datetime(2026, 10, 1, 8, tzinfo=UTC), (digest_article("good", "Good"),))
    with pytest.raises(TemplateProblem, match="no_such_thing"):
        render_digest_checked(digest, settings, templates)


PAGES = {"unsubscribe.html.j2": {"token": "x.y"}, "unsubscribed.html.j2": {}, "confirm.html.j2": {"already": False},
         "subscribed.html.j2": {"address": "reader@example.com", "hours": 1}}


def test_a_site_title_starting_with_the_reads_well() -> None:
    settings = load_settings(REPO / "publisher.toml", REPO)
    assert settings.site.title.startswith("The ")
    texts = [render(settings.paths.templates, name, site=settings.site, feeds=[], **context)
             for name, context in PAGES.items()]
    texts += [(GOLDEN / name).read_text(encoding="utf-8") for name in ("digest.html", "digest.txt")]
    assert "the digest from The Publisher Example" in texts[0]
    assert not [t for t in texts if re.search(r"\bthe\s+(<[^>]*>\s*)*the\b", t, re.IGNORECASE)]


def test_greeting_is_the_first_word_of_the_name_else_neutral() -> None:
    assert greeting("Ana María López") == "Hi Ana,"
    assert greeting("  José\u2028Smith ") == "Hi José,"
    assert greeting("Ana, the editor") == "Hi Ana,"
    for nameless in ("", "   ", "-", "1234", "x" * 41):
        assert greeting(nameless) == "Hello,", nameless


def test_cadence_word_comes_from_a_simple_cron_only() -> None:
    assert cadence("0 7 * * 1") == "Weekly" and cadence("30 6 * * sun") == "Weekly"
    assert cadence("0 7 * * *") == "Daily" and cadence("@daily") == "Daily"
    assert cadence("0 7 1 * *") == "Monthly"
    for irregular in ("*/5 * * * *", "0 7,19 * * *", "0 7 * * 1,4", "0 7 1 * 1", "not a cron"):
        assert cadence(irregular) == "", irregular


def test_human_label_greeting_and_intro_sanitized_at_the_top(site: Site) -> None:
    site.write("one.md", "---\ntitle: One\n---\nFirst.\n")
    site.configure('[digest]\nintro = """This week: **drones**. <script>alert(1)</script>[More](/about/)\n\n'
                   '<img src=x onerror=alert(2)>"""\n[schedule]\ncron = "0 7 * * *"')
    assert site.publish().returncode == 0
    html, text = latest(site), latest(site, "txt")
    assert "Daily digest · 25 November 2026" in html and "Daily digest · 25 November 2026" in text
    assert "Digest of" not in html
    intro = html.index("<strong>drones</strong>")
    assert html.index("Hello,") < intro < html.index(">One</a>"), "greeting, then intro, then the articles"
    assert "<script" not in html and "alert(1)" not in html and "onerror" not in html
    assert '<a href="https://example.com/about/"' in html
    assert "__PUBLISHER_GREETING__" not in html + text, "the archive copy gets the neutral greeting"
    assert text.index("Hello,") < text.index("This week: drones.") < text.index("One\n---")
    assert "More (https://example.com/about/)" in text


def lead_site(site: Site, lead: str) -> str:
    site.write("old.md", "---\ntitle: Pictured\ndate: 2026-11-20\nimage: /img/cover.jpg\n"
               "image_alt: A drone over a field\n---\nWith a picture.\n")
    site.write("new.md", "---\ntitle: Newest\ndate: 2026-11-24\n---\nNewest text.\n")
    site.write("mid.md", "---\ntitle: Middle\ndate: 2026-11-22\n---\nMiddle text.\n")
    site.configure(f'[digest]\nlead = "{lead}"')
    result = site.publish()
    assert result.returncode == 0, result.stderr
    return result.stderr


def titles(html: str) -> list[str]:
    return re.findall(r'class="title"[^>]*>([^<]+)</a>', html)


def test_the_newest_article_leads_by_default(site: Site) -> None:
    assert "digest.lead" not in lead_site(site, "")
    html = latest(site)
    assert titles(html) == ["Newest", "Middle", "Pictured"]
    assert html.index("MORE IN THIS ISSUE") < html.index('style="color:#0b57d0;text-decoration:none;">Middle</a>')
    assert "https://example.com/img/cover.jpg" not in html, "only the lead shows its image"


def test_a_pinned_lead_comes_first_with_its_image(site: Site) -> None:
    lead_site(site, "old")
    html = latest(site)
    assert titles(html) == ["Pictured", "Newest", "Middle"]
    (img,) = re.findall(r"<img [^>]*>", html)
    assert 'src="https://example.com/img/cover.jpg"' in img and 'alt="A drone over a field"' in img
    assert re.search(r'width="\d+"', img) and 'height="' in img
    assert html.index(img) < html.index("text-decoration:none;\">Pictured</a>") < html.index("MORE IN THIS ISSUE")
    text = latest(site, "txt")
    assert text.index("Pictured") < text.index("MORE IN THIS ISSUE") < text.index("Newest")


def test_an_unknown_lead_is_a_warning_and_the_newest_leads(site: Site) -> None:
    stderr = lead_site(site, "no-such-slug")
    assert "digest.lead 'no-such-slug': no published article has this slug" in stderr
    assert "Traceback" not in stderr
    assert titles(latest(site)) == ["Newest", "Middle", "Pictured"]


def test_titles_are_not_underlined_and_buttons_name_their_article(site: Site) -> None:
    lead_site(site, "")
    html = latest(site)
    for title in ("Newest", "Middle", "Pictured"):
        link = re.search(rf'<a class="title"[^>]*style="([^"]*)"[^>]*>{title}</a>', html)
        assert link is not None and "text-decoration:none" in link.group(1)
        assert re.search(rf'Read more<span class="sr-only"[^>]*> about: {title}</span>', html), title
    assert "text-decoration:underline" not in html.replace(" ", "")


def test_image_without_alt_text_is_decorative(site: Site) -> None:
    site.write("pic.md", "---\ntitle: Pic\nimage: /img/a.jpg\n---\nText.\n")
    assert site.publish().returncode == 0
    (img,) = re.findall(r"<img [^>]*>", latest(site))
    assert 'alt=""' in img and "Pic" not in img
