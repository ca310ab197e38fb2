"""The rendered book in a real browser: pages load offline, math renders, figures show.

Skips without Chromium, except under CI, where .ci/run installs it and a skip is a failure.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from conftest import toc_files

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


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


@pytest.mark.parametrize("name", toc_files())
def test_page_renders_offline(browser, book, name, tmp_path_factory):
    page = browser.new_page()
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
    assert not external, f"{name} asked the network for {external}"
    assert not errors, f"{name}: {errors}"
    assert page.locator("mjx-merror").count() == 0, f"{name}: a formula failed to render"
    raw_math = page.locator("span.math:not(:has(mjx-container)), div.math:not(:has(mjx-container))")
    assert raw_math.count() == 0, f"{name}: math left as raw TeX"
    broken = page.evaluate("[...document.images].filter(i => !i.complete || i.naturalWidth === 0)"
                           ".map(i => i.src)")
    assert not broken, f"{name}: broken images {broken}"
    shots = Path(os.environ.get("SCREENSHOTS", tmp_path_factory.mktemp("shots")))
    shots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shots / (name.replace("/", "_") + ".png")), full_page=False)
    page.close()
