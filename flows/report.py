"""The monthly QA report (``qabot report PERIOD --out FILE.docx``) for the performance board.

The same computation and the same protected view as the digest (``flows/digest.py``), so the
report's numbers are the digest's; ``cards/report.py`` lays it out, this flow writes the file
(under a temporary name, renamed when complete, so a half-written report is never taken for
a whole one).
"""

from __future__ import annotations

import asyncio
import os
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from bot.router import Router
from cards.report import report_docx
from flows.digest import digest_view
from qa.periods import Period

if TYPE_CHECKING:
    from qabot.services import Services

router = Router()
jobs = ()


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path


async def write_report(services: Services, period: Period, out: Path | str, *,
                       as_of: datetime | None = None) -> Path:
    view = await digest_view(services, period, as_of=as_of)
    data = await asyncio.to_thread(report_docx, view)
    return await asyncio.to_thread(_write, Path(out), data)
