"""End-to-end tests that drive the Microsoft 365 Agents Playground in headless Chromium.

The harness lives in :mod:`tests.e2e.playground`; fixtures in ``conftest.py``. Run
``bash scripts/e2e-deps.sh`` once per machine first, otherwise every test here skips
with the reason (no node, no /usr/bin/chromium, Playground not installed).
"""
