"""Collecting a class's submissions: a folder per student, a folder of LMS-named notebooks, or
a zip of either, read without trusting it (unsafe paths, links, zip bombs and duplicate
students are refused and reported, never silently picked).
"""

from __future__ import annotations

import re
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from course.authoring import exercises

STUDENT_ID = re.compile(r"^\w(?:[\w .@'-]{0,98}[\w.])?$")
NAME_RULE = ("a student name is 1-100 letters (any language), digits, spaces and . _ @ ' -, "
             "starting with a letter or digit and not ending with a space")
MAX_ARCHIVE_GB = 2.0  # a class zip may expand to at most this much
MAX_RATIO = 200  # and no member may expand more than this many times


def extract(archive: Path, target: Path) -> None:
    """Extract a class archive, refusing unsafe paths, links and zip bombs."""
    limit = int(MAX_ARCHIVE_GB * 2**30)
    with zipfile.ZipFile(archive) as zf:
        total = 0
        for info in zf.infolist():
            path = (target / info.filename).resolve()
            if not path.is_relative_to(target.resolve()):
                raise ValueError(f"{archive.name}: unsafe path in zip: {info.filename}")
            if stat.S_ISLNK(info.external_attr >> 16):
                raise ValueError(f"{archive.name}: the zip holds a symbolic link: "
                                 f"{info.filename}")
            total += info.file_size
            if info.file_size > MAX_RATIO * max(info.compress_size, 1024):
                raise ValueError(f"{archive.name}: {info.filename} would expand "
                                 f"{info.file_size / max(info.compress_size, 1):.0f} times "
                                 f"(at most {MAX_RATIO}); refusing a possible zip bomb")
        if total > limit:
            raise ValueError(f"{archive.name}: the zip would expand to {total / 2**30:.1f} GiB, "
                             f"more than the {MAX_ARCHIVE_GB:g} GiB allowed; refusing a "
                             "possible zip bomb")
        zf.extractall(target)


@dataclass
class Found:
    """Where each student's notebook is, and students that cannot be graded as found."""

    notebooks: dict[str, Path | None] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)  # what was done to find it, said


def collect(submissions: Path, assignment: str, scratch: Path) -> dict[str, Path | None]:
    """student -> notebook path (None when the student's folder holds no notebook)."""
    return find(submissions, assignment, scratch).notebooks


def find(submissions: Path, assignment: str, scratch: Path, *, strict: bool = False) -> Found:
    """Accepts a folder `SUBMISSIONS/<student>/<assignment>.ipynb`, a folder of
    `<student>_<assignment>.ipynb` files (LMS exports), or a .zip of either. Symbolic links
    and a student with both a folder and a file are reported, never silently picked.
    `strict` (a folder holding several assignments): only notebooks named for this one."""
    if submissions.is_file() and submissions.suffix == ".zip":
        root = scratch / "unzipped"
        root.mkdir()
        extract(submissions, root)
        entries = [p for p in root.iterdir() if not p.name.startswith(("__MACOSX", "."))]
        submissions = entries[0] if len(entries) == 1 and entries[0].is_dir() and not any(
            entries[0].glob(f"{assignment}.ipynb")) else root
    if not submissions.is_dir():
        raise FileNotFoundError(f"no submissions folder or zip at {submissions}")
    found = Found()
    seen: dict[str, Path] = {}
    for entry in sorted(submissions.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir() and not entry.is_symlink():
            student = entry.name
            exact = entry / f"{assignment}.ipynb"
            others = [p for p in sorted(entry.rglob("*.ipynb"))  # never a Jupyter checkpoint
                      if not any(part.startswith(".") for part in p.relative_to(entry).parts)]
            notebook = exact if exact.exists() or exact.is_symlink() else (
                others[0] if len(others) == 1 and (not strict or others[0].name.startswith(
                    f"{assignment}-")) else None)
            if notebook is not None and notebook != exact:
                found.notes[student] = f"graded {notebook.name}, the only notebook there"
        elif strict and not entry.name.endswith(f"_{assignment}.ipynb"):
            continue
        elif entry.suffix == ".ipynb" or entry.is_symlink():
            student = entry.name.removesuffix(".ipynb").removesuffix(f"_{assignment}")
            notebook = entry
        else:
            continue
        if student in seen:
            found.problems[student] = (f"duplicate submission: both {seen[student].name} and "
                                       f"{entry.name}; keep one and grade again")
            found.notebooks[student] = None
            continue
        seen[student] = entry
        found.notebooks[student] = notebook
        if entry.is_symlink() or (notebook is not None and notebook.is_symlink()):
            found.problems[student] = "refused: the submission is a symbolic link"
    return found


def present(submissions: Path) -> list[str]:
    """The exercises that at least one notebook in the folder SUBMISSIONS is named for."""
    found = {p.name for p in submissions.rglob("*.ipynb")}
    return [name for name in exercises.names()
            if any(f == f"{name}.ipynb" or f.endswith(f"_{name}.ipynb") for f in found)]
