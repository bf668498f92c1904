"""State dicts saved with a SHA-256 of their tensors, so a damaged cache file is caught.

``torch.load`` notices a truncated file or a garbage header, but not bytes overwritten inside
a tensor: it hands back different weights without complaint. A file written by
:func:`state_bytes` holds ``{"format": 2, "sha256": ..., "state": state_dict}``;
:func:`load_state` recomputes the digest and raises :class:`DamagedStateError` on any
mismatch. A plain state dict (the format before this one) still loads, checked by
``torch.load`` alone.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import torch

FORMAT = 2


class DamagedStateError(ValueError):
    """A saved state dict whose bytes are not those that were written."""


def state_digest(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 of a state dict's names, dtypes, shapes and tensor bytes (in name order)."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{list(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def state_bytes(state: dict[str, torch.Tensor]) -> bytes:
    """The file content for ``state`` (moved to the CPU), with its digest."""
    cpu = {k: v.detach().cpu() for k, v in state.items()}
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, "sha256": state_digest(cpu), "state": cpu}, buffer)
    return buffer.getvalue()


def load_state(path: Path, device: str = "cpu") -> dict[str, torch.Tensor]:
    """The state dict in ``path``; raises if the file is unreadable or its digest is wrong."""
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(payload, dict) and payload.get("format") == FORMAT:
        state = payload["state"]
        if state_digest(state) != payload.get("sha256"):
            raise DamagedStateError("its tensors do not match the SHA-256 saved with them")
    else:
        state = payload
    return {k: v.to(device) for k, v in state.items()}
