"""One detector pipeline for all text, typed or read from a picture.

    scan_text(text, where)  ->  [Finding]        where: prompt | system | schema | name | picture 1 ...
    text_parts(request)     ->  [(where, text)]  every text part a backend would be sent

Steps: normalise (normalize.py: NFKC, invisible characters out, look-alikes and leetspeak folded,
any digit ASCII), then checksummed identifiers (numbers.py), machine-readable zones, e-mail
addresses however obfuscated, people tied to records (contacts.py), credentials from a maintained
rule set (secrets.py), and the multilingual vocabulary (vocab.py). Health vocabulary next to a
person (a name tied to a record, a record word) becomes hard evidence: "paciente Juan García, VIH".

`ocr=True` reads text the way OCR returns it: digits swapped for letters are restored, and what a
public notice also carries (an organisation's phone number or info@ mailbox) is reported as soft, so
the picture's own rules (picture.py) decide whether it keeps the picture local.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from .contacts import find_emails, find_people, record_word_set
from .findings import Finding, dedupe
from .normalize import latin_view, plain_view, script_view
from .numbers import find_numbers, mrz_findings
from .secrets import find_secrets
from .vocab import find_terms

if TYPE_CHECKING:
    from ..types import Request

_PHONE_CUES = re.compile(
    r"\b(?:phone|call|tel|telephone|mobile|cell|whatsapp|contact|fax|sms|text me|handy|telefon|telefono|"
    r"teléfono|telefone|telefoon|téléphone|portable|cellulare|celular|mobiel|телефон|моб)\b|电话|手机|電話|携帯|هاتف|फ़ोन|फोन"
)
_DIGIT = re.compile(r"\d")
_WORD = re.compile(r"\w+")
_SSN_CUES = re.compile(
    r"\bssn\b|social security|seguridad social|securite sociale|sicurezza sociale|sozialversicherung"
)


def scan_text(text: str, where: str = "prompt", *, ocr: bool = False) -> list[Finding]:
    """Every finding in `text`, deduplicated, hard first, each naming `where` it was found."""
    if not text or not text.strip():
        return []
    return list(_scan(text, where, ocr))


@lru_cache(maxsize=4096)
def _scan(text: str, where: str, ocr: bool) -> tuple[Finding, ...]:
    """The pipeline, memoised: the router and the gate read the same prompt, and clients resend it."""
    plain = plain_view(text)
    view = script_view(text)
    latin = latin_view(text)
    found: list[Finding] = []
    if _DIGIT.search(view):
        found += find_numbers(
            view, phone_context=bool(_PHONE_CUES.search(view)), ssn_context=bool(_SSN_CUES.search(latin)), ocr=ocr
        )
    found += mrz_findings(plain)
    found += find_emails(view, ocr=ocr)
    found += find_secrets(plain)
    people = find_people(plain, view, ocr=ocr)
    found += people
    terms = find_terms(text)
    tied = any(f.kind == "name" for f in people) or (not ocr and _mentions_record_word(view))
    for term in terms:
        hard = term.category == "phi" and tied
        found.append(Finding(term.category, "vocabulary", term.what, hard=hard))
    return tuple(f.at(where) for f in dedupe(found))


def _mentions_record_word(view: str) -> bool:
    return not record_word_set().isdisjoint(_WORD.findall(view))


def schema_text(schema: Any) -> str:
    """Every key and string value of a JSON schema, one per line: descriptions and examples leave too."""
    out: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                out.append(str(key))
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, str):
            out.append(node)
        elif node is not None and not isinstance(node, bool | int | float):
            out.append(json.dumps(node, default=str))

    walk(schema)
    return "\n".join(out)


def text_parts(request: Request) -> Iterator[tuple[str, str]]:
    """(where, text) for every text part of a `Request` that a backend receives."""
    yield "prompt", request.prompt
    for turn in request.history:  # earlier turns reach the backend too (or its flattened prompt)
        yield "history", turn.text
    options = request.options
    if options.system:
        yield "system", options.system
    if options.json_schema:
        yield "schema", schema_text(options.json_schema)
    names = [a.name for a in request.attachments if a.name and a.kind != "youtube"]
    if names:
        yield "name", "\n".join(names)


def scan_request_text(request: Request) -> list[Finding]:
    """`scan_text` over every text part of `request`."""
    found: list[Finding] = []
    for where, text in text_parts(request):
        found += scan_text(text, where)
    return found


__all__ = ["scan_request_text", "scan_text", "schema_text", "text_parts"]
