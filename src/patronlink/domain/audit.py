"""The audit log's facts: who acts (an actor), and the actions that leave an entry.

An entry answers who did what, when, from where and to which object. The actions are one table
here, so that the staff UI's filter, the API's ``action`` parameter and the tests read the same
list; a service names its action from this enum, never as a free string.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class ActorKind(enum.StrEnum):
    STAFF = "staff"  # a user of the staff UI
    TOKEN = "token"  # noqa: S105 - a caller of the staff API, named by its token
    CLI = "cli"  # an operator at the command line
    SYSTEM = "system"  # the worker or the scheduler, on nobody's request


@dataclass(frozen=True, slots=True)
class Actor:
    """Who did it and from where (a client address, or the host and user of the CLI)."""

    kind: ActorKind
    name: str
    source: str | None = None


SYSTEM = Actor(ActorKind.SYSTEM, "patronlink")


class AuditAction(enum.StrEnum):
    MESSAGE_RETRY = "message.retry"
    MESSAGE_CANCEL = "message.cancel"
    PATRON_CREATE = "patron.create"
    PATRON_UPDATE = "patron.update"
    PATRON_APPROVE = "patron.approve"
    PATRON_REJECT = "patron.reject"
    PATRON_BLOCK = "patron.block"
    PATRON_UNBLOCK = "patron.unblock"
    PATRON_DEACTIVATE = "patron.deactivate"
    PATRON_ANONYMISE = "patron.anonymise"
    IMPORT_RUN = "import.run"
    CONFIG_APPLY = "config.apply"
    USER_CREATE = "user.create"
    USER_DISABLE = "user.disable"
    USER_ENABLE = "user.enable"
    USER_RESET_PASSWORD = "user.reset_password"  # noqa: S105 - an action's name
    TOKEN_CREATE = "token.create"  # noqa: S105 - an action's name
    TOKEN_REVOKE = "token.revoke"  # noqa: S105 - an action's name
    SMS_PAUSE = "sms.pause"
    SMS_RESUME = "sms.resume"


class ObjectKind(enum.StrEnum):
    MESSAGE = "message"
    PATRON = "patron"
    IMPORT_SOURCE = "import_source"
    CONFIGURATION = "configuration"
    STAFF_USER = "staff_user"
    TOKEN = "token"  # noqa: S105 - a kind of object
    SENDING = "sending"  # an agency's outgoing texts, or every agency's ('*')
