"""Which torch device to compute on: CUDA when present, the CPU otherwise, or what the user says.

Every torch path (learner training, k-center distances, query synthesis, generator and VAE
training) takes its device from :func:`resolve_device`, so one setting (``device`` in the
config, ``--device`` on the command line) moves all of them, and a request that this machine
cannot honour fails before any work starts.
"""

from __future__ import annotations

import re

from activegen.errors import ConfigError

_DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?|mps)$")


def resolve_device(device: str = "auto") -> str:
    """Turn a device request into a device torch accepts on this machine.

    ``auto`` → ``cuda`` when a GPU is visible, else ``cpu``. ``cpu``, ``cuda``, ``cuda:<i>`` and
    ``mps`` are returned as given after checking that they exist here.

    Raises:
        ConfigError: an unknown device name, or a GPU that this machine does not have.
    """
    request = str(device).strip().lower()
    if not _DEVICE_PATTERN.match(request):
        raise ConfigError(
            f"device {device!r} is not one of: auto, cpu, cuda, cuda:<index>, mps"
        )
    if request == "cpu":
        return "cpu"
    import torch

    if request == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if request.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(
                f"device {device!r} was requested but torch sees no CUDA GPU here "
                f"(torch {torch.__version__}); use device = \"auto\" or \"cpu\""
            )
        index = int(request.split(":")[1]) if ":" in request else 0
        count = torch.cuda.device_count()
        if index >= count:
            raise ConfigError(
                f"device {device!r} was requested but only {count} CUDA GPU(s) are visible"
            )
        return request
    mps = getattr(torch.backends, "mps", None)
    if mps is None or not mps.is_available():
        raise ConfigError(f"device {device!r} was requested but MPS is not available here")
    return request
