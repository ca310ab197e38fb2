"""Command-line tools behind `python -m course`."""
