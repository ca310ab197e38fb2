"""What every chapter runs before its first visible cell, and the models chapters share.

A chapter starts with one hidden cell (tagged ``remove-cell`` so the reader never sees it)::

    from course.book.chapter import setup
    setup()

:func:`setup` makes the page reproducible and offline: no request to the model hub, no tokenizer
thread warnings, no ``transformers`` progress bars or notices, the house plot style, and a fixed
random seed. In a notebook it also checks every figure as it is displayed against the book's
figure rules (:func:`course.book.plots.figure_problems`: at most 7 inches wide, at most two panels
side by side, no text under 9 pt) and prints what is wrong to stderr, which fails the book's
tests. The loaders (:func:`minilm`, :func:`minilm_tokenizer`) build the packaged
all-MiniLM-L6-v2 once per kernel and hand the same objects back on later calls.
"""

from __future__ import annotations

import os
import random
import sys
import warnings
from functools import lru_cache, wraps


def setup(seed: int = 0) -> None:
    """Prepare a chapter's kernel: offline model hub, quiet ``transformers``, the house plot
    style, and ``seed`` for Python's, NumPy's and PyTorch's random generators."""
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    os.environ["HF_HUB_OFFLINE"] = "1"              # never contact the model hub
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # no fork warnings from the Rust tokenizers
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

    import matplotlib.pyplot  # noqa: F401  (selects the notebook backend before the style)
    import numpy as np
    import torch
    import transformers

    from course.book import plots

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    warnings.filterwarnings("ignore", message=".*TypedStorage is deprecated.*")
    plots.use_house_style()
    _check_figures_when_shown()
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@lru_cache(maxsize=1)
def minilm_tokenizer():
    """The WordPiece tokenizer of the packaged all-MiniLM-L6-v2 (a fast ``transformers``
    tokenizer), loaded once."""
    from transformers import AutoTokenizer

    from course.datasets import minilm_path

    return AutoTokenizer.from_pretrained(minilm_path())


@lru_cache(maxsize=2)
def _minilm_model(eager: bool):
    from transformers import AutoModel

    from course.datasets import minilm_path

    kwargs = {"attn_implementation": "eager"} if eager else {}
    return AutoModel.from_pretrained(minilm_path(), **kwargs).eval()


def minilm(eager: bool = True):
    """``(tokenizer, model)`` for the packaged all-MiniLM-L6-v2, in evaluation mode, loaded once.

    ``eager=True`` (the default) selects the attention implementation that computes the weights
    explicitly, so ``output_attentions=True`` hands them back; both variants give the same
    outputs."""
    if not isinstance(eager, bool):
        raise TypeError(f"eager must be True or False, got {eager!r}")
    return minilm_tokenizer(), _minilm_model(eager)


def _check_figures_when_shown() -> None:
    """In IPython, wrap the PNG formatter of matplotlib figures so that a figure breaking the
    book's rules is reported on stderr when it is displayed. Should the notebook backend
    re-register its formatter, the wrapper is installed again before the next cell."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython comes with Jupyter
        return
    ip = get_ipython()
    if ip is None or getattr(ip, "_course_figure_check", False):
        return
    ip._course_figure_check = True
    import matplotlib.pyplot as plt

    plt.close(plt.figure())  # loads the notebook backend, which registers its formatters
    _wrap_png_formatter(ip)
    ip.events.register("pre_run_cell", lambda *args: _wrap_png_formatter(ip))


def _wrap_png_formatter(ip) -> None:
    from matplotlib.figure import Figure

    from course.book import plots

    png = ip.display_formatter.formatters["image/png"]
    draw = png.type_printers.get(Figure)
    if draw is None or getattr(draw, "_course_checked", False):
        return

    @wraps(draw)
    def checked(fig, *args, **kwargs):
        title = fig._suptitle.get_text() if fig._suptitle else ""
        title = title or next((ax.get_title() for ax in fig.axes if ax.get_title()), "")
        for problem in plots.figure_problems(fig):
            print(f"figure {title!r}: {problem}", file=sys.stderr)
        return draw(fig, *args, **kwargs)

    checked._course_checked = True
    png.for_type(Figure, checked)
