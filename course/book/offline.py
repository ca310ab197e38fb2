"""Make the book readable with no network.

- MathJax 3 is served from the book itself: it comes from the PyPI package
  `django-static-mathjax` (pure static files); its `es5` folder is copied to `_static/mathjax/`
  and `mathjax_path` points there.
- Thebe (live code through a remote server, which this book does not offer) is dropped: its
  scripts would load from a CDN.
"""

from __future__ import annotations

import shutil
from pathlib import Path

MATHJAX_URL = "mathjax/tex-chtml.js"


def mathjax_es5_dir() -> Path:
    """The installed MathJax `es5` folder, or a clear error if the package is missing."""
    import mathjax  # the django-static-mathjax package installs the `mathjax` module

    folder = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"
    if not (folder / "tex-chtml.js").is_file():
        raise RuntimeError(f"MathJax not found at {folder}; pip install django-static-mathjax")
    return folder


def _set_path(app, config) -> None:
    config.mathjax_path = MATHJAX_URL


def _copy(app, exception) -> None:
    if exception is None and app.builder.format == "html":
        target = Path(app.outdir) / "_static" / "mathjax"
        shutil.copytree(mathjax_es5_dir(), target, dirs_exist_ok=True)


def _is_thebe(script) -> bool:
    body = getattr(script, "attributes", {}).get("body", "")
    return "thebe" in str(getattr(script, "filename", script) or "") or "THEBE" in body


def _drop_thebe(app, pagename, templatename, context, doctree) -> None:
    if "script_files" in context:
        context["script_files"] = [s for s in context["script_files"] if not _is_thebe(s)]


def setup(app):
    mathjax_es5_dir()  # fail early, before a long build
    app.connect("config-inited", _set_path, priority=900)
    app.connect("html-page-context", _drop_thebe, priority=900)
    app.connect("build-finished", _copy)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
