"""Routes as (selector, handler) pairs: exact command words and exact card verbs.

Each conversation flow owns a ``Router`` and registers its own routes; the root router
only includes them (EXAMPLES habits 2 and 3). Card actions are matched before text
commands, and never by substring.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bot.turn import Incoming, Reply

if TYPE_CHECKING:
    from qabot.context import AppContext
    from store.models import Staff


@dataclass(frozen=True)
class Request:
    """One routed turn: the activity, who sent it (if we know them) and the app."""

    ctx: AppContext
    incoming: Incoming
    staff: Staff | None

    @property
    def roles(self) -> frozenset[str]:
        return frozenset(self.staff.roles or []) if self.staff else frozenset()

    @property
    def actor(self) -> str:
        """Who did it, for the audit log: the staff id, else the Teams user id."""
        return self.staff.staff_id if self.staff else f"teams:{self.incoming.user_id}"

    @property
    def args(self) -> str:
        """The text after the command word(s)."""
        return self.incoming.text


Handler = Callable[[Request], Awaitable[Reply | None]]

#: Stands in a command's roles for "the QA team", whose roles the framework file names.
QA_TEAM = "@qa_team"
EventSelector = Callable[[Incoming], bool]


@dataclass(frozen=True)
class Command:
    words: tuple[str, ...]
    handler: Handler
    summary: str
    usage: str
    roles: frozenset[str] | None  # None: everyone; else any one of these roles (or QA_TEAM)
    anywhere: bool = False  # also answered in channels and group chats (never case detail)

    def allowed(self, roles: frozenset[str], qa_roles: frozenset[str]) -> bool:
        if self.roles is None:
            return True
        wanted = self.roles - {QA_TEAM}
        if QA_TEAM in self.roles:
            wanted |= qa_roles
        return bool(roles & wanted)


@dataclass
class Router:
    commands: list[Command] = field(default_factory=list)
    verbs: dict[str, Handler] = field(default_factory=dict)
    events: list[tuple[EventSelector, Handler]] = field(default_factory=list)

    def command(
        self, words: str, *, summary: str, usage: str | None = None,
        roles: Iterable[str] | None = None, anywhere: bool = False,
    ) -> Callable[[Handler], Handler]:
        """Register a text command matched on its exact leading word(s).

        Commands answer in 1:1 chats only unless ``anywhere``: their replies may carry
        case-level detail, and a channel gets aggregates only.
        """

        def register(handler: Handler) -> Handler:
            self.commands.append(Command(
                tuple(words.lower().split()), handler, summary, usage or words,
                frozenset(roles) if roles is not None else None, anywhere))
            return handler

        return register

    def verb(self, name: str) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            if name in self.verbs:
                raise ValueError(f"verb {name!r} registered twice")
            self.verbs[name] = handler
            return handler

        return register

    def event(self, selector: EventSelector) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.events.append((selector, handler))
            return handler

        return register

    def include(self, other: Router) -> None:
        for name, handler in other.verbs.items():
            if name in self.verbs:
                raise ValueError(f"verb {name!r} registered twice")
            self.verbs[name] = handler
        self.commands.extend(other.commands)
        self.events.extend(other.events)

    def commands_for(self, roles: frozenset[str], qa_roles: frozenset[str]) -> list[Command]:
        return [c for c in self.commands if c.allowed(roles, qa_roles)]

    def match_command(self, text: str) -> tuple[Command, str] | None:
        """The longest registered command whose words start the text, and the rest."""
        words = text.split()
        lowered = [w.lower() for w in words]
        best: Command | None = None
        for command in self.commands:
            n = len(command.words)
            if tuple(lowered[:n]) == command.words and (best is None or n > len(best.words)):
                best = command
        if best is None:
            return None
        return best, " ".join(words[len(best.words):])

    async def dispatch(self, request: Request) -> Reply | None:
        incoming = request.incoming
        verb = incoming.verb
        if verb is not None:
            handler = self.verbs.get(verb)
            if handler is None:
                return Reply.text("That button is no longer supported. Type **help**.")
            return await handler(request)
        for selector, handler in self.events:
            if selector(incoming):
                return await handler(request)
        if incoming.type == "message" and incoming.text:
            found = self.match_command(incoming.text)
            if found is None:
                return Reply.text(
                    "Sorry, I did not understand that. Type **help** to see what I can do for you.")
            command, rest = found
            if incoming.conversation_type != "personal" and not command.anywhere:
                return Reply.text(f"Please message me 1:1 for **{command.usage}**: here I "
                                  "only ever post totals, never details of a case.")
            qa_roles = request.ctx.framework.qa_roles
            if not command.allowed(request.roles, qa_roles):
                return Reply.text(f"**{command.usage}** is for {_who(request, command)} only.")
            return await command.handler(_with_args(request, rest))
        return None


def _who(request: Request, command: Command) -> str:
    """The roles a command is for, in the framework's own labels."""
    fw = request.ctx.framework
    if command.roles == {QA_TEAM}:
        return "the QA team"
    roles = set(command.roles or ()) - {QA_TEAM}
    if command.roles and QA_TEAM in command.roles:
        roles |= fw.qa_roles
    return " or ".join(fw.roles.get(r, r) for r in sorted(roles))


def _with_args(request: Request, rest: str) -> Request:
    from dataclasses import replace

    return replace(request, incoming=replace(request.incoming, text=rest))


def payload(request: Request) -> dict[str, Any]:
    """The action data of a card click (inputs plus packed fields)."""
    return request.incoming.action_data
