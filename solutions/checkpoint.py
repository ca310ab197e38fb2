"""Checkpoints that resume a run exactly (chapter 9).

- :func:`rng_states` / :func:`set_rng_states` -- every random state the loop uses.
- :func:`save_checkpoint` / :func:`load_checkpoint` -- model, optimizer, scheduler, RNG states
  and data position, so that a killed run resumes to exactly the same weights.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import torch
from torch import nn


def rng_states() -> dict:
    """Every random state the loop uses: torch (CPU and CUDA) and Python's random."""
    state = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1]),
             "python_version": random.getstate()[0]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_states(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate((state["python_version"], tuple(state["python"]), None))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path, model: nn.Module, optimizer, scheduler, step: int,
                    data_generator: torch.Generator, extra: dict | None = None) -> None:
    """Write everything needed to continue exactly; atomically (a kill mid-write leaves the
    previous checkpoint intact)."""
    model = getattr(model, "_orig_mod", model)           # torch.compile wrapper
    model = getattr(model, "module", model)              # DistributedDataParallel wrapper
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "scheduler": scheduler.state_dict(), "step": step, "rng": rng_states(),
             "data_rng": data_generator.get_state(), **(extra or {})}
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path, model: nn.Module | None = None, optimizer=None, scheduler=None,
                    data_generator: torch.Generator | None = None, map_location="cpu") -> dict:
    """Read a checkpoint; restore whichever of model, optimizer, scheduler, data generator are
    given, and the RNG states when a data generator is given (i.e. when resuming)."""
    path = Path(path)
    if path.is_dir():
        path = path / "ckpt.pt"
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    state = torch.load(path, map_location=map_location, weights_only=True)
    if model is not None:
        model = getattr(getattr(model, "_orig_mod", model), "module", model)
        model.load_state_dict(state["model"])
    if optimizer is not None:
        optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None:
        scheduler.load_state_dict(state["scheduler"])
    if data_generator is not None:
        data_generator.set_state(state["data_rng"])
        set_rng_states(state["rng"])
    return state
