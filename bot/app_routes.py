"""The root router: combines each flow's routes (the root adds none of its own)."""

from __future__ import annotations

from bot.flows import audit_form, status, welcome
from bot.router import Router


def build_router() -> Router:
    root = Router()
    for flow in (welcome.router, audit_form.router, status.router):
        root.include(flow)
    return root
