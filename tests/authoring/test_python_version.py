"""One statement of the Python the course needs, true of the pinned packages."""

import re
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from course.authoring import bundle

ROOT = Path(__file__).resolve().parents[2]


def stated_minimum() -> str:
    """The minimum in pyproject.toml's requires-python, e.g. "3.11"."""
    text = (ROOT / "pyproject.toml").read_text()
    return re.search(r'requires-python = ">=(\d+\.\d+)"', text).group(1)


def test_every_place_states_the_same_python():
    minimum = stated_minimum()
    major, minor = minimum.split(".")
    assert f"sys.version_info >= ({major}, {minor})" in (ROOT / "Makefile").read_text()
    assert f"Python {minimum} or newer" in (ROOT / "README.md").read_text()
    assert f"Python {minimum} or newer" in bundle.README
    assert f"Python {minimum}" in (ROOT / "requirements.txt").read_text().splitlines()[0]
    assert sys.version_info >= (int(major), int(minor))


def test_the_stated_minimum_is_what_the_pinned_packages_need():
    """No pinned package needs a newer Python, and at least one needs exactly this one."""
    pins = [Requirement(line.split("#")[0].strip()) for line in
            (ROOT / "requirements.txt").read_text().splitlines()
            if line.split("#")[0].strip() and not line.startswith("-")]
    needed = []
    for pin in pins:
        spec = metadata.metadata(pin.name).get("Requires-Python")
        if spec:
            lows = [Version(s.version) for s in SpecifierSet(spec) if s.operator == ">="]
            needed += [Version(f"{v.major}.{v.minor}") for v in lows]
    assert max(needed) == Version(stated_minimum())
