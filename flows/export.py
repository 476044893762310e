"""Records for the self-evaluation and Ofsted (SPEC R13): audits, grades and actions to
CSV or XLSX, for authorised people only (``qabot export``); never to a channel.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from bot.router import Router
from reports.export import export

if TYPE_CHECKING:
    from qabot.services import Services

router = Router()
jobs = ()


async def export_records(services: Services, out_dir: Path | str, *, since: date | None,
                         until: date | None, fmt: str) -> dict[str, Path]:
    return await export(services.sessions, out_dir, since=since, until=until, fmt=fmt,
                        framework=services.framework)
