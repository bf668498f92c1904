"""Test-wide settings: the shared generator cache lives in a temporary folder, never in $HOME."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, scope="session")
def _shared_cache(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    mp = pytest.MonkeyPatch()
    mp.setenv("ACTIVEGEN_CACHE", str(tmp_path_factory.mktemp("shared-cache")))
    yield
    mp.undo()
