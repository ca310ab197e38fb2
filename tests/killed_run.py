"""`python -m course train` killed with SIGKILL after its first checkpoint, then resumed: the
shared run of the CLI's and the capstone's exact-resume tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def train(*args) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "course", "train", *map(str, args)], env=env,
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def killed_and_resumed(tmp_path: Path, common: list, steps: int) -> tuple[dict, dict]:
    """The final checkpoints of a run straight through and of one killed after its first
    checkpoint (before step `steps`) and resumed with --resume."""
    full, cut = tmp_path / "full", tmp_path / "cut"
    assert train("--out", full, *common).wait(timeout=300) == 0
    victim = train("--out", cut, *common)
    deadline = time.time() + 300
    while time.time() < deadline and not (cut / "ckpt.pt").exists():
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    step = torch.load(cut / "ckpt.pt", weights_only=True)["step"]
    assert victim.returncode == -signal.SIGKILL and 0 < step < steps
    assert train("--out", cut, *common, "--resume").wait(timeout=300) == 0
    return (torch.load(full / "ckpt.pt", weights_only=True),
            torch.load(cut / "ckpt.pt", weights_only=True))
