"""The reference transformer, one module per chapter. Stands alone: imports nothing from `course`."""
