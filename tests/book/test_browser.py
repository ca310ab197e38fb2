"""The rendered book in a real browser, every page of the table of contents, at a 1280-px window:

- pages load offline, without script errors; math renders; images load;
- layout: no formula, table, code or output box is wider than its column; code inputs, outputs and literal
  blocks never wrap (``white-space: pre``), and no chapter's code input scrolls sideways (its
  lines fit the column, see ``tests/book/test_code_lines.py``). Outputs, and the exercise pages, whose
  code comes from ``solutions/`` (written to 100 columns), may scroll;
- figures: no figure text smaller than 9 px on screen. Figures are drawn at
  ``plots.FIGURE_DPI`` with text of at least ``plots.MIN_FONT_PT`` (checked when a chapter runs,
  see ``course.book.chapter``), so the smallest text on screen is that size times the ratio of the
  displayed to the natural width of the image; figures are no wider than the book's limit;
- no raw Markdown markers (``**``, stray ``*``, back-ticks, ``{doc}``) in the rendered text;
- "Next" and "Previous" follow the table of contents.

Skips without Chromium, except under CI, where .ci/run installs it and a skip is a failure.
Screenshots of every page go to $SCREENSHOTS (or a temporary folder).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from conftest import toc_files

from course.book import plots

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
VIEWPORT = {"width": 1280, "height": 900}
MIN_TEXT_PX = 9.0
# A figure's natural width may exceed figsize a little: the "tight" bounding box of the saved
# image includes labels that stick out of the figure.
MAX_NATURAL_PX = plots.MAX_WIDTH_IN * plots.FIGURE_DPI * 1.15
SMALLEST_TEXT_PX = plots.MIN_FONT_PT * plots.FIGURE_DPI / 72  # at natural size

# Elements that must fit in their column; all measured inside the article. The <pre> of code
# and outputs is left to CODE_JS: it may scroll inside its box.
WIDE_JS = """
() => {
  const article = document.querySelector('article.bd-article') || document.querySelector('main');
  const right = article.getBoundingClientRect().right;
  const out = [];
  const sel = 'div.cell_output, div.output, div.math, mjx-container[display="true"], '
            + 'table, div.highlight';
  for (const el of article.querySelectorAll(sel)) {
    const box = el.getBoundingClientRect();
    if (box.width === 0) continue;                     // hidden (collapsed) content
    const scrolls = el.scrollWidth > el.clientWidth + 1;
    const sticksOut = box.right > right + 1;
    if (scrolls || sticksOut) {
      out.push({tag: el.tagName.toLowerCase(), cls: el.className, scroll: el.scrollWidth,
                client: el.clientWidth, right: Math.round(box.right), column: Math.round(right),
                text: (el.innerText || '').slice(0, 80)});
    }
  }
  return out;
}
"""

# Code inputs, outputs and literal blocks: how they lay out their lines.
CODE_JS = """
() => {
  const article = document.querySelector('article.bd-article') || document.querySelector('main');
  const right = article.getBoundingClientRect().right;
  const sel = 'div.cell_input pre, div.cell_output pre, div.output pre, pre.literal-block, '
            + 'div.highlight pre';
  return [...article.querySelectorAll(sel)]
    .filter(el => el.getBoundingClientRect().width > 0)   // hidden (collapsed) content
    .map(el => ({input: el.closest('div.cell_input') !== null,
                 whiteSpace: getComputedStyle(el).whiteSpace,
                 scrolls: el.scrollWidth > el.clientWidth + 1,
                 sticksOut: el.getBoundingClientRect().right > right + 1,
                 scroll: el.scrollWidth, client: el.clientWidth,
                 text: (el.innerText || '').split('\\n').find(l => l.length > 0) || ''}));
}
"""

IMAGES_JS = """
() => [...document.querySelectorAll('article.bd-article img')]
  .filter(i => i.getBoundingClientRect().width > 0)
  .map(i => ({src: i.getAttribute('src'), natural: i.naturalWidth,
              shown: i.getBoundingClientRect().width}))
"""

# The article's visible prose: code, math and literal text removed.
PROSE_JS = """
() => {
  const article = (document.querySelector('article.bd-article') || document.body).cloneNode(true);
  const drop = 'pre, code, .cell_input, .cell_output, mjx-container, .math, script, style, '
             + 'kbd, .highlight, .headerlink';
  for (const el of article.querySelectorAll(drop)) el.remove();
  return article.innerText;
}
"""

MARKERS = [
    (re.compile(r"\*\*"), "**"),
    (re.compile(r"(?:^|[\s(])\*\w|\w\*(?:[\s).,;:]|$)", re.M), "a stray *"),
    (re.compile(r"`"), "a back-tick"),
    (re.compile(r"\{(?:doc|ref|glue|numref|eq)\}"), "an unresolved role"),
    (re.compile(r"\]\((?:http|\.\.|/)"), "a raw Markdown link"),
    (re.compile(r"^:::|^```", re.M), "a raw fence"),
]


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).is_file():
        if os.environ.get("CI"):
            pytest.fail("Chromium is required under CI (.ci/run installs it)")
        pytest.skip("Chromium is not installed (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("SCREENSHOTS", tmp_path_factory.mktemp("shots")))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def open_page(browser, book: Path, name: str):
    """Open a built page offline; return (page, external requests, script errors)."""
    page = browser.new_page(viewport=VIEWPORT)
    external, errors = [], []

    def route(r):
        if r.request.url.startswith(("file://", "data:", "blob:")):
            r.continue_()
        else:
            external.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto((book / f"{name}.html").as_uri(), wait_until="load")
    page.wait_for_function("window.MathJax === undefined || "
                           "(MathJax.startup && MathJax.startup.promise !== undefined)")
    page.evaluate("window.MathJax && MathJax.startup.promise")
    page.evaluate("document.fonts.ready")
    return page, external, errors


@pytest.mark.parametrize("name", toc_files())
def test_page_reads_well_at_1280_px(browser, book, shots, name):
    page, external, errors = open_page(browser, book, name)
    try:
        assert not external, f"{name} asked the network for {external}"
        assert not errors, f"{name}: {errors}"
        assert page.locator("mjx-merror").count() == 0, f"{name}: a formula failed to render"
        raw_math = page.locator("span.math:not(:has(mjx-container)), "
                                "div.math:not(:has(mjx-container))")
        assert raw_math.count() == 0, f"{name}: math left as raw TeX"
        broken = page.evaluate("[...document.images].filter(i => !i.complete || "
                               "i.naturalWidth === 0).map(i => i.src)")
        assert not broken, f"{name}: broken images {broken}"

        wide = page.evaluate(WIDE_JS)
        assert not wide, f"{name}: {len(wide)} blocks wider than the column: {wide[:5]}"

        code = page.evaluate(CODE_JS)
        wraps = [c for c in code if c["whiteSpace"] != "pre"]
        assert not wraps, f"{name}: {len(wraps)} code blocks wrap their lines: {wraps[:3]}"
        outside = [c for c in code if c["sticksOut"]]
        assert not outside, f"{name}: {len(outside)} code blocks stick out: {outside[:3]}"
        if name.startswith("chapters/"):
            scrolls = [c for c in code if c["input"] and c["scrolls"]]
            assert not scrolls, f"{name}: {len(scrolls)} code cells scroll: {scrolls[:3]}"

        for image in page.evaluate(IMAGES_JS):
            on_screen = SMALLEST_TEXT_PX * image["shown"] / image["natural"]
            assert image["natural"] <= MAX_NATURAL_PX, (
                f"{name}: figure {image['src']} is {image['natural']} px wide at "
                f"{plots.FIGURE_DPI} dpi (at most {MAX_NATURAL_PX:.0f}): draw it narrower")
            assert on_screen >= MIN_TEXT_PX, (
                f"{name}: figure {image['src']} is shown at {image['shown']:.0f} of its "
                f"{image['natural']} px, so its smallest text is {on_screen:.1f} px on screen")

        prose = page.evaluate(PROSE_JS)
        for pattern, what in MARKERS:
            hit = pattern.search(prose)
            assert hit is None, (f"{name}: {what} in the rendered text: "
                                 f"...{prose[max(0, hit.start() - 60):hit.end() + 60]}...")

        names = toc_files()
        i = names.index(name)
        links = page.evaluate("""() => {
          const href = sel => { const a = document.querySelector(sel); return a ? a.href : null; };
          return {next: href('a.right-next'), prev: href('a.left-prev')};
        }""")
        for key, j in (("next", i + 1), ("prev", i - 1)):
            want = (book / f"{names[j]}.html").as_uri() if 0 <= j < len(names) else None
            got = links[key].split("#")[0] if links[key] else None
            assert got == want, f"{name}: '{key}' goes to {got}; the table of contents says {want}"
        page.screenshot(path=str(shots / (name.replace("/", "_") + ".png")), full_page=False)
    finally:
        page.close()
