"""The leadership digest (SPEC R12): figures for a month or quarter, aggregates only.

``qabot digest PERIOD`` prints it; the figures come from ``reports/digest.py``. Posting it to
a leadership channel on the framework's schedule is not built yet, so this flow has no
route and no job.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.router import Router
from qa.periods import Period
from reports.digest import Digest, compute_digest, digest_text

if TYPE_CHECKING:
    from qabot.services import Services

router = Router()
jobs = ()


async def digest_for(services: Services, period: Period) -> Digest:
    return await compute_digest(services.sessions, services.framework, period)


async def digest_report(services: Services, period: Period, *, as_json: bool = False) -> str:
    """The digest as text (or its figures as JSON), from one computation."""
    digest = await digest_for(services, period)
    return digest.to_json() if as_json else digest_text(digest, services.framework)
