import pytest

from netshrink.models import external


@pytest.fixture(autouse=True)
def untrusted():
    """Each test starts with no importable path trusted, as a new process does."""
    saved = set(external._TRUSTED)
    external._TRUSTED.clear()
    yield
    external._TRUSTED.clear()
    external._TRUSTED.update(saved)
