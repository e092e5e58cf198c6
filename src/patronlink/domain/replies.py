"""The texts patronlink sends back after a renewal by SMS, in Danish and English.

Every text is a template keyed by name; an agency overrides any of them in its TOML
(``[agencies.texts]``). Placeholders: ``{name}``, ``{title}``, ``{item}``, ``{date}`` (dd.mm.yyyy),
``{reason}``, ``{prefix}``.
"""

from __future__ import annotations

import datetime as dt
import string
from collections.abc import Mapping
from dataclasses import dataclass

from patronlink.domain.renewal import RefusalReason
from patronlink.domain.sms_text import account

DEFAULTS: dict[str, dict[str, str]] = {
    "da": {
        "header": "Fornyelse for {name}:",
        "renewed": "{title}: fornyet til {date}",
        "refused": "{title}: ikke fornyet, {reason}",
        "not_on_loan": "{item} er ikke udlånt til dig.",
        "no_loans": "Du har ingen lån at forny.",
        "help": 'Beskeden blev ikke forstået. Skriv "{prefix} forny alle" eller '
        '"{prefix} forny <stregkode>".',
        "reason.deniedReserved": "reserveret af en anden",
        "reason.deniedMaxRenewalsReached": "kan ikke fornyes flere gange",
        "reason.deniedLoanerIsBlocked": "dit lånerkort er spærret",
        "reason.deniedLoanerExpired": "dit lånerkort er udløbet",
        "reason.deniedTooSoon": "for tidligt at forny",
        "reason.deniedMaterialIsNotFound": "materialet blev ikke fundet",
        "reason.deniedOtherReason": "kontakt biblioteket",
    },
    "en": {
        "header": "Renewal for {name}:",
        "renewed": "{title}: renewed until {date}",
        "refused": "{title}: not renewed, {reason}",
        "not_on_loan": "{item} is not on loan to you.",
        "no_loans": "You have no loans to renew.",
        "help": 'Message not understood. Send "{prefix} forny alle" or "{prefix} forny <barcode>".',
        "reason.deniedReserved": "reserved by someone else",
        "reason.deniedMaxRenewalsReached": "cannot be renewed again",
        "reason.deniedLoanerIsBlocked": "your card is blocked",
        "reason.deniedLoanerExpired": "your card has expired",
        "reason.deniedTooSoon": "too early to renew",
        "reason.deniedMaterialIsNotFound": "the item was not found",
        "reason.deniedOtherReason": "please contact the library",
    },
}
TEXT_KEYS = frozenset(DEFAULTS["da"])
PLACEHOLDERS = frozenset({"name", "title", "item", "date", "reason", "prefix"})
DEFAULT_PREFIX = "bib"
MAX_SEGMENTS = 3  # a longer reply is split into several texts, between lines


def check_template(key: str, template: str) -> None:
    """``ValueError`` for an unknown key or a placeholder that no text provides."""
    if key not in TEXT_KEYS:
        raise ValueError(f"unknown text {key!r}; known texts: {', '.join(sorted(TEXT_KEYS))}")
    for _literal, field, _spec, _conv in string.Formatter().parse(template):
        if field is not None and field not in PLACEHOLDERS:
            raise ValueError(f"unknown placeholder {{{field}}} in text {key!r}")


@dataclass(frozen=True)
class Texts:
    language: str
    overrides: Mapping[str, str]

    def get(self, key: str, **values: str) -> str:
        template = self.overrides.get(key) or DEFAULTS.get(self.language, DEFAULTS["da"])[key]
        return template.format_map({k: values.get(k, "") for k in PLACEHOLDERS})

    def reason(self, reason: RefusalReason) -> str:
        return self.get(f"reason.{reason.value}")


def format_date(day: dt.date) -> str:
    return day.strftime("%d.%m.%Y")


@dataclass(frozen=True)
class LoanLine:
    title: str
    new_due: dt.date | None
    reason: RefusalReason | None


def renewal_report(texts: Texts, patron_name: str, lines: list[LoanLine]) -> list[str]:
    """One text per patron, split between lines when it would exceed ``MAX_SEGMENTS``."""
    body = [
        texts.get("renewed", title=line.title, date=format_date(line.new_due))
        if line.new_due is not None
        else texts.get(
            "refused",
            title=line.title,
            reason=texts.reason(line.reason or RefusalReason.OTHER),
        )
        for line in lines
    ]
    header = texts.get("header", name=patron_name)
    out: list[str] = []
    current = header
    for entry in body:
        candidate = f"{current}\n{entry}"
        if account(candidate).segments > MAX_SEGMENTS and current != header:
            out.append(current)
            candidate = f"{header}\n{entry}"
        current = candidate
    out.append(current)
    return out
