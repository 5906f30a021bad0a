"""The reliability tests' shared bench: one reference run per command (a session's)."""

import pytest

from tests.reliability.outputs import Bench


@pytest.fixture(scope="session")
def bench(tmp_path_factory) -> Bench:
    return Bench(tmp_path_factory.mktemp("interrupt"))
