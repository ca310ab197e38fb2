"""The course's toolkit: checks (graders), data, plots, devices, the exercise builder and the CLI."""
