"""What the Teams edge accepts, before the SDK (or anything else) sees a request body.

``read_activity`` turns the raw bytes of ``POST /api/messages`` into a clean activity dict
or raises :class:`Unanswerable` (the endpoint answers 400):

* the body must be one JSON object, nested at most :data:`MAX_DEPTH` deep (a deeply nested
  array is refused here rather than overflowing a parser's stack later);
* the addressing must be answerable: a ``conversation`` with a text ``id``, a ``serviceUrl``
  that is a plain http(s) URL (no template braces, no credentials), and identifiers that
  are short text without control characters. Anything else could not be answered, and a
  missing service URL made the SDK fall back to a public Microsoft endpoint;
* every other text (what a person typed, card inputs, names) is *cleaned*, not refused:
  NUL and other control characters (except tab and line breaks) are dropped and lone UTF-16
  surrogates become U+FFFD, so nothing that cannot be stored or shown reaches the store and
  a form's entries are kept.

Pure functions on JSON data: no SDK, no I/O.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlsplit

__all__ = ["MAX_DEPTH", "Unanswerable", "clean_text", "read_activity"]

#: Deepest nesting accepted (Teams' own activities and card data are under 10 levels).
MAX_DEPTH = 32

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_UNSAFE_ID = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")
_URL_FORBIDDEN = re.compile(r"[\s{}<>\"\\^`|\x00-\x1f\x7f\ud800-\udfff]")

# Longest identifiers stored (store/models.py column sizes; the audit log's actor is
# "teams:" + the user id in 200 characters).
USER_ID_MAX = 190
CONVERSATION_ID_MAX = 300
SHORT_ID_MAX = 64
SERVICE_URL_MAX = 500
NAME_MAX = 200


class Unanswerable(ValueError):
    """The request body is not an activity this service can answer (HTTP 400)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def clean_text(text: str) -> str:
    """Drop NUL and control characters (keeping tab, CR, LF); lone surrogates become U+FFFD."""
    if text.isascii():
        return _CONTROL.sub("", text) if _CONTROL.search(text) else text
    text = _SURROGATE.sub("\ufffd", text)
    return _CONTROL.sub("", text)


def _clean(node: Any) -> Any:
    """Clean every text (keys included) in a JSON value; depth was checked before."""
    if isinstance(node, str):
        return clean_text(node)
    if isinstance(node, dict):
        return {clean_text(k): _clean(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_clean(v) for v in node]
    return node


def _depth_ok(root: Any) -> bool:
    """True when no container nests deeper than MAX_DEPTH (iterative: no recursion)."""
    stack: list[tuple[Any, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > MAX_DEPTH:
            return False
        stack.extend((child, depth + 1) for child in children
                     if isinstance(child, dict | list))
    return True


def _identifier(body: dict[str, Any], where: str, value: Any, limit: int, *,
                required: bool = False) -> None:
    if value is None and not required:
        return
    if not isinstance(value, str) or not value or len(value) > limit or _UNSAFE_ID.search(value):
        raise Unanswerable(f"{where} must be text of 1 to {limit} characters")


def _optional_dict(body: dict[str, Any], key: str) -> dict[str, Any] | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise Unanswerable(f"{key} must be an object")
    return value


def _optional_list_of_dicts(body: dict[str, Any], key: str) -> list[dict[str, Any]]:
    value = body.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise Unanswerable(f"{key} must be a list of objects")
    return value


def _optional_text(body: dict[str, Any], key: str) -> None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise Unanswerable(f"{key} must be text")


def service_url_ok(url: Any) -> bool:
    """A plain http(s) URL with a host: no braces, spaces, credentials or control characters."""
    if not isinstance(url, str) or not url or len(url) > SERVICE_URL_MAX:
        return False
    if _URL_FORBIDDEN.search(url):
        return False
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return False
    return (parts.scheme in ("http", "https") and bool(parts.hostname)
            and parts.username is None and parts.password is None)


def _account(body: dict[str, Any], key: str, id_limit: int) -> None:
    account = _optional_dict(body, key)
    if account is None:
        return
    _identifier(body, f"{key}.id", account.get("id"), id_limit)
    _identifier(body, f"{key}.aadObjectId", account.get("aadObjectId"), SHORT_ID_MAX)
    name = account.get("name")
    if name is not None and not isinstance(name, str):
        raise Unanswerable(f"{key}.name must be text")
    if isinstance(name, str) and len(name) > NAME_MAX:
        account["name"] = name[:NAME_MAX]


def check_activity(body: Any) -> dict[str, Any]:
    """Refuse what cannot be answered; return the activity with every text cleaned."""
    if not isinstance(body, dict):
        raise Unanswerable("the body must be a JSON object")
    if not _depth_ok(body):
        raise Unanswerable(f"nested deeper than {MAX_DEPTH} levels")
    kind = body.get("type")
    if not isinstance(kind, str) or not kind or len(kind) > SHORT_ID_MAX:
        raise Unanswerable("type must be text")
    conversation = body.get("conversation")
    if not isinstance(conversation, dict):
        raise Unanswerable("conversation must be an object")
    _identifier(body, "conversation.id", conversation.get("id"), CONVERSATION_ID_MAX,
                required=True)
    for key in ("conversationType", "tenantId", "name"):
        if conversation.get(key) is not None and not isinstance(conversation.get(key), str):
            raise Unanswerable(f"conversation.{key} must be text")
    if not service_url_ok(body.get("serviceUrl")):
        raise Unanswerable("serviceUrl must be an http(s) URL")
    _account(body, "from", USER_ID_MAX)
    _account(body, "recipient", NAME_MAX)
    for key in ("id", "replyToId"):
        _identifier(body, key, body.get(key), CONVERSATION_ID_MAX)
    for key in ("name", "text", "action", "channelId", "locale", "textFormat", "timestamp",
                "localTimestamp"):
        _optional_text(body, key)
    channel_data = _optional_dict(body, "channelData")
    if channel_data is not None:
        for key, limit in (("tenant", SHORT_ID_MAX), ("team", CONVERSATION_ID_MAX),
                           ("channel", CONVERSATION_ID_MAX)):
            part = channel_data.get(key)
            if part is None:
                continue
            if not isinstance(part, dict):
                raise Unanswerable(f"channelData.{key} must be an object")
            _identifier(body, f"channelData.{key}.id", part.get("id"), limit)
            if part.get("name") is not None and not isinstance(part.get("name"), str):
                raise Unanswerable(f"channelData.{key}.name must be text")
        if channel_data.get("eventType") is not None and not isinstance(
                channel_data["eventType"], str):
            raise Unanswerable("channelData.eventType must be text")
    for key in ("membersAdded", "membersRemoved"):
        for member in _optional_list_of_dicts(body, key):
            _identifier(body, f"{key}[].id", member.get("id"), USER_ID_MAX, required=True)
            _identifier(body, f"{key}[].aadObjectId", member.get("aadObjectId"), SHORT_ID_MAX)
    for entity in _optional_list_of_dicts(body, "entities"):
        if entity.get("type") == "mention":
            mentioned = entity.get("mentioned")
            if not isinstance(mentioned, dict) or not isinstance(mentioned.get("id"), str):
                raise Unanswerable("a mention must name who is mentioned")
            if entity.get("text") is not None and not isinstance(entity.get("text"), str):
                raise Unanswerable("a mention's text must be text")
    for attachment in _optional_list_of_dicts(body, "attachments"):
        _optional_text(attachment, "contentType")
    cleaned = _clean(body)
    team = (cleaned.get("channelData") or {}).get("team")
    if isinstance(team, dict) and isinstance(team.get("name"), str):
        team["name"] = team["name"][:NAME_MAX]
    return cleaned


def read_activity(raw: bytes) -> dict[str, Any]:
    """Parse and check one request body; :class:`Unanswerable` when it cannot be answered."""
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise Unanswerable("the body is not JSON") from None
    return check_activity(body)
