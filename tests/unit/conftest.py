"""The unit tests' environment: never the integration one, whatever ran before them."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from pulse.config import settings

KEPT = {"PULSE_UPDATE_SNAPSHOTS", "PULSE_TEST_ARTEFACTS"}  # switches of the test run itself, not of Pulse


@pytest.fixture(autouse=True, scope="module")
def unit_environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """No PULSE_* variable from the shell or from a session fixture of the integration tests (they
    set test ports and a PULSE_HOME for the session, and modules run in random order), no pulse.toml,
    and a PULSE_HOME of the module's own. Module-scoped, so module fixtures see it too."""
    with pytest.MonkeyPatch.context() as mp:
        for key in [k for k in os.environ if k.startswith("PULSE_") and k not in KEPT]:
            mp.delenv(key)
        mp.setenv("PULSE_CONFIG", os.devnull)
        mp.setenv("PULSE_HOME", str(tmp_path_factory.mktemp("unit-home")))
        settings.cache_clear()
        yield
    settings.cache_clear()
