"""What a benchmark ran on: device, cores, torch and Python, printed beside its figures."""

from __future__ import annotations

import os
import platform

import torch


def describe(device: str) -> dict:
    """The machine and software behind a run on ``device``."""
    return {
        "device": device,
        "cpu_count": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
