"""A warm start: the first clicks after a deploy cost what every later one does.

Measured in bench/NOTES.md ("cold paths"): the first few clicks of each kind took up to
800 ms (lazy imports, the card models' first build, SQLAlchemy statement compilation, and
asyncpg preparing each statement once per pooled connection), then ~10 ms. The service
runs this once at start-up, before it accepts a request, so a load balancer never routes a
person to a cold instance:

1. imports the first job or turn would otherwise pay for;
2. the Teams SDK's models: one activity deserialised and reduced, one invoke body written;
3. every card the form path builds, from the framework's own tools (pure, no I/O);
4. the connection pool opened to its usual size, each connection running the first
   queries of a turn (who is this person, which audit is this) so they are compiled and,
   on PostgreSQL, prepared on every connection;
5. one whole turn (``help`` from nobody) through the turn handler and router.

Nothing here writes to the database or calls Teams; a failing step (a database not up
yet) is logged and skipped, never fatal: /readyz still says what is wrong.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

from sqlalchemy import text

if TYPE_CHECKING:
    from bot.turn import TurnHandler
    from qabot.services import Services

log = logging.getLogger(__name__)

#: Modules the service would otherwise import on first use (not the CLI-only digest and
#: export, nor openpyxl: the service never builds a workbook, so it need not hold one).
LAZY_MODULES = ("scheduler.runner", "botbuilder.core.teams", "msrest.serialization")
#: Connections opened at start: enough for the clicks of a busy council at once.
POOL_CONNECTIONS = 4
STEP_TIMEOUT_SECONDS = 5.0


@dataclass
class WarmUp:
    """What the warm-up did: seconds per step, and the steps that failed (with why)."""

    steps: dict[str, float] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return sum(self.steps.values())


def _cards(services: Services) -> None:
    """Build the form, its refused and draft states, the summary and the tables once."""
    from cards.allocation import (
        AllocatedCase,
        AllocationView,
        AreaCount,
        CompletionRow,
        CompletionView,
        QaSummaryView,
        allocation_card,
        completion_card,
        qa_summary_card,
    )
    from cards.audit_form import FormView, SummaryView, audit_form_card, audit_summary_card
    from qa import form_rules as fr

    fw = services.framework
    day = date(2000, 1, 3)
    for tool in fw.tools.values():
        view = FormView(audit_id=0, case_ref="C-000000", area_label="", tool_label=tool.label,
                        domains=tool.domains, grades=fw.grades, look_back_from=day,
                        look_back_to=day, deadline=day, owner_choices=(("x", "x"),),
                        max_actions=fw.max_actions)
        audit_form_card(view)
        audit_form_card(replace(view, errors={fr.OVERALL: "x", fr.FORM: "x"}, note="x"))
    audit_summary_card(SummaryView(0, "C-000000", "", "", (("", ""),), "", "", (), "",
                                   datetime(2000, 1, 3, tzinfo=UTC)))
    allocation_card(AllocationView("", "", day, (AllocatedCase(0, "C-000000", "", "random",
                                                               day, day, day),)))
    qa_summary_card(QaSummaryView("", day, 0, day, 0, (AreaCount("", 0, 0),), (("", 0),), (), 0,
                                  ()))
    completion_card(CompletionView(day, day, (CompletionRow("", 0, 0, 0, 0),)))


async def _pool(services: Services) -> None:
    """Open the pool's connections together; run a turn's first queries on each (reads
    only: the form's path looks up the audit, its case and the people around the case)."""
    from store.audits import audit_and_case, people_around_case
    from store.directory import _staff_by_identity
    from store.models import Case, Conversation

    async def one() -> None:
        async with services.sessions() as session:
            await session.execute(text("SELECT 1"))
            await _staff_by_identity(session, "warm-up", "warm-up", active_only=True)
            await _staff_by_identity(session, "warm-up", None)
            await session.get(Conversation, "warm-up")
            try:
                await audit_and_case(session, -1)
            except Exception as err:  # the expected "no such audit" refusal
                if not type(err).__name__.startswith(("NotFound", "Refused", "Conflict")):
                    raise
            await people_around_case(session, Case(case_ref="warm-up", team_id=-1,
                                                   social_worker_id="warm-up"))

    backend = services.engine.dialect.name
    await asyncio.gather(*(one() for _ in range(1 if backend == "sqlite" else POOL_CONNECTIONS)))


async def warm_up(services: Services, handler: TurnHandler | None = None) -> WarmUp:
    """Run every step, timing each; never raises."""
    done = WarmUp()

    async def step(name: str, work: object) -> None:
        started = time.perf_counter()
        try:
            if asyncio.iscoroutine(work):
                await asyncio.wait_for(work, STEP_TIMEOUT_SECONDS)
            elif callable(work):
                work()
        except Exception as err:
            done.failed[name] = type(err).__name__
            log.warning("warm-up step failed", extra={"step": name,
                                                      "error": type(err).__name__})
        done.steps[name] = time.perf_counter() - started

    def imports() -> None:
        for module in LAZY_MODULES:
            importlib.import_module(module)

    await step("imports", imports)
    if services.teams is not None:
        await step("teams_sdk", services.teams.warm_up)
        await step("connector_clients", _connectors(services))
    await step("cards", lambda: _cards(services))
    await step("database_pool", _pool(services))
    if handler is not None:
        await step("turn", _turn(handler))
    log.info("warmed up", extra={"ms": round(done.seconds * 1000),
                                 "failed": sorted(done.failed)})
    return done


async def _connectors(services: Services) -> None:
    """A connector client for each service URL the bot already talks to (no request is
    made: building one costs ~8 ms of msrest set-up, paid here instead of by a click)."""
    from sqlalchemy import select

    from store.models import Conversation

    assert services.teams is not None
    async with services.sessions() as session:
        urls = sorted(set(await session.scalars(select(Conversation.service_url).distinct())))
    await services.teams.warm_connectors(urls[:10])


async def _turn(handler: TurnHandler) -> None:
    """``help`` from someone unknown: the handler, the router and the help text, no I/O
    beyond one staff lookup (no conversation to remember, no reference to link by)."""
    from bot.turn import Incoming

    await handler(Incoming(type="message", text="help", user_id="warm-up",
                           conversation_id="", correlation_id="warm-up"))
