"""Typed card payloads are parsed before a handler runs, and every refusal has its sentence.

The router turns a button's data into its payload model (ids, text, dates, choices, lists);
anything else is one clear refusal from the turn handler, and nothing changes.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import ClassVar, Literal

import pytest

from cards import messages
from cards.payloads import ID_MAX, TEXT_MAX, OpenAudit, Payload, PayloadError
from qa.errors import Code, NotFound
from tests.fakes import User, card_action, message, personal_conversation_id

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Extension(Payload):
    """Every field type a payload may use, as a future button would."""

    verb: ClassVar[str] = "test.extension"
    action_id: int
    new_due: date
    reason: str
    decision: Literal["approve", "refuse"]
    notify: bool
    teams: tuple[str, ...]
    note: str | None


GOOD = {"action_id": 7, "new_due": "2027-01-15", "reason": " Family moved ", "decision": "approve",
        "notify": "true", "teams": "Assessment 1, Children in Care 2", "note": ""}


def test_a_good_payload_is_parsed_into_its_types() -> None:
    ext = Extension.parse(GOOD | {"extra input": "kept for the handler"})
    assert ext == Extension(7, date(2027, 1, 15), "Family moved", "approve", True,
                            ("Assessment 1", "Children in Care 2"), None)
    assert Extension.parse(ext.pack()) == ext  # packed by the card builder, read back


@pytest.mark.parametrize(("field", "value"), [
    ("action_id", 0), ("action_id", -3), ("action_id", ID_MAX + 1), ("action_id", 2**31),
    ("action_id", "7x"), ("action_id", True), ("action_id", 1.5), ("action_id", None),
    ("action_id", {"id": 7}), ("new_due", "15/01/2027"), ("new_due", "2027-02-30"),
    ("new_due", 20270115), ("reason", "ok \ud800"), ("reason", "nul\x00"), ("reason", 42),
    ("reason", "x" * (TEXT_MAX + 1)), ("decision", "maybe"), ("decision", ["approve"]),
    ("notify", "yes"), ("notify", 1), ("teams", 5), ("teams", [1, 2]),
])
def test_a_bad_field_is_refused_by_name(field: str, value: object) -> None:
    with pytest.raises(PayloadError) as raised:
        Extension.parse(GOOD | {field: value})
    assert raised.value.code is Code.BAD_PAYLOAD and raised.value.field == field
    assert f"'{field}'" in messages.error_text(raised.value)


def test_a_missing_field_is_refused_unless_optional() -> None:
    with pytest.raises(PayloadError, match="payload.bad") as raised:
        Extension.parse({k: v for k, v in GOOD.items() if k != "new_due"})
    assert "is missing 'new_due'" in messages.error_text(raised.value)
    assert Extension.parse({k: v for k, v in GOOD.items() if k != "note"}).note is None
    for data in (None, "audit_id=3", [1], 7):
        with pytest.raises(PayloadError):
            OpenAudit.parse(data)


def test_every_refusal_code_has_a_sentence_and_every_sentence_a_code() -> None:
    assert set(messages.ERROR_TEXT) == set(Code)
    sample = NotFound(Code.CASE_NOT_FOUND, case_ref="C-1")
    assert messages.error_text(sample) == "I cannot find case C-1."


def test_no_layer_below_the_handler_writes_a_sentence_into_an_error() -> None:
    """Domain errors carry a code (and ids): a string argument would be a sentence."""
    raised: list[str] = []
    for folder in ("store", "flows", "bot", "qa", "cards"):
        for path in (ROOT / folder).rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                        and node.func.id in {"NotFound", "NotAllowed", "Conflict", "Refused",
                                             "DomainError"}
                        and node.args and isinstance(node.args[0], ast.Constant)):
                    raised.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert raised == []


async def test_an_unknown_verb_and_a_bad_button_are_refused_in_place(service) -> None:
    user = User.named("Clicky Person")
    for verb, data, words in (("no.such.verb", {}, "no longer supported"),
                              (OpenAudit.verb, {"audit_id": "DROP TABLE"}, "did not work"),
                              (OpenAudit.verb, {"audit_id": 2**31}, "did not work")):
        resp = await service.post(card_action(verb, data, user=user,
                                              service_url=service.connector.url))
        assert resp.status == 200
        body = await resp.json()
        card = body["value"]
        assert card["type"] == "AdaptiveCard" and words in card["body"][0]["text"]


async def test_a_button_sent_as_a_message_gets_its_refusal_as_text(service) -> None:
    """Some clients send Action.Submit as a message with ``value.verb``: the refusal comes
    back in the chat rather than being dropped."""
    user = User.named("Submit Person")
    activity = message("", user=user, service_url=service.connector.url)
    activity["value"] = {"verb": OpenAudit.verb, "audit_id": "x"}
    resp = await service.post(activity)
    assert resp.status in (200, 201)
    conv = personal_conversation_id(user)
    await service.connector.wait_for(lambda f: bool(f.texts(conv)), timeout=5)
    assert "did not work" in service.connector.texts(conv)[0]
