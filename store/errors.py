"""Domain errors raised by the store; handlers turn them into messages."""


class StoreError(Exception):
    """Base class: the message is safe to show to the person who asked."""


class NotFound(StoreError):
    pass


class NotAllowed(StoreError):
    pass


class Conflict(StoreError):
    pass
