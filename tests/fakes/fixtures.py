"""Pytest fixtures for the fakes; tests/conftest.py re-exports them.

Re-export with ``from tests.fakes.fixtures import fake_connector  # noqa: F401`` (or list
``"tests.fakes.fixtures"`` in the root conftest's ``pytest_plugins``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .connector import FakeConnector


@pytest.fixture
def fake_connector(request: pytest.FixtureRequest) -> Iterator[FakeConnector]:
    """A started FakeConnector per test; sync so it works in sync and async tests alike.

    After the test, every post it recorded in a channel or group chat is scanned
    (tests/channel_scan.py): no case reference, no staff name next to a grade, no count
    from 1 to 4. Tests of the fake itself opt out with ``@pytest.mark.channel_scan_exempt``.
    """
    from tests.channel_scan import Known, scan

    with FakeConnector() as fc:
        fc.known = Known()  # type: ignore[attr-defined]
        yield fc
        if request.node.get_closest_marker("channel_scan_exempt") is None:
            problems = scan(fc.deliveries, fc.known)  # type: ignore[attr-defined]
            assert not problems, "channel posts that could identify a child:\n" + "\n".join(
                problems)
