"""The learner's way in, end to end: `make lab` starts JupyterLab on copies of the exercises; in
Chromium the first exercise opens, its cells run through the JupyterLab page up to the first
graded test cell, and that cell shows the check's message for the unfinished template.

Headless and offline: the server listens on 127.0.0.1 only, the browser may reach nothing else.
Skips without Chromium, except under CI, where .ci/run installs it and a skip is a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import ROOT, toc_files

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
TOKEN = "course-lab-test"


def first_exercise() -> Path:
    """The first exercise notebook in the book's table of contents."""
    name = next(f for f in toc_files() if f.startswith("exercises/release/"))
    return ROOT / f"{name}.ipynb"


def first_graded_cell(notebook: Path) -> int:
    """Index of the first cell that nbgrader grades (a test cell)."""
    cells = json.loads(notebook.read_text())["cells"]
    for i, cell in enumerate(cells):
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade") is True:
            return i
    raise AssertionError(f"{notebook.name} has no graded test cell")


def run_cell(page, cell) -> None:
    """Select the cell and run it with Shift+Enter; once the kernel has it (its prompt shows
    [*] or [n]), wait until it has run. A keypress that reached no cell is pressed again."""
    from playwright.sync_api import TimeoutError as PageTimeout

    prompt = cell.locator(".jp-InputPrompt")
    for _ in range(4):
        prompt.click()  # selects the cell, in command mode
        page.keyboard.press("Shift+Enter")
        try:
            page.wait_for_function("el => /\\[(\\d+|\\*)\\]/.test(el.textContent)",
                                   arg=prompt.element_handle(), timeout=30_000)
            break
        except PageTimeout:
            continue
    else:
        shot = Path(os.environ.get("SCREENSHOTS", tempfile.gettempdir())) / "lab-cell-never-ran.png"
        page.screenshot(path=str(shot))
        raise AssertionError(f"the cell never ran: its prompt is {prompt.inner_text()!r} "
                             f"(screenshot: {shot})")
    page.wait_for_function("el => /\\[\\d+\\]/.test(el.textContent)",
                           arg=prompt.element_handle(), timeout=180_000)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def lab(tmp_path):
    """`make lab` with a private workspace and settings, headless on a free local port."""
    if not Path(CHROMIUM).is_file():
        if os.environ.get("CI"):
            pytest.fail("Chromium is required under CI (.ci/run installs it)")
        pytest.skip("Chromium is not installed (apt-get install -y chromium)")
    port = free_port()
    workspace = tmp_path / "workspace"
    env = dict(os.environ,
               JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "lab-workspaces"),
               JUPYTER_CONFIG_DIR=str(tmp_path / "config"))
    lab_args = (f"--no-browser --ServerApp.ip=127.0.0.1 --ServerApp.port={port} "
                f"--ServerApp.port_retries=0 --IdentityProvider.token={TOKEN} "
                "--LabApp.news_url= --LabApp.extension_manager=readonly")
    # as root (containers, CI runners) `make lab` itself adds --allow-root
    # -o: never reinstall the environment from inside a test, even if a requirement file is newer
    proc = subprocess.Popen(
        ["make", "--no-print-directory", "-o", ".venv/.installed", "lab",
         f"WORKSPACE={workspace}", f"LAB_ARGS={lab_args}"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={TOKEN}", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None:
                    raise AssertionError(f"make lab stopped:\n{proc.stdout.read()[-3000:]}") from None
                if time.monotonic() > deadline:
                    raise AssertionError("JupyterLab did not answer within 60 s") from None
                time.sleep(0.5)
        yield url, workspace
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # make, JupyterLab and its kernels
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def test_make_lab_runs_the_first_check_in_the_browser(lab):
    from playwright.sync_api import sync_playwright

    url, workspace = lab
    notebook = first_exercise()
    copy = workspace / notebook.name
    assert copy.is_file(), f"make lab did not copy {notebook.name} into the workspace"
    assert copy.read_bytes() == notebook.read_bytes()
    graded = first_graded_cell(notebook)

    external = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})

        def route(r):
            if r.request.url.startswith((url, "data:", "blob:", "ws://127.0.0.1")):
                r.continue_()
            else:
                external.append(r.request.url)
                r.abort()

        page.route("**/*", route)
        page.goto(f"{url}/lab/tree/{notebook.name}?token={TOKEN}")
        cells = page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell")
        cells.nth(graded).wait_for(timeout=120_000)
        idle = page.locator(".jp-NotebookPanel .jp-Notebook-ExecutionIndicator[data-status='idle']")
        idle.first.wait_for(timeout=120_000)  # the kernel has started

        # Run the notebook's code cells from the first down to the first test cell, one at a
        # time (select, Shift+Enter), as a learner does; a cell that raises (an unfinished part)
        # does not stop the next one from being run by hand.
        for i in range(graded + 1):
            if "jp-CodeCell" in (cells.nth(i).get_attribute("class") or ""):
                run_cell(page, cells.nth(i))
        output = cells.nth(graded).locator(".jp-OutputArea").inner_text(timeout=10_000)
        page.unroute_all(behavior="ignoreErrors")
        browser.close()

    assert "CheckFailed" in output, output[-2000:]
    assert "not implemented yet" in output, output[-2000:]
    assert not external, f"the lab page asked the network for {external}"
