"""What every chapter runs before its first visible cell, and the models chapters share.

A chapter starts with one hidden cell (tagged ``remove-cell`` so the reader never sees it)::

    from course.chapter import setup
    setup()

:func:`setup` makes the page reproducible and offline: no request to the model hub, no tokenizer
thread warnings, no ``transformers`` progress bars or notices, the house plot style, and a fixed
random seed. The loaders (:func:`minilm`, :func:`minilm_tokenizer`) build the packaged
all-MiniLM-L6-v2 once per kernel and hand the same objects back on later calls.
"""

from __future__ import annotations

import os
import random
import warnings
from functools import lru_cache


def setup(seed: int = 0) -> None:
    """Prepare a chapter's kernel: offline model hub, quiet ``transformers``, the house plot
    style, and ``seed`` for Python's, NumPy's and PyTorch's random generators."""
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    os.environ["HF_HUB_OFFLINE"] = "1"              # never contact the model hub
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # no fork warnings from the Rust tokenizers
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

    import numpy as np
    import torch
    import transformers

    from course import plots

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    warnings.filterwarnings("ignore", message=".*TypedStorage is deprecated.*")
    plots.use_house_style()
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@lru_cache(maxsize=1)
def minilm_tokenizer():
    """The WordPiece tokenizer of the packaged all-MiniLM-L6-v2 (a fast ``transformers``
    tokenizer), loaded once."""
    from transformers import AutoTokenizer

    from course.data import minilm_path

    return AutoTokenizer.from_pretrained(minilm_path())


@lru_cache(maxsize=2)
def _minilm_model(eager: bool):
    from transformers import AutoModel

    from course.data import minilm_path

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
