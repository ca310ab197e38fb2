"""The book's helpers: chapter set-up, plots, and the Sphinx extensions of the build."""
