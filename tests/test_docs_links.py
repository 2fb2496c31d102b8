"""The docs stand on their own: every relative link of README.md and docs/*.md resolves to a
file of the repository, and every #anchor to a heading of its page (GitHub's slugs)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    title = heading.strip().lower().replace("`", "")
    return re.sub(r"[^\w\- ]", "", title).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    found, in_code = set(), False
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and (match := re.match(r"^#{1,6} (.+)$", line)):
            found.add(slug(match.group(1)))
    return found


def links(page: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    return [target for target in LINK.findall(text) if not re.match(r"^[a-z]+:", target)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(page: Path) -> None:
    broken = []
    for target in links(page):
        path, _, anchor = target.partition("#")
        destination = (page.parent / path).resolve() if path else page
        if not destination.exists() or (
            anchor and destination.suffix == ".md" and anchor not in anchors(destination)
        ):
            broken.append(target)
    assert not broken, f"{page.name}: broken links {broken}"


# The spellings of a citation of the contract outside the repository, assembled so that this
# file does not itself cite it.
OUTSIDE_CITATIONS = ("DESIGN" + ".md", "DESIGN" + " §", "../" + "shared")


def test_the_docs_never_cite_an_outside_design() -> None:
    for page in [*PAGES, *(REPO / "bridge").rglob("*.py")]:
        text = page.read_text(encoding="utf-8")
        assert not any(citation in text for citation in OUTSIDE_CITATIONS), page
