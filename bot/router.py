"""Routes as (selector, handler) pairs: exact card verbs with typed payloads, exact commands.

Each flow owns a ``Router`` and registers its own routes; the app factory combines them
(EXAMPLES habits 2, 3 and 4). Card actions are matched before text commands, and never by
substring. A card route names its payload model: the router parses the button's data into
it before the handler runs, so a bad button is refused here (a :class:`~qa.errors.Refused`
for the turn handler to word) and no handler sees unparsed data.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, TypeVar

from bot.turn import Incoming, Reply
from cards import messages
from cards.payloads import Payload
from qa.errors import Code, Refused

if TYPE_CHECKING:
    from qabot.services import Services
    from store.models import Staff

P = TypeVar("P", bound=Payload)


@dataclass(frozen=True)
class Request:
    """One routed turn: the activity, who sent it (if we know them), the services and the
    turn's time from the one clock."""

    services: Services
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
    def staff_id(self) -> str | None:
        return self.staff.staff_id if self.staff is not None else None

    @property
    def args(self) -> str:
        """The text after the command word(s)."""
        return self.incoming.text

    @property
    def inputs(self) -> dict[str, Any]:
        """A card click's inputs (with the packed fields Teams merges into them)."""
        return self.incoming.action_data


Handler = Callable[[Request], Awaitable[Reply | None]]
CardHandler = Callable[[Request, Any], Awaitable[Reply | None]]
EventSelector = Callable[[Incoming], bool]

#: Stands in a command's roles for "the QA team", whose roles the framework file names.
QA_TEAM = "@qa_team"


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


@dataclass(frozen=True)
class CardRoute:
    payload: type[Payload]
    handler: CardHandler


@dataclass
class Router:
    commands: list[Command] = field(default_factory=list)
    cards: dict[str, CardRoute] = field(default_factory=dict)
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

    def card(self, payload: type[P]) -> Callable[[Callable[[Request, P], Awaitable[Reply | None]]],
                                                 Callable[[Request, P], Awaitable[Reply | None]]]:
        """Register the handler of a card verb; it receives the parsed payload."""

        def register(handler: Callable[[Request, P], Awaitable[Reply | None]]
                     ) -> Callable[[Request, P], Awaitable[Reply | None]]:
            self._add_card(payload.verb, CardRoute(payload, handler))
            return handler

        return register

    def event(self, selector: EventSelector) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.events.append((selector, handler))
            return handler

        return register

    def _add_card(self, verb: str, route: CardRoute) -> None:
        if verb in self.cards:
            raise ValueError(f"verb {verb!r} registered twice")
        self.cards[verb] = route

    def include(self, other: Router) -> None:
        for verb, route in other.cards.items():
            self._add_card(verb, route)
        self.commands.extend(other.commands)
        self.events.extend(other.events)

    @classmethod
    def combine(cls, routers: Iterable[Router]) -> Router:
        root = cls()
        for router in routers:
            root.include(router)
        return root

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
        if verb is None and incoming.is_card_action:
            # An Action.Execute whose action (or verb) is not what Teams sends.
            raise Refused(Code.BAD_PAYLOAD, problem=messages.payload_problem("action", False))
        if verb is not None:
            route = self.cards.get(verb)
            if route is None:
                raise Refused(Code.UNKNOWN_VERB)
            return await route.handler(request, route.payload.parse(incoming.action_data))
        for selector, handler in self.events:
            if selector(incoming):
                return await handler(request)
        if incoming.type == "message" and incoming.text:
            found = self.match_command(incoming.text)
            if found is None:
                return Reply.text(messages.UNKNOWN_COMMAND)
            command, rest = found
            if incoming.conversation_type != "personal" and not command.anywhere:
                return Reply.text(messages.one_to_one_only(command.usage))
            qa_roles = request.services.framework.qa_roles
            if not command.allowed(request.roles, qa_roles):
                return Reply.text(messages.not_for_you(command.usage, _who(request, command)))
            return await command.handler(replace(request, incoming=replace(incoming, text=rest)))
        return None


def _who(request: Request, command: Command) -> str:
    """The roles a command is for, in the framework's own labels."""
    fw = request.services.framework
    if command.roles == {QA_TEAM}:
        return "the QA team"
    roles = set(command.roles or ()) - {QA_TEAM}
    if command.roles and QA_TEAM in command.roles:
        roles |= fw.qa_roles
    return " or ".join(fw.roles.get(r, r) for r in sorted(roles))
