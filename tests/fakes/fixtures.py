"""Pytest fixtures for the fakes; tests/conftest.py re-exports them.

Re-export with ``from tests.fakes.fixtures import fake_connector  # noqa: F401`` (or list
``"tests.fakes.fixtures"`` in the root conftest's ``pytest_plugins``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .connector import FakeConnector


@pytest.fixture
def fake_connector() -> Iterator[FakeConnector]:
    """A started FakeConnector per test; sync so it works in sync and async tests alike."""
    with FakeConnector() as fc:
        yield fc
