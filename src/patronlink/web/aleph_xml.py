"""The Aleph New Patron API on the wire: reading a PUT body safely, writing the XML replies.

A PUT body arrives in three shapes, all accepted: ``post_xml=<?xml ...>`` as the spec shows it
(raw), the same URL-encoded as an HTML form would send it, or bare XML. Hostile XML is refused
before anything is expanded or fetched: the size is checked before parsing, the parser
(defusedxml over expat) rejects any DTD, entity declaration or external reference, and the
nesting depth is checked as elements open.
"""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET  # builds replies; requests are parsed by defusedxml
from urllib.parse import parse_qs

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from patronlink.domain.registration import RegistrationForm

MAX_BODY_BYTES = 64 * 1024
# The form is three levels deep (get-new-patron / new-patron / field); allow slack, not abuse.
MAX_DEPTH = 8
MAX_FORM_FIELDS = 100
XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'
SUCCESS_NOTE = "Account created successfully. Please contact library to ensure your account rights."

# Every reply code, in one place: kind of outcome -> (reply-code, what it means). Replies are HTTP
# 200 with this code in the XML, as Aleph clients expect; docs/self-registration.md lists them.
REPLY_CODES: dict[str, tuple[str, str]] = {
    "ok": ("0000", "ok: the form (GET) or the patron created (PUT)"),
    "missing": ("0101", "Mandatory parameters are missing (the fields are named)"),
    "duplicate": ("0102", "The patron ID is already registered"),
    "too-long": ("0103", "Value too long (the fields and their max_len are named)"),
    "not-in-list": ("0104", "Value not in list (the fields and their codes are named)"),
    "bad-date": ("0105", "Invalid date, YYYYMMDD expected (the fields are named)"),
    "bad-phone": ("0106", "Invalid phone number (sms-number)"),
    "unknown-field": ("0107", "Unknown field (not in the agency's form)"),
    "invalid": ("0108", "Invalid value (any other rule of a patron)"),
    "malformed": ("0201", "Malformed request: not XML, not post_xml=, or not a New Patron form"),
    "forbidden-xml": ("0202", "DTDs, entities and external references are not accepted"),
    "too-large": ("0203", "The request is larger than 64 KiB"),
    "too-deep": ("0204", "The XML is nested too deeply"),
    "not-utf8": ("0205", "The request is not valid UTF-8"),
    "unknown-agency": ("0301", "Unknown agency, or no default agency for /rest-dlf/patron/"),
    "misconfigured": ("0302", "The agency's registration form is not valid"),
    "internal": ("0900", "Temporary failure on the server; try again later"),
    # Answered with HTTP 429 and Retry-After (services/throttle.py), unlike every other code.
    "throttled": ("0901", "Too many refused registrations from this address; try again later"),
}


class XmlRefused(Exception):
    """A PUT body that is not a readable, harmless New Patron document; ``kind`` says why."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def xml_text(body: bytes) -> str:
    """The XML document inside a PUT body (raw or URL-encoded ``post_xml=``, or bare XML)."""
    if len(body) > MAX_BODY_BYTES:
        raise XmlRefused("too-large", f"The request is larger than {MAX_BODY_BYTES} bytes")
    stripped = body.lstrip()
    if stripped.startswith(b"\xef\xbb\xbf"):
        stripped = stripped[3:].lstrip()
    if stripped.startswith(b"post_xml="):
        rest = stripped[len(b"post_xml=") :].lstrip()
        # Raw XML may hold '&' and '+' of its own, so it is never form-decoded.
        raw = rest if rest.startswith(b"<") else _form_value(stripped)
    elif stripped.startswith(b"<"):
        raw = stripped
    else:
        raw = _form_value(stripped)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise XmlRefused("not-utf8", f"The request is not valid UTF-8 (byte {exc.start})") from exc
    return text.lstrip("\ufeff \t\r\n")


def _form_value(body: bytes) -> bytes:
    try:
        form = parse_qs(
            body.decode("ascii"),
            keep_blank_values=True,
            strict_parsing=False,
            encoding="utf-8",
            errors="surrogateescape",
            max_num_fields=20,
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise XmlRefused("malformed", "The request is neither XML nor post_xml=<xml>") from exc
    values = form.get("post_xml")
    if not values or not values[0].strip():
        raise XmlRefused("malformed", "The request is neither XML nor post_xml=<xml>")
    # surrogateescape keeps invalid UTF-8 of percent-escapes as it was, for the UTF-8 check.
    return values[0].encode("utf-8", "surrogateescape")


def parse_new_patron(text: str) -> dict[str, str]:
    """The fields of ``<get-new-patron><new-patron>...``: element name -> text, in order.

    Raises ``XmlRefused`` for forbidden constructs (DTD, entities, external references), deep
    nesting, malformed XML, or a document that is not a New Patron form.
    """
    try:
        root = _parse(text)
    except DefusedXmlException as exc:
        raise XmlRefused(
            "forbidden-xml", "DTDs, entities and external references are not accepted"
        ) from exc
    except ET.ParseError as exc:
        raise XmlRefused("malformed", f"Malformed XML: {exc}") from exc
    if root.tag != "get-new-patron":
        raise XmlRefused("malformed", f"The root element must be get-new-patron, not {root.tag}")
    forms = root.findall("new-patron")
    if len(forms) != 1:
        raise XmlRefused("malformed", "get-new-patron must hold exactly one new-patron element")
    fields: dict[str, str] = {}
    for element in forms[0]:
        name = element.tag
        if len(element):
            raise XmlRefused("malformed", f"The element {name} must hold text only")
        if name in fields:
            raise XmlRefused("malformed", f"The element {name} appears more than once")
        if len(fields) >= MAX_FORM_FIELDS:
            raise XmlRefused("malformed", "new-patron holds too many elements")
        fields[name] = element.text or ""
    return fields


def _parse(text: str) -> ET.Element:
    events = SafeET.iterparse(
        io.StringIO(text),
        events=("start", "end"),
        forbid_dtd=True,
        forbid_entities=True,
        forbid_external=True,
    )
    depth = 0
    root: ET.Element | None = None
    for event, element in events:
        if event == "start":
            depth += 1
            if depth > MAX_DEPTH:
                raise XmlRefused("too-deep", f"The XML is nested deeper than {MAX_DEPTH} levels")
            if root is None:
                root = element
        else:
            depth -= 1
    if root is None:  # pragma: no cover - expat reports an empty document as a ParseError
        raise XmlRefused("malformed", "The request holds no XML element")
    return root


def _document(root: ET.Element) -> bytes:
    ET.indent(root)
    return XML_DECLARATION + ET.tostring(root, encoding="unicode").encode("utf-8") + b"\n"


def _reply(root_name: str, code: str, text: str) -> ET.Element:
    root = ET.Element(root_name)
    ET.SubElement(root, "reply-text").text = text
    ET.SubElement(root, "reply-code").text = code
    return root


def form_reply(form: RegistrationForm) -> bytes:
    """The GET reply: the agency's form, element by element as in the spec's example."""
    root = _reply("get-new-patron", "0000", "ok")
    new_patron = ET.SubElement(root, "new-patron")
    for f in form.fields:
        element = ET.SubElement(new_patron, f.name, usage=f.usage.value)
        if f.max_len is not None:
            element.set("max_len", str(f.max_len))
        for choice in f.choices:
            item = ET.SubElement(element, f"{f.name}-list", Code=choice.code)
            if choice.default:
                item.set("default", "Y")
            item.text = choice.label or None
        if not f.choices and f.default_text:
            element.text = f.default_text
    return _document(root)


def created_reply(patron_id: str, internal_id: str) -> bytes:
    """The PUT reply for a patron created, as in the spec."""
    root = _reply("put-new-patron", "0000", "ok")
    new_patron = ET.SubElement(root, "new-patron")
    ET.SubElement(new_patron, "new-patron-id").text = patron_id
    ET.SubElement(new_patron, "new-patron-internal-id").text = internal_id
    ET.SubElement(new_patron, "note", type="info").text = SUCCESS_NOTE
    return _document(root)


def error_reply(root_name: str, code: str, text: str) -> bytes:
    """A refusal: the reply's root (get-/put-new-patron), a non-0000 code and a clear text."""
    return _document(_reply(root_name, code, _printable(text)))


def _printable(text: str) -> str:
    # Texts may quote client input; characters XML 1.0 cannot carry would break the reply.
    return "".join(ch if _xml_char(ch) else "\ufffd" for ch in text)


def _xml_char(ch: str) -> bool:
    code = ord(ch)
    return (
        code in (0x9, 0xA, 0xD)
        or 0x20 <= code <= 0xD7FF
        or 0xE000 <= code <= 0xFFFD
        or 0x10000 <= code <= 0x10FFFF
    )
