"""Settings read in one place: the registry's ``settings`` follows ``**kwargs`` forwarding to
the base constructor (no rewritten signatures needed), and ``device_setting`` gives the run's
device to exactly the components that take one, as the runner's ``device_default`` does."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from activegen._device import device_setting
from activegen._registry import Registry, setting_hints, settings
from activegen.errors import ConfigError
from activegen.experiments.runner import device_default
from activegen.models import LEARNERS
from activegen.strategies import STRATEGIES


class _Base:
    def __init__(self, n: int, *, device: str = "auto", rate: float = 0.1) -> None:
        self.n, self.device, self.rate = n, device, rate


class _Forwarding(_Base):
    def __init__(self, n: int, width: int = 3, **rest: Any) -> None:
        super().__init__(n, **rest)
        self.width = width


class _Plain:
    def __init__(self, C: float = 1.0) -> None:
        self.C = C


def test_forwarded_settings_are_accepted_typed_and_refused_by_name() -> None:
    assert list(settings(_Forwarding)) == ["n", "width", "device", "rate"]
    assert setting_hints(_Forwarding)["rate"] is float
    registry: Registry[Any] = Registry("widget")
    registry.register("w")(_Forwarding)
    built = registry.build("w", {"rate": 0.5, "width": 4}, n=2)
    assert (built.n, built.width, built.rate) == (2, 4, 0.5)
    with pytest.raises(ConfigError, match=r"has no parameter 'rte'; its parameters are: .*rate"):
        registry.build("w", {"rte": 0.5}, n=2)
    with pytest.raises(ConfigError, match="'rate' = 'fast' is not a valid float"):
        registry.check_params("w", {"rate": "fast"})


def test_device_setting_reaches_the_components_that_take_a_device() -> None:
    assert device_setting(_Forwarding, {}, "cpu") == {"device": "cpu"}  # through **rest
    assert device_setting(_Forwarding, {"device": "cpu"}, "auto") == {}  # the config's own
    assert device_setting(_Plain, {}, "cpu") == {}
    config = SimpleNamespace(device="cpu")  # all device_default reads of a config
    classes = [cls for registry in (LEARNERS, STRATEGIES) for _, cls in registry.items()]
    with_device = [cls.__name__ for cls in classes if device_setting(cls, {}, "cpu")]
    assert {"SmallCNN", "ResNet18", "CoreSet", "MedAL"} <= set(with_device)
    for cls in classes:  # what the runner's copy gives today, so it can re-export this one
        assert device_setting(cls, {}, "cpu") == device_default(config, cls, {})  # type: ignore[arg-type]
