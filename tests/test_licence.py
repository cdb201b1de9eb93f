"""The licences are stated once and agree everywhere: code under MIT (LICENSE), text and
figures under CC BY 4.0 (LICENSE-TEXT.md), the README naming both files, and the book's
page footer (``html.extra_footer`` in _config.yml) showing both."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
CC_BY = "https://creativecommons.org/licenses/by/4.0/"


def test_code_licence_is_mit_everywhere():
    assert (ROOT / "LICENSE").read_text(encoding="utf-8").startswith("MIT License")
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert pyproject["project"]["license"] == "MIT"
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    assert citation["license"] == "MIT"


def test_text_licence_file_names_cc_by_4_with_its_address():
    text = (ROOT / "LICENSE-TEXT.md").read_text(encoding="utf-8")
    assert "CC BY 4.0" in text and "Attribution 4.0 International" in text
    assert CC_BY in text and CC_BY + "legalcode" in text
    assert "LICENSE" in text and "MIT" in text, "the text licence points to the code's"


def test_readme_states_each_licence_once_with_its_file():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## License\n", 1)[1].split("\n## ", 1)[0]
    assert "MIT" in section and "[`LICENSE`](LICENSE)" in section
    assert "CC BY 4.0" in section and "[`LICENSE-TEXT.md`](LICENSE-TEXT.md)" in section
    assert readme.count("CC BY") == 1, "the README states the text licence once"


def test_page_footer_shows_both_licences():
    footer = CONFIG["html"]["extra_footer"]
    links = dict((text, href) for href, text in re.findall(r'<a href="([^"]+)">([^<]+)</a>', footer))
    assert links.get("CC BY 4.0") == CC_BY, footer
    repo, branch = CONFIG["repository"]["url"], CONFIG["repository"]["branch"]
    assert links.get("MIT") == f"{repo}/blob/{branch}/LICENSE", footer
    assert re.search(r"Text and figures: <a[^>]*>CC BY 4\.0</a>", footer)
    assert re.search(r"code: <a[^>]*>MIT</a>", footer)
