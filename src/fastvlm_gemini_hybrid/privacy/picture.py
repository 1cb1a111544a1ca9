"""What a picture shows: the text in it (OCR, then the text detectors), document layouts, and faces.

    inspect_picture(data, where="picture 1", faces=False) -> PictureReport

For a vision product the picture *is* the data: a payment card, a passport page, a lab report or a
password on a sticky note says nothing in the prompt ("What does this say?"). So every picture bound
for the cloud is read locally:

1. OCR (ocr.py) -> rows of text, each scanned by the same pipeline as typed text (text.py, `ocr=True`),
   and the whole page once more, so a label on one row and its value on the next still meet.
2. Layout, robust to OCR's lost spaces: form labels with a value ("DOB", "MRN", "Passport No",
   "Geburtsdatum", ...), card number groups with an expiry or a brand, machine-readable zones.
3. What a public notice also shows (an organisation's phone number, address or info@ mailbox, a
   "Name:" field alone) is *weak*: it keeps the picture local only next to something that ties it
   to a person (a date of birth, an ID number, a personal e-mail address, a second personal field).
4. Faces (faces.py), when the policy asks for them.

The report keeps boxes (for redaction and the UI), never the text it read.
"""

from __future__ import annotations

import io
import re
import time
from dataclasses import dataclass, field
from typing import Any

from ..errors import UnsupportedMediaError
from .findings import Box, Finding, dedupe
from .normalize import script_view
from .numbers import aba_valid, ocr_digits
from .ocr import TextLine, read_lines, row_text, rows, union
from .text import scan_text

#: Animated pictures (GIF, WebP, APNG): at most this many frames are read, evenly spaced.
MAX_FRAMES = 8
#: Pictures are read at most this large (longest side); OCR downsizes beyond it anyway.
MAX_SIDE = 2400

# Form labels, matched on a row with spaces and punctuation removed (OCR drops spaces: "Dateofbirth:").
# (kind, category, what, compact label alternatives, strong). A strong label followed by a value
# is evidence on its own; a weak one needs company (see the module docstring).
_LABELS: tuple[tuple[str, str, str, str, bool], ...] = (
    ("dob", "pii", "a date of birth", r"dateofbirth|dob|birthdate|geburtsdatum|fechadenacimiento|datedenaissance|"
     r"datadinascita|datadenascimento|geboortedatum|датарождения|出生日期|生年月日", True),
    ("mrn", "phi", "a medical record number", r"mrn|medicalrecord(?:no|number)?|patientid|hospitalno|nhsn(?:o|umber)|"
     r"healthcard(?:no|number)?|medicareno|krankenversichert", True),
    ("patient", "phi", "a patient's name",
     r"patient(?:name)?|patientin|paciente|paziente|patiente|pacient|пациент|患者", True),
    ("ssn", "pii", "a social security number", r"ssn|socialsecurity(?:no|number)?|sozialversicherungsn|"
     r"numerodesecuritesociale|numerodeseguridadsocial", True),
    ("passport", "pii", "a passport number", r"passport(?:no|number)|passportn|passnr|reisepassnr|passeportn|"
     r"pasaporten|numerodepasaporte", True),
    ("licence", "pii", "a licence number", r"licen[cs]e(?:no|number)|dlno|dl#|driver'?s?licen[cs]e(?:no)?|"
     r"permisdeconduire|fuhrerschein", True),
    ("id_number", "pii", "an ID number", r"idno|idnumber|documentn(?:o|umber)|nationalid|personalausweis|ausweisnr|"
     r"personalnumber|dni|nie|cpf|aadhaar", True),
    ("account", "pii", "a bank account number", r"accountn(?:o|umber)|acctno|acct#|iban|sortcode|routingn(?:o|umber)|"
     r"kontonummer|numerodecuenta|numerodecompte|contocorrente", True),
    ("tax_id", "pii", "a tax ID", r"taxid|taxpayerid|tin|steuer-?id|steueridentifikationsnummer|nif|codicefiscale|"
     r"employeessn|employee'?ssocialsecurity", True),
    ("insurance", "pii", "an insurance or member number", r"policy(?:no|number)|memberid|membern(?:o|umber)|"
     r"insurancen(?:o|umber)|subscriberid|groupn(?:o|umber)|rxbin|rxpcn|rxgrp", True),
    ("nino", "pii", "a National Insurance number", r"nino|nationalinsurance(?:no|number)?", True),
    ("passenger", "pii", "a passenger's name", r"nameofpassenger|passenger(?:name)?|passagier|pasajero|passager",
     True),
    ("rx", "phi", "a prescription number", r"rx#|rxno|rxnumber|rx:?\d{5}|rezeptnr|ordonnancen", True),
    ("diagnosis", "phi", "a diagnosis", r"diagnosis|diagnose|diagnostico|diagnostic|диагноз|诊断|診断", True),
    ("name", "pii", "a name field", r"name|fullname|surname|givennames?|firstname|lastname|nom|nombre|apellidos?|"
     r"vorname|nachname|cognome|sobrenome|naam|фамилия|имя|姓名|氏名", False),
    ("address", "pii", "an address field", r"address|addr|adresse|direccion|indirizzo|endereco|adres|anschrift|адрес|"
     r"住所|地址", False),
    ("booking", "pii", "a booking reference", r"bookingref(?:erence)?|pnr|e-?ticket|reservationcode|"
     r"confirmationcode|buchungscode|localizador", False),
    ("sex", "pii", "sex or nationality fields", r"sex|gender|nationality|nationalite|nacionalidad|staatsangehorigkeit|"
     r"placeofbirth|lieudenaissance|lugardenacimiento|geburtsort|height|eyes", False),
)
_LABEL_RES = tuple(
    # The value is looked at, not consumed, so the next label on the row is still found.
    (kind, category, what, re.compile(rf"(?:{alts})[:#.\-]*(?=(.{{0,40}}))"), strong)
    for kind, category, what, alts, strong in _LABELS
)
_COMPACT_DROP = re.compile(r"[\s_'’`\"]+")
# Card layouts: a long number (OCR may misread a digit, so Luhn is not required here), a card-style
# expiry (MM/YY, never part of a full date) and a card's own words.
_CARD_NUMBER = re.compile(r"(?<!\d)\d{3,6}(?:[ .\-|]{0,3}\d{3,6}){1,3}(?!\d)")
_EXPIRY = re.compile(r"(?<![\d/.])(?:0[1-9]|1[0-2])\s?/\s?(?:\d{2}|20\d{2})(?![\d/.])")
_CARD_WORDS = re.compile(r"visa|mastercard|maestro|americanexpress|amex|discover|unionpay|jcb|dinersclub|validthru|"
                         r"goodthru|validfrom|validtil|cardholder|expires|expiry|memberssince|membersince")
# Identity documents by their printed title (a row that *is* the title, not a sentence about one).
_DOC_TITLE = re.compile(
    r"^(?:[a-z]{0,12})(?:boardingpass|bordkarte|carted'?embarquement|tarjetadeembarque|cartad'?imbarco|"
    r"passport|passeport|pasaporte|passaporto|reisepass|paspoort|drivinglicen[cs]e|"
    r"driverlicen[cs]e|driver'?slicen[cs]e|permisdeconduire|fuhrerschein|permisodeconducir|patentedeguida|rijbewijs|"
    r"identitycard|nationalidentitycard|nationalidcard|idcard|personalausweis|cartenationaled'?identite|"
    r"documentonacionaldeidentidad|cartad'?identita|residencepermit|aufenthaltstitel|паспорт|"
    r"водительскоеудостоверение|护照|居民身份证|身份证|旅券|運転免許証|在留カード)(?:[a-z/\-]{0,16})$"
)
_DATE = re.compile(
    r"(?<!\d)\d{1,2}\s?[./\-]\s?\d{1,2}\s?[./\-]\s?(?:19|20)?\d{2}(?!\d)|\d{4}-\d{2}-\d{2}"
    r"|(?<!\d)\d{1,2}\s?(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)", re.I
)
# The airline name format on boarding passes and tickets: SURNAME/GIVENNAME with a title.
_IATA_NAME = re.compile(r"\b[A-Z]{2,}/[A-Z]{2,}(?:MR|MS|MRS|MISS|MSTR)\b")
# A key or certificate printed on a screen: the armour line (OCR drops its spaces and some dashes) or
# several rows of base64.
_KEY_ARMOUR = re.compile(r"-{2,}begin(?:rsa|dsa|ec|openssh|encrypted|pgp)?privatekey")
_BASE64_ROW = re.compile(r"^[A-Za-z0-9+/=]{40,}$")
# A login on a note: a user/login label with a value, and a row that is a lone password-like token.
_USER_LABEL = re.compile(r"(?i)\b(?:user(?:name)?|login|benutzer|usuario|utilisateur|utente)\s*[:=]\s*\S{3,}")
_PASSWORD_LIKE = re.compile(r"^(?=\S*[A-Za-z])(?=\S*\d)\S{8,}$")
# A cheque: its wording, and a MICR line whose first nine digits are a valid US routing number.
_CHEQUE_WORDS = re.compile(r"paytotheorderof|paytheorderof|payezcontre|pagueseaorden|paguesea")
_MICR_RUN = re.compile(r"\d{9,}")
# DICOM-style burned-in names ("DOE^JOHN") on scans.
_DICOM_NAME = re.compile(r"\b[A-Z][A-Z'\-]+\^[A-Z][A-Z'\-]+")
# Kinds that tie weak evidence to a person.
_PERSONAL_ANCHORS = frozenset({"dob", "mrn", "patient", "ssn", "passport", "licence", "id_number", "account", "tax_id",
                               "insurance", "nino", "card", "iban", "national_id", "id_document", "mrz", "name_record",
                               "email", "secret", "name"})


@dataclass
class PictureReport:
    """What inspecting one picture found. `error` set means it could not be inspected (fail closed)."""

    where: str
    findings: list[Finding] = field(default_factory=list)
    text_boxes: list[Box] = field(default_factory=list)  # every text line read
    redact_boxes: list[Box] = field(default_factory=list)  # the lines that carry the findings
    faces: list[Box] = field(default_factory=list)
    size: tuple[int, int] = (0, 0)
    lines: int = 0
    ocr_ms: float = 0.0
    face_ms: float = 0.0
    error: str | None = None

    @property
    def text_found(self) -> bool:
        return self.lines > 0


def open_frames(data: bytes, label: str = "picture") -> list[Any]:
    """The picture as RGB PIL images: one, or up to MAX_FRAMES of an animation. Orientation applied."""
    import warnings

    from PIL import Image, ImageOps, ImageSequence, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            count = getattr(image, "n_frames", 1)
            if count > 1:
                step = max(1, count // MAX_FRAMES)
                frames = [f.copy() for i, f in enumerate(ImageSequence.Iterator(image)) if i % step == 0][:MAX_FRAMES]
            else:
                image.load()
                frames = [ImageOps.exif_transpose(image) or image]
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as exc:
        raise UnsupportedMediaError(f"{label} cannot be decoded for inspection: {exc}") from None
    out = []
    for frame in frames:
        rgb = frame.convert("RGB")
        if max(rgb.size) > MAX_SIDE:
            rgb.thumbnail((MAX_SIDE, MAX_SIDE))
        out.append(rgb)
    return out


def _compact(text: str) -> str:
    return _COMPACT_DROP.sub("", script_view(text))


def _compact_with_bounds(text: str) -> tuple[str, frozenset[int], frozenset[int]]:
    """The compact row, and where its words started and ended before the spaces went: a label must begin
    a word there ("MD Patient DOB" has one; "outpatient" has none), though OCR may have glued a long one
    to the next word ("Dateofbirth:..."); a short one (DOB, TIN) must end one too ("tinkered" is no TIN)."""
    chars: list[str] = []
    starts, ends = {0}, set()
    for ch in script_view(text):
        if _COMPACT_DROP.match(ch):
            starts.add(len(chars))  # after a space
            ends.add(len(chars))
            continue
        if chars and ch.isalpha() != chars[-1].isalpha():
            (starts if ch.isalpha() else ends).add(len(chars))  # "DOB/Age", "1.Name", "MRN:"
        chars.append(ch)
    ends.add(len(chars))
    return "".join(chars), frozenset(starts), frozenset(ends)


_SHORT_LABEL = 5  # labels this long or shorter ("dob", "tin", "ssn", "idno") must end a word


def _label_end(match: re.Match[str]) -> int:
    """Where the label itself ends (before its ':', '#', '.' or '-')."""
    end = match.end()
    while end > match.start() and match.string[end - 1] in ":#.-":
        end -= 1
    return end


def _labels(row: str) -> list[tuple[str, str, str, bool]]:
    """(kind, category, what, strong) for every form label on a row; a strong label only with its value."""
    compact, starts, ends = _compact_with_bounds(row)
    # OCR reads O as 0 inside words too ("D0B:", "ACC0UNT"): try the labels on a reading with letters back.
    variants = (compact, compact.replace("0", "o")) if "0" in compact else (compact,)
    out = []
    for kind, category, what, regex, strong in _LABEL_RES:
        match = next((m for variant in variants for m in regex.finditer(variant)
                      if m.start() in starts and (_label_end(m) - m.start() > _SHORT_LABEL or _label_end(m) in ends)),
                     None)
        if match is None:
            continue
        value = match.group(1).lstrip(":#.-")
        short = _label_end(match) - match.start() <= _SHORT_LABEL
        # A short label needs a number after it ("TIN 12-345", not "a tin of buttons").
        valued = bool(value) and (any(ch.isdigit() for ch in value[:20])
                                  or (strong and not short and len(value) >= 2))
        if strong and not valued:
            continue  # "Patient Experience", "a tin of buttons": the word, not a field
        out.append((kind, category, what, strong))
    return out


def _layout(texts: list[str]) -> list[tuple[str, str, str, bool]]:
    """Card layouts, document titles, printed keys, logins on notes, burned-in DICOM names."""
    fixed = [ocr_digits(t) for t in texts]
    joined = "\n".join(fixed)
    compact_rows = [_compact(t) for t in texts]
    compact = "\n".join(compact_rows)
    out = []
    long_number = any(13 <= sum(ch.isdigit() for ch in m.group(0)) <= 20 for m in _CARD_NUMBER.finditer(joined))
    if long_number and _EXPIRY.search(joined) and _CARD_WORDS.search(compact):
        out.append(("card", "pii", "a payment card (its number, an expiry date and card wording)", True))
    if any(_DOC_TITLE.match(row) for row in compact_rows) and _DATE.search(joined):
        out.append(("id_document", "pii", "an identity document (its title and dates)", True))
    if _KEY_ARMOUR.search(compact) or sum(bool(_BASE64_ROW.match(t.strip())) for t in texts) >= 3:
        out.append(("secret", "credentials", "a private key or credential block", True))
    if any(_USER_LABEL.search(t) for t in texts) and any(_PASSWORD_LIKE.match(t.strip()) for t in texts):
        out.append(("secret", "credentials", "a username and what looks like its password", True))
    if _CHEQUE_WORDS.search(compact) and any(
        aba_valid(run[i : i + 9]) for run in _MICR_RUN.findall(compact.replace(" ", "")) for i in range(len(run) - 8)
    ):
        out.append(("account", "pii", "a cheque with its routing and account numbers", True))
    if _IATA_NAME.search(joined):
        out.append(("passenger", "pii", "a passenger's name (airline format)", True))
    if _DICOM_NAME.search(joined):
        out.append(("name_record", "phi", "a patient's name burned into a scan", True))
    return out


def inspect_text_rows(row_lines: list[list[TextLine]], where: str) -> tuple[list[Finding], list[Box]]:
    """Findings over OCR'd rows, and the boxes of the rows they came from."""
    texts = [row_text(row) for row in row_lines]
    hard: list[Finding] = []
    weak: list[Finding] = []
    boxes: list[Box] = []
    for row, text in zip(row_lines, texts, strict=True):
        row_box = union([line.box for line in row])
        row_hits = False
        for f in scan_text(text, where, ocr=True):
            if f.kind == "vocabulary":
                continue  # a word in prose ("the patient") is not a record; labels below decide
            (hard if f.hard else weak).append(f.at(where, (row_box,)))
            row_hits = True
        for kind, category, what, strong in _labels(text):
            target = hard if strong else weak
            target.append(Finding(category, kind, what, where, hard=strong, boxes=(row_box,)))
            row_hits = True
        if row_hits:
            boxes.append(row_box)
    everything = union([line.box for row in row_lines for line in row]) if row_lines else None
    page = "\n".join(texts)
    # The whole page once more: a label and its value on different rows, a number split across rows.
    for f in scan_text(page, where, ocr=True):
        if f.kind != "vocabulary" and f.hard and not any(h.kind == f.kind for h in hard):
            hard.append(f.at(where, (everything,) if everything else ()))
    for kind, category, what, strong in _layout(texts):
        if not any(h.kind == kind for h in hard):
            hard.append(Finding(category, kind, what, where, hard=strong, boxes=(everything,) if everything else ()))
    kinds = {f.kind for f in hard}
    weak_kinds = {f.kind for f in weak}
    anchored = bool(kinds & _PERSONAL_ANCHORS)
    # A name field with any second personal field is a form about someone (an ID card, an envelope).
    if not anchored and "name" in weak_kinds and len(weak_kinds) >= 2:
        anchored = True
        hard.append(Finding("pii", "personal_details", "a form with a person's details", where,
                            boxes=(everything,) if everything else ()))
    if anchored:
        hard += [Finding(f.category, f.kind, f.what, where, True, f.boxes) for f in weak]
    findings = dedupe(hard)
    if findings and everything is not None and any(f.boxes == (everything,) for f in findings):
        boxes = [line.box for row in row_lines for line in row]  # page-level evidence: redact all text
    return findings, boxes


def inspect_image(image: Any, where: str, *, faces: bool = False) -> PictureReport:
    """Inspect one RGB PIL image."""
    import numpy as np

    report = PictureReport(where=where, size=image.size)
    start = time.perf_counter()
    lines = read_lines(np.asarray(image))
    report.ocr_ms = (time.perf_counter() - start) * 1000.0
    report.lines = len(lines)
    report.text_boxes = [line.box for line in lines]
    if lines:
        report.findings, report.redact_boxes = inspect_text_rows(rows(lines), where)
    if faces:
        from .faces import detect_faces

        start = time.perf_counter()
        report.faces = [(f.x, f.y, f.w, f.h) for f in detect_faces(image)]
        report.face_ms = (time.perf_counter() - start) * 1000.0
        if report.faces:
            n = len(report.faces)
            what = "a face" if n == 1 else f"{n} faces"
            report.findings.append(Finding("face", "face", what, where, hard=False, boxes=tuple(report.faces)))
    return report


def inspect_picture(data: bytes, where: str = "picture", *, faces: bool = False) -> PictureReport:
    """Inspect encoded picture bytes (every frame of an animation, up to MAX_FRAMES)."""
    frames = open_frames(data, where)
    if len(frames) == 1:
        return inspect_image(frames[0], where, faces=faces)
    merged = PictureReport(where=where, size=frames[0].size)
    for image in frames:
        one = inspect_image(image, where, faces=faces)
        merged.findings += one.findings
        merged.text_boxes += one.text_boxes
        merged.redact_boxes += one.redact_boxes
        merged.faces += one.faces
        merged.lines += one.lines
        merged.ocr_ms += one.ocr_ms
        merged.face_ms += one.face_ms
    merged.findings = dedupe(merged.findings)
    return merged


__all__ = ["MAX_FRAMES", "PictureReport", "inspect_image", "inspect_picture", "inspect_text_rows", "open_frames"]
