"""Feedback preprocessor: hidden tests show their failure message, never their code."""

from __future__ import annotations

from nbgrader.preprocessors import NbGraderPreprocessor

HIDDEN = "### BEGIN HIDDEN TESTS"


class HideHiddenTracebacks(NbGraderPreprocessor):
    """For cells with hidden tests, cut tracebacks (which quote the code) to `Error: message`.

    Runs before nbgrader's ClearHiddenTests, which removes the hidden code from the source.
    """

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type == "code" and HIDDEN in cell.source:
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    output["traceback"] = [f"{output.get('ename')}: {output.get('evalue')}"]
        return cell, resources
