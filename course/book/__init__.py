"""Sphinx extensions used by the book build."""
