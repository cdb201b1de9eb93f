"""Turn the chapters into reveal.js slide decks that work offline (``make slides``).

Each chapter's EXECUTED notebook (the book build's ``_build/jupyter_execute/notebooks``;
a chapter without a current executed copy there is executed first, and kept in
``_build/slides/executed`` for the next run) becomes
``_build/slides/<chapter>.html``, with reveal.js (``slides/reveal.js``, vendored) and
MathJax 3 (``book/_vendor/mathjax``) copied beside the decks, and an ``index.html`` that
lists them. The conversion is nbconvert's ``--to slides`` (``SlidesExporter``) with
``SlidesExporter.reveal_url_prefix`` set to the local copy and a template
(``slides/templates/faimi_reveal``) that loads nothing from other hosts; every deck is
checked for references to other hosts before the build reports success.

Which cells become slides (see the instructors' guide):

* a cell tag ``slide``, ``subslide``, ``fragment``, ``notes`` or ``skip`` (or Jupyter's
  own ``slideshow`` metadata) decides for that cell;
* otherwise the defaults apply: each ``#`` or ``##`` heading starts a slide, each
  ``###`` heading a sub-slide (reveal.js's vertical slides; an untagged Markdown cell
  is cut before each heading it holds), and a Markdown cell that would bring the
  current slide over ``WORDS_PER_SLIDE`` words starts a sub-slide; a code cell is
  left out unless it draws a figure, in which case its figure (not its code) gets a
  sub-slide of its own; any other dropdown (a quiz's answers) gets a sub-slide below
  the text before it; the exercises' solutions (cells tagged ``hide-cell`` and the
  "Solution to exercise" dropdowns) and cells tagged ``remove-cell`` are left out.

A cell tagged ``slide``, ``subslide`` or ``fragment`` shows its code too, unless it is
also tagged ``remove-input``. MyST markup that reveal.js cannot show is rewritten:
citations become "Author et al. (year)" from ``book/references.bib``, cross-reference
roles become their text, links to other pages of the book point to the published book
(``html.baseurl`` in ``_config.yml``), and ``:::`` admonitions become quoted blocks.

Usage::

    python scripts/make_slides.py                     # every chapter in notebooks/
    python scripts/make_slides.py notebooks/01_measuring_fairness.ipynb
    python scripts/make_slides.py --no-execute NB     # NB as it is, with its outputs
"""

from __future__ import annotations

import argparse
import copy
import html
import html.parser
import re
import shutil
import sys
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat

ROOT = Path(__file__).resolve().parents[1]
REVEAL = ROOT / "slides" / "reveal.js"
TEMPLATES = ROOT / "slides" / "templates"
TEMPLATE = "faimi_reveal"
MATHJAX = ROOT / "book" / "_vendor" / "mathjax"
BIB = ROOT / "book" / "references.bib"
EXECUTED = ROOT / "_build" / "jupyter_execute" / "notebooks"
OUT = ROOT / "_build" / "slides"

#: Tags (and ``slideshow.slide_type`` values) a chapter may use to choose its slides.
SLIDE_TAGS = ("slide", "subslide", "fragment", "notes", "skip")
#: A Markdown cell that would bring a slide over this many words starts a sub-slide.
WORDS_PER_SLIDE = 120
#: Internal tag: show the cell's outputs but not its code.
OUTPUT_ONLY = "slides-output-only"
FIGURE_TYPES = ("image/png", "image/svg+xml", "image/jpeg", "image/gif")


# --------------------------------------------------------------------------------------
# MyST markup -> plain Markdown
# --------------------------------------------------------------------------------------


def read_bib(path: Path = BIB) -> dict[str, tuple[str, str]]:
    """``{key: (authors as cited, year)}`` of a BibTeX file (the few fields needed)."""
    if not path.exists():
        return {}
    entries = {}
    text = path.read_text(encoding="utf-8")
    for match in re.finditer(r"@\w+\{([^,\s]+),(.*?)\n\}", text, flags=re.S):
        key, body = match.groups()
        author = re.search(r"\bauthor\s*=\s*\{(.*?)\},?\s*\n", body, flags=re.S)
        year = re.search(r"\byear\s*=\s*\{?(\d{4})", body)
        names = [n.strip() for n in author.group(1).split(" and ")] if author else []
        surnames = [n.split(",")[0].strip("{} ") if "," in n
                    else n.split()[-1].strip("{}") for n in names if n]
        if not surnames:
            cited = key
        elif len(surnames) == 1:
            cited = surnames[0]
        elif len(surnames) == 2:
            cited = f"{surnames[0]} and {surnames[1]}"
        else:
            cited = f"{surnames[0]} et al."
        entries[key] = (cited, year.group(1) if year else "")
    return entries


def book_address(config: Path = ROOT / "_config.yml") -> str:
    """The published book's address (``html.baseurl`` of ``_config.yml``), or ''."""
    if not config.exists():
        return ""
    found = re.search(r"^\s*baseurl:\s*[\"']?([^\"'\s]+)", config.read_text(),
                      flags=re.M)
    return found.group(1).rstrip("/") + "/" if found else ""


def _book_link(match: re.Match, base: str) -> str:
    """A Markdown link to another page of the book (``../book/x.md``, ``y.ipynb``),
    pointed at the published book, where it still works outside the book."""
    text, target, anchor = match.group(1), match.group(2), match.group(3) or ""
    if not base or re.match(r"[a-z]+:", target):
        return match.group(0)
    parts = []
    for part in ("notebooks/" + target).split("/"):
        if part == "..":
            parts = parts[:-1]
        elif part not in ("", "."):
            parts.append(part)
    page = re.sub(r"\.(md|ipynb)$", ".html", "/".join(parts))
    return f"[{text}]({base}{page}{anchor})"


def _citation(role: str, keys: str, bib: dict[str, tuple[str, str]]) -> str:
    parts = []
    for key in (k.strip() for k in keys.split(",")):
        author, year = bib.get(key, (key, ""))
        parts.append((author, year))
    if role == "cite:t":
        return "; ".join(f"{a} ({y})" if y else a for a, y in parts)
    return "(" + "; ".join(f"{a} {y}".strip() for a, y in parts) + ")"


def myst_to_markdown(source: str, bib: dict[str, tuple[str, str]]) -> str:
    """Rewrite the MyST constructs the chapters use into Markdown nbconvert can show."""

    def role(match: re.Match) -> str:
        name, text = match.group(1), match.group(2)
        if name.startswith("cite"):
            return _citation(name, text, bib)
        shown = re.match(r"(.*?)\s*<[^<>]+>$", text, flags=re.S)
        return shown.group(1) if shown else text

    source = re.sub(r"\{([\w:-]+)\}`([^`]*)`", role, source)
    base = book_address()
    source = re.sub(r"\[([^\]]+)\]\(([^)\s#]+\.(?:md|ipynb))(#[^)\s]*)?\)",
                    lambda m: _book_link(m, base), source)
    source = re.sub(r"^\([\w.:-]+\)=\s*$\n?", "", source, flags=re.M)

    out: list[str] = []
    lines = source.split("\n")
    i = 0
    while i < len(lines):
        fence = re.match(r"^(:{3,}|`{3,})\{([\w:-]+)\}\s*(.*)$", lines[i])
        if not fence:
            out.append(lines[i])
            i += 1
            continue
        marker, directive, title = fence.groups()
        body = []
        i += 1
        while i < len(lines) and lines[i].strip() != marker:
            if not lines[i].lstrip().startswith(":"):  # directive options (:open:, ...)
                body.append(lines[i])
            i += 1
        i += 1  # the closing fence
        if directive == "dropdown" and title.startswith("Solution"):
            continue  # solutions stay out of the slides
        heading = title or directive.capitalize()
        text = "\n".join(body).strip()
        quoted = "\n".join(f"> {line}".rstrip() for line in text.split("\n"))
        out.append(f"> **{heading}**\n>\n{quoted}")
    return "\n".join(out)


# --------------------------------------------------------------------------------------
# Choosing the slides
# --------------------------------------------------------------------------------------


def _tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def chosen_type(cell) -> str | None:
    """The slide type a chapter chose for the cell (a tag or slideshow metadata)."""
    for tag in _tags(cell):
        if tag in SLIDE_TAGS:
            return tag
    slide_type = cell.get("metadata", {}).get("slideshow", {}).get("slide_type")
    return slide_type or None


def _draws_a_figure(cell) -> bool:
    return any(mime in output.get("data", {}) for output in cell.get("outputs", [])
               for mime in FIGURE_TYPES)


def _words(source: str) -> int:
    return len(re.findall(r"[A-Za-z0-9][\w'.-]*", re.sub(r"<[^>]+>", " ", source)))


def split_at_headings(cell) -> list:
    """An untagged Markdown cell cut before each ``#``, ``##`` or ``###`` heading and
    each ``:::{dropdown}`` that is not its first line (outside fenced blocks), so that
    each can open a slide; any other cell as it is."""
    if cell.cell_type != "markdown" or chosen_type(cell) is not None:
        return [cell]
    parts, current, fence = [], [], None
    for line in cell.source.split("\n"):
        marker = re.match(r"^(`{3,}|:{3,})", line)
        if fence is None and marker:
            if re.match(r":{3,}\{dropdown\}", line) and "\n".join(current).strip():
                parts.append("\n".join(current).strip("\n"))
                current = []
            fence = marker.group(1)
        elif fence is not None and line.strip() == fence:
            fence = None
        elif (fence is None and re.match(r"#{1,3}\s", line)
              and "\n".join(current).strip()):
            parts.append("\n".join(current).strip("\n"))
            current = []
        current.append(line)
    parts.append("\n".join(current).strip("\n"))
    if len(parts) == 1:
        return [cell]
    cells = []
    for k, part in enumerate(parts):
        piece = copy.deepcopy(cell)
        piece.source = part
        if "id" in piece:
            piece["id"] = f"{cell['id']}-{k}"
        cells.append(piece)
    return cells


def mark_slides(nb, bib: dict[str, tuple[str, str]] | None = None):
    """A copy of ``nb`` whose cells carry ``slideshow.slide_type`` (see the module doc);
    left-out cells are dropped, figures keep their outputs without their code."""
    bib = read_bib() if bib is None else bib
    nb = copy.deepcopy(nb)
    cells = []
    words = 0
    for cell in [piece for whole in nb.cells for piece in split_at_headings(whole)]:
        tags = _tags(cell)
        chosen = chosen_type(cell)
        if "remove-cell" in tags or chosen == "skip":
            continue
        dropdown = (cell.cell_type == "markdown"
                    and re.match(r":{3,}\{dropdown\}", cell.source.lstrip()))
        if cell.cell_type == "markdown":
            cell.source = myst_to_markdown(cell.source, bib)
            if not cell.source.strip():
                continue
        if chosen is not None and chosen != "-":
            slide_type = chosen
            if cell.cell_type == "code" and "remove-input" in tags:
                tags.append(OUTPUT_ONLY)
        elif cell.cell_type == "markdown":
            first = cell.source.lstrip().split("\n", 1)[0]
            if re.match(r"#{1,2}\s", first):
                slide_type = "slide"
            elif dropdown or re.match(r"#{3}\s", first):
                slide_type = "subslide"
            elif words and words + _words(cell.source) > WORDS_PER_SLIDE:
                slide_type = "subslide"
            else:
                slide_type = "-"
        elif cell.cell_type == "code":
            if "hide-cell" in tags or not _draws_a_figure(cell):
                continue
            slide_type = "subslide"
            shown = ("display_data", "execute_result")
            cell.outputs = [o for o in cell.outputs if o.get("output_type") in shown]
            tags.append(OUTPUT_ONLY)
        else:
            continue
        if slide_type in ("slide", "subslide"):
            words = 0
        if cell.cell_type == "markdown":
            words += _words(cell.source)
        cell.metadata["tags"] = tags
        cell.metadata["slideshow"] = {"slide_type": slide_type}
        cells.append(cell)
    if not cells:
        raise ValueError("no cell would be shown on a slide")
    nb.cells = cells
    return nb


# --------------------------------------------------------------------------------------
# Offline check
# --------------------------------------------------------------------------------------


class _References(html.parser.HTMLParser):
    """The ``src``/``href`` of every element that makes a browser load something."""

    LOADS = {"script": "src", "img": "src", "link": "href", "iframe": "src",
             "source": "src", "video": "src", "audio": "src", "embed": "src",
             "object": "data"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.references: list[tuple[str, str]] = []
        self._in: str | None = None
        self.inline: list[tuple[str, str]] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        key = self.LOADS.get(tag)
        if key and attrs.get(key):
            self.references.append((tag, attrs[key]))
        if tag in ("script", "style") and not attrs.get("src"):
            self._in = tag

    def handle_endtag(self, tag):
        if tag == self._in:
            self._in = None

    def handle_data(self, data):
        if self._in:
            self.inline.append((self._in, data))


def loaded_references(page: str) -> list[tuple[str, str]]:
    """``(element, address)`` of everything the page loads (scripts, style sheets,
    images, frames), plus ``@import``/``url()`` in inline style sheets and ``import``
    in inline scripts. Hyperlinks (``<a href>``) are not loaded and not listed."""
    parser = _References()
    parser.feed(page)
    found = list(parser.references)
    for kind, text in parser.inline:
        if kind == "style":
            found += [("style", u) for u in re.findall(
                r"""(?:@import\s+(?:url\()?|url\()\s*['"]?([^'")\s]+)""", text)]
        else:
            found += [("script", u) for u in re.findall(
                r"""\bimport\s*(?:[\w{}\s,*]+from\s*)?\(?\s*['"]([^'"]+)['"]""", text)]
    return found


def external_references(page: str) -> list[str]:
    """What the page would load from another host (empty when it works offline)."""
    return [url for _, url in loaded_references(page)
            if urlsplit(url).scheme in ("http", "https") or url.startswith("//")]


def missing_local_files(page_path: Path) -> list[str]:
    """Local files the page loads that do not exist beside it."""
    missing = []
    for _, url in loaded_references(page_path.read_text(encoding="utf-8")):
        parts = urlsplit(url)
        if parts.scheme or url.startswith("//") or not parts.path:
            continue
        if not (page_path.parent / unquote(parts.path)).exists():
            missing.append(url)
    return missing


# --------------------------------------------------------------------------------------
# Building the decks
# --------------------------------------------------------------------------------------


def _sources(nb) -> list[str]:
    return [c.source for c in nb.cells]


def executed_copy(notebook: Path, executed_dirs: list[Path],
                  execute: bool) -> tuple[object, str, bool]:
    """The executed notebook for ``notebook``, where it came from, and whether it was
    executed just now. An executed copy counts only if its cells' sources are the
    notebook's."""
    nb = nbformat.read(notebook, as_version=4)
    for folder in executed_dirs:
        candidate = folder / notebook.name
        if candidate.exists():
            done = nbformat.read(candidate, as_version=4)
            if _sources(done) == _sources(nb):
                return done, f"the executed copy in {folder}", False
    has_outputs = any(c.get("outputs") for c in nb.cells if c.cell_type == "code")
    if has_outputs or not execute:
        origin = "the notebook as it is" + ("" if has_outputs else " (not executed)")
        return nb, origin, False
    from nbclient import NotebookClient

    start = time.perf_counter()
    NotebookClient(nb, timeout=1800, kernel_name="python3",
                   resources={"metadata": {"path": str(notebook.parent)}}).execute()
    return nb, f"the notebook, executed now ({time.perf_counter() - start:.0f} s)", True


def exporter():
    """nbconvert's slides exporter (``jupyter nbconvert --to slides``), offline."""
    from nbconvert import SlidesExporter
    from traitlets.config import Config

    config = Config()
    config.SlidesExporter.reveal_url_prefix = "reveal.js"
    config.SlidesExporter.reveal_theme = "white"
    config.SlidesExporter.reveal_transition = "none"
    config.SlidesExporter.reveal_number = "c/t"
    config.SlidesExporter.reveal_width = "1280"
    config.SlidesExporter.reveal_height = "720"
    config.HTMLExporter.mathjax_url = "mathjax/tex-mml-chtml.js"
    config.HTMLExporter.embed_images = True
    config.HTMLExporter.exclude_input_prompt = True
    config.HTMLExporter.exclude_output_prompt = True
    config.TemplateExporter.extra_template_basedirs = [str(TEMPLATES)]
    config.TagRemovePreprocessor.enabled = True
    config.TagRemovePreprocessor.remove_input_tags = {OUTPUT_ONLY, "remove-input"}
    config.TagRemovePreprocessor.remove_all_outputs_tags = {"remove-output"}
    return SlidesExporter(config=config, template_name=TEMPLATE)


def copy_assets(out: Path) -> None:
    """reveal.js and MathJax beside the decks (replacing older copies)."""
    for source, name in ((REVEAL, "reveal.js"), (MATHJAX, "mathjax")):
        target = out / name
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(source, target)


def _title(nb, fallback: str) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            match = re.match(r"#\s+(.+)", cell.source.lstrip())
            if match:
                return match.group(1).strip()
    return fallback


def write_index(out: Path) -> Path:
    """``index.html``: a plain list (no scripts) of every deck in ``out``."""
    decks = []
    for deck in sorted(out.glob("*.html")):
        if deck.name == "index.html":
            continue
        title = re.search(r"<title>(.*?)(?:: slides)?</title>",
                          deck.read_text(encoding="utf-8"), flags=re.S)
        decks.append((deck.name, html.unescape(title.group(1)) if title else deck.stem))
    items = "\n".join(
        f'<li><a href="{html.escape(name)}">{html.escape(title)}</a></li>'
        for name, title in decks)
    page = (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\">"
        "<title>Slides: Fairness and bias in medical-imaging AI</title></head>\n"
        "<body>\n"
        "<h1>Slides: Fairness and bias in medical-imaging AI</h1>\n"
        "<p>One deck per chapter. Keys: arrows or space to move, <kbd>s</kbd> speaker "
        "notes, <kbd>f</kbd> full screen, <kbd>Esc</kbd> overview.</p>\n"
        f"<ol>\n{items}\n</ol>\n</body>\n</html>\n")
    path = out / "index.html"
    path.write_text(page, encoding="utf-8")
    return path


def build(notebooks: list[Path], out: Path = OUT, executed_dir: Path = EXECUTED,
          execute: bool = True, log=print) -> list[Path]:
    """Write one deck per notebook into ``out``; returns the decks' paths."""
    out.mkdir(parents=True, exist_ok=True)
    copy_assets(out)
    bib = read_bib()
    slides = exporter()
    written = []
    saved = out / "executed"  # chapters executed here, kept for the next run
    for notebook in notebooks:
        nb, origin, fresh = executed_copy(notebook, [executed_dir, saved], execute)
        if fresh:
            saved.mkdir(exist_ok=True)
            nbformat.write(nb, saved / notebook.name)
        marked = mark_slides(nb, bib)
        body, _ = slides.from_notebook_node(
            marked, resources={"metadata": {"name": _title(nb, notebook.stem)}})
        path = out / f"{notebook.stem}.html"
        path.write_text(body, encoding="utf-8")
        problems = external_references(body) + [
            f"missing {u}" for u in missing_local_files(path)]
        if problems:
            raise RuntimeError(f"{path.name} does not work offline: {problems}")
        n = body.count('<section')
        log(f"{path}: from {origin}, {n} <section> elements")
        written.append(path)
    write_index(out)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path,
                        help="chapters to convert (default: all of notebooks/)")
    parser.add_argument("--out", type=Path, default=OUT, help="output folder")
    parser.add_argument("--executed", type=Path, default=EXECUTED,
                        help="folder of executed notebooks (the book build's)")
    parser.add_argument("--no-execute", action="store_true",
                        help="never execute: use a notebook as it is when no executed "
                             "copy is found")
    args = parser.parse_args(argv)
    notebooks = args.notebooks or sorted((ROOT / "notebooks").glob("*.ipynb"))
    decks = build([p.resolve() for p in notebooks], args.out.resolve(),
                  args.executed.resolve(), execute=not args.no_execute)
    print(f"{len(decks)} decks in {args.out}; "
          f"open {args.out / 'index.html'} in a browser")
    return 0


if __name__ == "__main__":
    sys.exit(main())
