"""The exercise builder: template + solutions -> instructor notebook -> student notebook
(nbgrader's generate_assignment). The template format (`:part:`, `:copy:`, `:write:`, `:test:`,
`:points:`) is in AUTHORING.md, "An exercise".
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
import textwrap
from functools import cache
from pathlib import Path

import jupytext
import nbformat

from course.authoring import generated
from course.authoring.source import BEGIN, END, mark_solution, source_of  # noqa: F401  (the markers)

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "exercises" / "templates"
SOURCE = ROOT / "exercises" / "source"
RELEASE = ROOT / "exercises" / "release"

KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}


def names() -> list[str]:
    """Every exercise that has a template, e.g. ['01_tokenization']."""
    return sorted(p.stem for p in TEMPLATES.glob("[0-9][0-9]_*.md"))


# ---------------------------------------------------------------- copying solution code


def part_source(dotted_names: list[str], write: list[str] | None = None) -> str:
    """The code of a graded part: the named solution objects, marked for nbgrader (`write`:
    the only bodies the learner writes, qualified names like 'MultiHeadAttention.forward')."""
    blocks = []
    for dotted in dotted_names:
        source = source_of(dotted)
        names = None
        if write is not None:
            top = dotted.rpartition(".")[2]
            names = [w for w in write if w == top or w.startswith(top + ".")]
        blocks.append(source if names == [] else mark_solution(source, names))
    if write is not None:
        covered = {w for w in write
                   if any(w.split(".")[0] == d.rpartition(".")[2] for d in dotted_names)}
        if covered != set(write):
            raise ValueError(f":write: names no copied object: {sorted(set(write) - covered)}")
    return "\n\n\n".join(b.rstrip() for b in blocks)


# ---------------------------------------------------------------- template -> instructor notebook


def _nbgrader(grade_id: str, *, solution: bool, grade: bool, points: int | None = None) -> dict:
    meta = {"grade": grade, "grade_id": grade_id, "locked": not solution,
            "schema_version": 3, "solution": solution}
    if points is not None:
        meta["points"] = points
    return meta


def instructor_notebook(template: Path) -> nbformat.NotebookNode:
    """Read a template and return the nbgrader source notebook (deterministic, no outputs)."""
    nb = jupytext.read(template, fmt="md:myst")
    seen: set[str] = set()
    cells = []
    for index, cell in enumerate(nb.cells):
        meta = dict(cell.metadata)
        if cell.cell_type == "markdown":
            new = nbformat.v4.new_markdown_cell(cell.source)
        else:
            new = nbformat.v4.new_code_cell(cell.source)
            if "part" in meta:
                grade_id = str(meta.pop("part"))
                copied = str(meta.pop("copy", "")).split()
                write = str(meta.pop("write")).split() if "write" in meta else None
                if not copied:
                    raise ValueError(f"{template.name}: part {grade_id!r} names no :copy: objects")
                new.source = part_source(copied, write)
                new.metadata["nbgrader"] = _nbgrader(grade_id, solution=True, grade=False)
            elif "test" in meta:
                grade_id = str(meta.pop("test"))
                if "points" not in meta:
                    raise ValueError(f"{template.name}: test {grade_id!r} has no :points:")
                points = int(meta.pop("points"))
                new.metadata["nbgrader"] = _nbgrader(grade_id, solution=False, grade=True,
                                                     points=points)
            else:
                grade_id = None
            if grade_id is not None:
                if grade_id in seen:
                    raise ValueError(f"{template.name}: grade id {grade_id!r} used twice")
                seen.add(grade_id)
            unknown = set(meta) - {"tags"}
            if unknown:
                raise ValueError(f"{template.name}: unknown cell options {sorted(unknown)}")
            if "tags" in meta:
                new.metadata["tags"] = meta["tags"]
        new["id"] = f"cell-{index:03d}"
        cells.append(new)
    out = nbformat.v4.new_notebook(cells=[generated.banner(template.stem), *cells])
    out.metadata = {generated.KEY: generated.origin(template.stem), "kernelspec": KERNELSPEC,
                    "language_info": {"name": "python"}}
    nbformat.validate(out)
    return out


# ---------------------------------------------------------------- nbgrader generate_assignment


def nbgrader_config(root: Path, *, timeout: int = 120) -> str:
    """The nbgrader_config.py used for every course folder the toolkit makes."""
    return textwrap.dedent(f"""\
        from nbgrader.converters import GenerateAssignment

        from course.authoring.generated import DropBanner

        c = get_config()
        c.CourseDirectory.root = {str(root)!r}
        c.CourseDirectory.course_id = "transformers-from-scratch"
        c.CourseDirectory.db_url = {"sqlite:///" + str(root / "gradebook.db")!r}
        c.ExecutePreprocessor.kernel_name = "python3"
        c.ExecutePreprocessor.timeout = {timeout}
        c.ClearSolutions.code_stub = {{"python": "# YOUR CODE HERE\\nraise NotImplementedError()"}}
        c.GenerateAssignment.preprocessors = [  # nbgrader's own, after the banner is dropped
            DropBanner, *GenerateAssignment.class_traits()["preprocessors"].default()]
        c.GenerateFeedback.preprocessors = [
            "nbgrader.preprocessors.GetGrades",
            "course.grading.feedback.HideHiddenTracebacks",
            "nbgrader.preprocessors.ClearHiddenTests",
            "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
        ]
        """)


def search_path() -> str:
    """PATH with this Python's scripts first (nbgrader runs `alembic` as a command)."""
    return os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])


def add_source(root: Path, name: str, source_nb: nbformat.NotebookNode) -> None:
    """Put the instructor notebook into the course folder `root` as source/NAME/NAME.ipynb."""
    (root / "source" / name).mkdir(parents=True, exist_ok=True)
    nbformat.write(source_nb, root / "source" / name / f"{name}.ipynb")


def make_course(root: Path, name: str, source_nb: nbformat.NotebookNode, *,
                release=None) -> Path:
    """A fresh nbgrader course folder holding one source notebook, released into its gradebook
    (by `release(root, name)`, by default `generate_assignment` in this process)."""
    add_source(root, name, source_nb)
    (root / "nbgrader_config.py").write_text(nbgrader_config(root))
    (release or generate_assignment)(root, name)
    return root / "release" / name / f"{name}.ipynb"


def nbgrader_api(root: Path):
    """nbgrader's Python API for the course folder `root`, configured by its nbgrader_config.py."""
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config()
    return NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)


def _alembic_head() -> str:
    """The gradebook schema's version, as nbgrader's `alembic heads` subprocess finds it
    (it runs one for every new gradebook), read here once."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory
    from nbgrader.dbutil import ALEMBIC_DIR

    config = Config()
    config.set_main_option("script_location", ALEMBIC_DIR)
    (head,) = ScriptDirectory.from_config(config).get_heads()
    return head


def gradebooks_without_subprocess() -> None:
    """nbgrader asks alembic for the schema version once per new gradebook (a subprocess of
    about three seconds): ask once, in process."""
    import nbgrader.api

    original = nbgrader.api.get_alembic_version
    if hasattr(original, "cache_info"):
        return

    @cache
    def version() -> str:
        try:
            return _alembic_head()
        except Exception:  # noqa: BLE001  (several heads, another alembic: ask as nbgrader does)
            return original()

    nbgrader.api.get_alembic_version = version


def generate_assignment(root: Path, name: str) -> None:
    """nbgrader's `generate_assignment` for the course folder `root`, run in this process (one
    import of nbgrader for every exercise built); raise with its log on failure."""
    gradebooks_without_subprocess()
    api = nbgrader_api(root)
    path = os.environ.get("PATH")
    os.environ["PATH"] = search_path()  # a new gradebook's migrations run `alembic`
    try:
        result = api.generate_assignment(name, force=True)
    finally:
        if path is None:
            os.environ.pop("PATH")
        else:
            os.environ["PATH"] = path
    if not result.get("success"):
        raise RuntimeError(f"nbgrader generate_assignment {name} failed:\n"
                           f"{result.get('log', '')}\n{result.get('error', '')}")


def write_if_changed(path: Path, nb: nbformat.NotebookNode) -> bool:
    text = nbformat.writes(nb) + "\n"
    if path.exists() and path.read_text() == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return True


@cache
def _build_folder() -> Path:
    """One scratch nbgrader course folder per process to release exercises from (its gradebook,
    whose creation takes seconds, is made once)."""
    root = Path(tempfile.mkdtemp(prefix="course-build-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    (root / "nbgrader_config.py").write_text(nbgrader_config(root))
    return root


def build(name: str, out: Path = ROOT / "exercises") -> list[Path]:
    """Build one exercise's instructor and student notebooks under `out`; return changed files."""
    source_nb = instructor_notebook(TEMPLATES / f"{name}.md")
    root = _build_folder()
    add_source(root, name, source_nb)
    generate_assignment(root, name)
    release_nb = nbformat.read(root / "release" / name / f"{name}.ipynb", as_version=4)
    changed = []
    for kind, nb in (("source", source_nb), ("release", release_nb)):
        path = out / kind / name / f"{name}.ipynb"
        if write_if_changed(path, nb):
            changed.append(path)
    return changed
