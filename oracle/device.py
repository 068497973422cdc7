"""Choosing the device a computation runs on."""

from __future__ import annotations

import torch

from crux.worldmodel.errors import CruxError

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` is ``cuda`` when a GPU is present, else ``cpu``; asking for a missing GPU is an error."""
    if isinstance(device, torch.device):
        return device
    name = device.strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise CruxError(f"device {device!r}: no CUDA GPU is available here; use --device cpu or auto")
        return torch.device(name)
    if name == "cpu":
        return torch.device("cpu")
    raise CruxError(f"unknown device {device!r}: use one of {', '.join(DEVICES)}")
