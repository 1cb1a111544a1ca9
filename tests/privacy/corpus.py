"""Deterministic evaluation pictures for the privacy egress gate, rendered with PIL from invented data.

Why: the gate must keep pictures that show sensitive data on the machine and let harmless ones go, and
we need a fixed, licence-clean set of both to measure that without shipping anyone's real documents.
Every number with a checksum (card Luhn, ICAO 9303 MRZ, IBAN mod 97, SSA and NINO rules) is valid, so a
checksum-aware detector is exercised for real; benign pictures carry near-misses (long numbers that fail
Luhn, ISBNs, barcodes, code that merely mentions passwords) so that false positives show up too.

People are fictional, e-mail domains are example.com/.org/.net, phone numbers come from the ranges
reserved for drama (US 555-01xx, UK 07700 900xxx / 020 7946 0xxx), and secrets are random strings made
at run time (none sits in this file, so secret scanners have nothing to find).

Run `python tests/privacy/corpus.py DIR` to write every picture to DIR for eyeballing.
"""

from __future__ import annotations

import datetime as dt
import functools
import io
import math
import random
import re
import string
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageFont

RGB = tuple[int, int, int]
Font = ImageFont.FreeTypeFont | ImageFont.ImageFont
Draw = ImageDraw.ImageDraw

#: Categories a sensitive sample may expect the gate to name; benign samples expect "none".
EXPECTED = ("card", "passport", "id_document", "health", "credentials", "iban", "contact", "ssn", "national_id")

INK: RGB = (28, 30, 34)
GREY: RGB = (105, 110, 118)
WHITE: RGB = (255, 255, 255)


@dataclass(frozen=True)
class Sample:
    """One evaluation picture and what the gate should say about it.

    `truth` pairs a label ("card_number", "mrz_line1", "iban", ...) with each sensitive value exactly as it is
    drawn on one line, so tests can check checksums and an evaluation can check what OCR saw; `decoys` lists
    harmless look-alikes drawn on benign pictures (order numbers failing Luhn, ISBNs, EAN codes).
    """

    name: str
    kind: str
    expected: str
    image: Image.Image = field(compare=False, repr=False)
    description: str
    truth: tuple[tuple[str, str], ...] = ()
    decoys: tuple[str, ...] = ()

    @property
    def secrets(self) -> tuple[str, ...]:
        """The sensitive values drawn on the picture (empty for benign samples)."""
        return tuple(value for _, value in self.truth)

    def values(self, label: str) -> tuple[str, ...]:
        """The drawn values with one label, e.g. every "card_number"."""
        return tuple(value for lab, value in self.truth if lab == label)


@dataclass(frozen=True)
class _Drawn:
    """What a builder returns; the registry adds the name and kind."""

    image: Image.Image
    description: str
    expected: str = "none"
    truth: tuple[tuple[str, str], ...] = ()
    decoys: tuple[str, ...] = ()
    jpeg: bool = False


# --------------------------------------------------------------------------------------------------- fonts

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
_FONT_FILES = {
    "sans": "DejaVuSans.ttf",
    "bold": "DejaVuSans-Bold.ttf",
    "bold_oblique": "DejaVuSans-BoldOblique.ttf",
    "oblique": "DejaVuSans-Oblique.ttf",
    "condensed": "DejaVuSansCondensed.ttf",
    "condensed_bold": "DejaVuSansCondensed-Bold.ttf",
    "mono": "DejaVuSansMono.ttf",
    "mono_bold": "DejaVuSansMono-Bold.ttf",
    "serif": "DejaVuSerif.ttf",
    "serif_bold": "DejaVuSerif-Bold.ttf",
    "serif_italic": "DejaVuSerif-Italic.ttf",
}


@functools.cache
def font(style: str, size: int) -> Font:
    """A DejaVu face when the machine has it, else Pillow's built-in font, so CI without fonts still renders."""
    path = FONT_DIR / _FONT_FILES.get(style, "DejaVuSans.ttf")
    if path.is_file():
        return ImageFont.truetype(str(path), size)
    return ImageFont.load_default(size=size)


def _tw(text: str, size: int, style: str = "sans") -> float:
    """Width of a line of text in pixels."""
    return font(style, size).getlength(text)


def _t(d: Draw, xy: tuple[float, float], text: str, size: int, style: str = "sans", fill: RGB = INK,
       anchor: str = "la") -> float:
    """Draw one line and return its width, so callers can place what follows on the same line."""
    f = font(style, size)
    d.text(xy, text, font=f, fill=fill, anchor=anchor)
    return f.getlength(text)


def _wrap(text: str, size: int, style: str, width: float) -> list[str]:
    """Greedy word wrap to a pixel width."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        trial = f"{line} {word}".strip()
        if line and _tw(trial, size, style) > width:
            lines.append(line)
            line = word
        else:
            line = trial
    if line:
        lines.append(line)
    return lines


def _paragraph(d: Draw, x: float, y: float, text: str, size: int, style: str, width: float, fill: RGB = INK,
               leading: float = 1.45) -> float:
    """Draw wrapped text and return the y below it."""
    for line in _wrap(text, size, style, width):
        _t(d, (x, y), line, size, style, fill)
        y += size * leading
    return y


# ------------------------------------------------------------------------------------------------ pixels

def _gradient(size: tuple[int, int], first: RGB, second: RGB, horizontal: bool = False) -> Image.Image:
    """A two-colour gradient (top to bottom, or left to right)."""
    mask = Image.linear_gradient("L")
    if horizontal:
        mask = mask.rotate(90).transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    mask = mask.resize(size)
    return Image.composite(Image.new("RGB", size, second), Image.new("RGB", size, first), mask)


def _noise(img: Image.Image, rng: random.Random, amount: int = 12, blur: float = 0.0) -> Image.Image:
    """Zero-mean grey noise from the seeded generator (Image.effect_noise is not seedable)."""
    w, h = img.size
    layer = Image.frombytes("L", (w, h), rng.randbytes(w * h))
    if blur:
        layer = layer.filter(ImageFilter.GaussianBlur(blur)).point(lambda v: max(0, min(255, (v - 128) * 4 + 128)))
    layer = layer.point(lambda v: v * 2 * amount // 255).convert("RGB")
    return ImageChops.subtract(ImageChops.add(img, layer), Image.new("RGB", (w, h), (amount,) * 3))


def _jpeg(img: Image.Image, quality: int) -> Image.Image:
    """Round-trip through JPEG for the blocky look of a phone photo or a forwarded screenshot."""
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def _shade(color: RGB, factor: float) -> RGB:
    """Lighter (>1) or darker (<1) version of a colour."""
    if factor >= 1:
        return tuple(int(c + (255 - c) * (factor - 1)) for c in color)  # type: ignore[return-value]
    return tuple(int(c * factor) for c in color)  # type: ignore[return-value]


def _photo(doc: Image.Image, rng: random.Random, surface: RGB = (96, 80, 66), pad: float = 0.07,
           angle: float | None = None, width: int | None = None) -> Image.Image:
    """The document lying on a table, slightly rotated, with a soft shadow: what a phone photo looks like."""
    w, h = doc.size
    px, py = int(w * pad) + 10, int(h * pad) + 10
    big = (w + 2 * px, h + 2 * py)
    base = _noise(_gradient(big, _shade(surface, 1.15), _shade(surface, 0.8)), rng, 8)
    a = rng.uniform(-3.0, 3.0) if angle is None else angle
    rgba = doc.convert("RGBA").rotate(a, resample=Image.Resampling.BILINEAR, expand=True)
    x, y = (big[0] - rgba.width) // 2, (big[1] - rgba.height) // 2
    shadow = rgba.getchannel("A").filter(ImageFilter.BoxBlur(8)).point(lambda v: v * 6 // 10)
    base.paste((18, 16, 14), (x + 7, y + 10), shadow)
    base.paste(rgba, (x, y), rgba)
    light = _gradient(big, (255, 255, 255), (225, 225, 225), horizontal=rng.random() < 0.5)
    base = ImageChops.multiply(base, light)
    if width:
        base = base.resize((width, round(big[1] * width / big[0])), Image.Resampling.LANCZOS)
    return base


def _scale(img: Image.Image, width: int) -> Image.Image:
    """Scale to a width, keeping the aspect ratio (an A4 page rendered large reads like a scan once shrunk)."""
    return img.resize((width, round(img.height * width / img.width)), Image.Resampling.LANCZOS)


def _face(img: Image.Image, box: tuple[int, int, int, int], bg: RGB = (208, 212, 216),
          fg: RGB = (132, 136, 142)) -> None:
    """A grey head-and-shoulders silhouette where an ID photo goes."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    tile = Image.new("RGB", (w, h), bg)
    d = ImageDraw.Draw(tile)
    d.ellipse([w * 0.08, h * 0.66, w * 0.92, h * 1.35], fill=fg)
    d.rectangle([w * 0.42, h * 0.55, w * 0.58, h * 0.72], fill=fg)
    d.ellipse([w * 0.29, h * 0.14, w * 0.71, h * 0.64], fill=fg)
    img.paste(tile, (x0, y0))


def _signature(d: Draw, x: float, y: float, width: float, rng: random.Random, fill: RGB = (30, 40, 110)) -> None:
    """A scribbled signature: a looping pen stroke that drifts right, like cursive."""
    pts = []
    loops = rng.uniform(0.11, 0.2)
    radius = rng.uniform(10, 18)
    steps = int(width * 1.6)
    for i in range(steps):
        t = i / 1.6
        env = 0.6 + 0.4 * math.sin(t * 0.021 + 1.0)
        pts.append((x + t + radius * 0.8 * math.cos(t * loops), y + radius * env * math.sin(t * loops)
                    + 5 * math.sin(t * 0.05)))
    d.line(pts, fill=fill, width=3, joint="curve")
    d.line([(x + width * 0.1, y + radius + 8), (x + width * 0.95, y + radius + 2)], fill=fill, width=2)


def _guilloche(d: Draw, box: tuple[int, int, int, int], color: RGB, rng: random.Random, lines: int = 14) -> None:
    """Fine wavy security lines behind the text of IDs and passports."""
    x0, y0, x1, y1 = box
    f = rng.uniform(0.010, 0.018)
    for k in range(lines):
        base = y0 + (y1 - y0) * (k + 0.5) / lines
        amp = (y1 - y0) / lines * 1.6
        pts = [(x, base + amp * math.sin(x * f + k * 0.7)) for x in range(x0, x1, 4)]
        d.line(pts, fill=color, width=1)


def _barcode(d: Draw, x: int, y: int, w: int, h: int, digits: str, rng: random.Random) -> None:
    """Bars over the printed digits of an EAN-13 barcode (bars decorative, digits real)."""
    cx = x
    while cx < x + w:
        bw = rng.choice((2, 2, 3, 4, 6))
        d.rectangle([cx, y, cx + bw - 1, y + h], fill=(10, 10, 10))
        cx += bw + rng.choice((2, 2, 3, 4))
    _t(d, (x + w / 2, y + h + 6), f"{digits[0]} {digits[1:7]} {digits[7:]}", 20, "mono", anchor="ma")


def _window(size: tuple[int, int], title: str, dark: bool, title_size: int = 17) -> tuple[Image.Image, Draw, int]:
    """A desktop window with a title bar; returns the picture, its draw and the y where content starts."""
    bg = (30, 31, 36) if dark else (250, 250, 250)
    img = Image.new("RGB", size, bg)
    d = ImageDraw.Draw(img)
    bar = (52, 54, 60) if dark else (226, 228, 232)
    d.rectangle([0, 0, size[0], 40], fill=bar)
    for i, c in enumerate(((237, 106, 94), (245, 191, 79), (97, 197, 84))):
        d.ellipse([16 + i * 24, 13, 30 + i * 24, 27], fill=c)
    _t(d, (size[0] / 2, 20), title, title_size, "sans", (210, 210, 214) if dark else (60, 62, 66), anchor="mm")
    return img, d, 40


# -------------------------------------------------------------------------------------------- checksums

def luhn_valid(number: str) -> bool:
    """The Luhn check card numbers pass (spaces and dashes ignored)."""
    digits = [int(c) for c in number if c.isdigit()]
    total = 0
    for i, dgt in enumerate(reversed(digits)):
        if i % 2:
            dgt *= 2
            if dgt > 9:
                dgt -= 9
        total += dgt
    return bool(digits) and total % 10 == 0


def _luhn_number(rng: random.Random, prefix: str, length: int) -> str:
    """A Luhn-valid number with a card brand's prefix."""
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    for last in string.digits:
        if luhn_valid(body + last):
            return body + last
    raise AssertionError("unreachable")


def _not_luhn(rng: random.Random, length: int, prefix: str = "") -> str:
    """A long number that looks like a card number but fails Luhn (order and tracking numbers)."""
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix)))
    if luhn_valid(body):
        body = body[:-1] + str((int(body[-1]) + 1) % 10)
    return body


def _group(number: str, sizes: Sequence[int]) -> str:
    """Split digits into printed groups: (4, 4, 4, 4) for most cards, (4, 6, 5) for Amex."""
    out, i = [], 0
    for s in sizes:
        out.append(number[i:i + s])
        i += s
    return " ".join(out)


def mrz_check_digit(field_text: str) -> str:
    """ICAO 9303 check digit: weights 7-3-1, digits as-is, A=10..Z=35, filler '<' = 0."""
    total = 0
    for i, ch in enumerate(field_text):
        if ch.isdigit():
            v = int(ch)
        elif ch.isalpha():
            v = ord(ch.upper()) - 55
        else:
            v = 0
        total += v * (7, 3, 1)[i % 3]
    return str(total % 10)


def _mrz_text(text: str) -> str:
    """Upper-case letters only, spaces and hyphens as fillers, as the MRZ writes names."""
    return re.sub(r"[^A-Z<]", "", text.upper().replace(" ", "<").replace("-", "<"))


def _yymmdd(d: dt.date) -> str:
    return f"{d.year % 100:02d}{d.month:02d}{d.day:02d}"


def td3_mrz(state: str, surname: str, given: str, number: str, nationality: str, dob: dt.date, sex: str,
            expiry: dt.date, personal: str = "") -> tuple[str, str]:
    """The two 44-character lines of a passport data page (ICAO 9303 part 4)."""
    names = _mrz_text(surname) + "<<" + _mrz_text(given)
    line1 = f"P<{state}{names}"[:44].ljust(44, "<")
    num = number.ljust(9, "<")
    pers = personal.ljust(14, "<")
    body = (num + mrz_check_digit(num) + nationality + _yymmdd(dob) + mrz_check_digit(_yymmdd(dob)) + sex
            + _yymmdd(expiry) + mrz_check_digit(_yymmdd(expiry)) + pers + mrz_check_digit(pers))
    line2 = body + mrz_check_digit(body[0:10] + body[13:20] + body[21:43])
    return line1, line2


def td1_mrz(state: str, surname: str, given: str, number: str, nationality: str, dob: dt.date, sex: str,
            expiry: dt.date, optional: str = "") -> tuple[str, str, str]:
    """The three 30-character lines on the back of an ID card (ICAO 9303 part 5)."""
    num = number.ljust(9, "<")
    line1 = f"I<{state}{num}{mrz_check_digit(num)}{optional.ljust(15, '<')}"
    body = (_yymmdd(dob) + mrz_check_digit(_yymmdd(dob)) + sex + _yymmdd(expiry) + mrz_check_digit(_yymmdd(expiry))
            + nationality + "<" * 11)
    line2 = body + mrz_check_digit(line1[5:30] + body[0:7] + body[8:15] + body[18:29])
    line3 = (_mrz_text(surname) + "<<" + _mrz_text(given))[:30].ljust(30, "<")
    return line1, line2, line3


def iban_valid(iban: str) -> bool:
    """ISO 13616: move the first four characters to the end, letters to numbers, remainder mod 97 is 1."""
    s = iban.replace(" ", "").upper()
    if not re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]{10,30}", s):
        return False
    return int("".join(str(int(c, 36)) for c in s[4:] + s[:4])) % 97 == 1


def _make_iban(country: str, bban: str) -> str:
    """An IBAN with correct check digits for a country and domestic account number."""
    check = 98 - int("".join(str(int(c, 36)) for c in bban + country + "00")) % 97
    return f"{country}{check:02d}{bban}"


def _iban_print(iban: str) -> str:
    return " ".join(iban[i:i + 4] for i in range(0, len(iban), 4))


def ssn_valid(ssn: str) -> bool:
    """SSA rules: area not 000, 666 or 900-999; group not 00; serial not 0000."""
    m = re.fullmatch(r"(\d{3})-(\d{2})-(\d{4})", ssn)
    if not m:
        return False
    area, group, serial = (int(x) for x in m.groups())
    return 0 < area < 900 and area != 666 and group > 0 and serial > 0


def _make_ssn(rng: random.Random) -> str:
    while True:
        s = f"{rng.randint(1, 899):03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"
        if ssn_valid(s):
            return s


_NINO_FIRST = "ABCEGHJKLMNOPRSTWXYZ"
_NINO_SECOND = "ABCEGHJKLMNPRSTWXYZ"
_NINO_BAD = frozenset({"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"})


def nino_valid(nino: str) -> bool:
    """HMRC format: two prefix letters (D, F, I, Q, U, V never; O not second; BG GB KN NK NT TN ZZ never),
    six digits, suffix A-D."""
    s = nino.replace(" ", "").upper()
    m = re.fullmatch(r"([A-Z])([A-Z])\d{6}[A-D]", s)
    return bool(m) and s[0] in _NINO_FIRST and s[1] in _NINO_SECOND and s[:2] not in _NINO_BAD


def _make_nino(rng: random.Random) -> str:
    while True:
        prefix = rng.choice(_NINO_FIRST) + rng.choice(_NINO_SECOND)
        if prefix not in _NINO_BAD:
            d = "".join(rng.choice(string.digits) for _ in range(6))
            return f"{prefix} {d[0:2]} {d[2:4]} {d[4:6]} {rng.choice('ABCD')}"


def _make_ein(rng: random.Random) -> str:
    prefix = rng.choice((12, 20, 27, 36, 41, 46, 52, 56, 61, 75, 81, 84, 88, 91, 94))
    return f"{prefix}-{rng.randint(1000000, 9999999)}"


def _ean13(rng: random.Random, prefix: str) -> str:
    """An EAN-13 (or ISBN-13 with prefix 978) with its correct check digit that fails Luhn, a true near-miss."""
    while True:
        body = prefix + "".join(rng.choice(string.digits) for _ in range(12 - len(prefix)))
        check = (10 - sum(int(c) * (3 if i % 2 else 1) for i, c in enumerate(body)) % 10) % 10
        code = body + str(check)
        if not luhn_valid(code):
            return code


# ------------------------------------------------------------------------------------------ invented data

FIRST_NAMES = ("Amelia", "Jonas", "Priya", "Mateo", "Hannah", "Oliver", "Sofia", "Liam", "Chloe", "Noah", "Freya",
               "Ethan", "Isla", "Lucas", "Maya", "Aarav", "Elena", "Tomasz", "Grace", "Daniel", "Leila", "Samuel",
               "Nora", "Felix", "Zoe", "Omar", "Clara", "Hugo", "Ingrid", "Rafael", "Bethany", "Kwame")
LAST_NAMES = ("Whitmore", "Okafor", "Lindqvist", "Brennan", "Castellano", "Hargreaves", "Novak", "Fairbanks",
              "Delacroix", "Thornbury", "Kowalczyk", "Ashdown", "Marchetti", "Pemberton", "Vasquez", "Holloway",
              "Sandoval", "Eriksen", "Radcliffe", "Moreau", "Albright", "Kinsella", "Duvall", "Petrov",
              "Greenhalgh", "Achterberg", "Mulligan", "Fenwick", "Iwasaki", "Quintero", "Blackwood", "Osei")
STREETS = ("Maple Avenue", "Harbour Road", "Kestrel Lane", "Orchard Close", "Wren Street", "Birchwood Drive",
           "Canal Walk", "Foxglove Way", "Hawthorn Road", "Millbrook Crescent", "Linden Court", "Quarry Hill",
           "Station Parade", "Larch Grove", "Ferry Lane", "Elmfield Terrace")
UK_TOWNS = ("Ashbury", "Kingsmere", "Lowerton", "Eastbridge", "Fernhollow", "Marlow Vale", "Thistlecombe")
US_TOWNS = (("Riverton", "OR"), ("Cedar Falls", "IA"), ("Lakewood", "OH"), ("Fairview", "TN"),
            ("Oak Ridge", "NC"), ("Pine Bluff", "AR"), ("Millbrook", "NY"))
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
FULL_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
               "November", "December")


def _person(rng: random.Random) -> tuple[str, str]:
    return rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)


def _date(rng: random.Random, first_year: int, last_year: int) -> dt.date:
    start = dt.date(first_year, 1, 1).toordinal()
    return dt.date.fromordinal(rng.randint(start, dt.date(last_year, 12, 31).toordinal()))


def _dmy(d: dt.date) -> str:
    return f"{d.day:02d} {MONTHS[d.month - 1]} {d.year}"


def _us_date(d: dt.date) -> str:
    return f"{d.month:02d}/{d.day:02d}/{d.year}"


def _uk_date(d: dt.date) -> str:
    return f"{d.day:02d}/{d.month:02d}/{d.year}"


def _uk_postcode(rng: random.Random) -> str:
    up = string.ascii_uppercase
    outward = f"{rng.choice('BDKLMNS')}{rng.choice(up)}{rng.randint(1, 29)}"
    return f"{outward} {rng.randint(1, 9)}{rng.choice(up)}{rng.choice(up)}"


def _uk_address(rng: random.Random) -> tuple[str, str]:
    return f"{rng.randint(2, 148)} {rng.choice(STREETS)}", f"{rng.choice(UK_TOWNS)} {_uk_postcode(rng)}"


def _us_address(rng: random.Random) -> tuple[str, str]:
    town, state = rng.choice(US_TOWNS)
    return f"{rng.randint(10, 9899)} {rng.choice(STREETS)}", f"{town}, {state} {rng.randint(10000, 99899)}"


def _us_phone(rng: random.Random) -> str:
    """A US number in the 555-0100..0199 range kept for fiction."""
    return f"({rng.choice((206, 312, 415, 503, 617, 720))}) 555-01{rng.randint(0, 99):02d}"


def _uk_mobile(rng: random.Random) -> str:
    """A UK mobile number in Ofcom's drama range 07700 900000-900999."""
    return f"07700 900{rng.randint(0, 999):03d}"


def _email_address(first: str, last: str, rng: random.Random) -> str:
    user = rng.choice((f"{first}.{last}", f"{first[0]}{last}", f"{first}{last[0]}{rng.randint(1, 99)}",
                       f"{first}_{last}"))
    return f"{user.lower()}@{rng.choice(('example.com', 'example.org', 'example.net'))}"


def _rand(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


_B64 = string.ascii_letters + string.digits + "+/"
_ALNUM = string.ascii_letters + string.digits


def _password(rng: random.Random) -> str:
    """A human-made password: word, digits and a symbol."""
    word = rng.choice(("Sunflower", "Tiger", "Harbour", "Maple", "Rocket", "Bluebird", "Winter", "Falcon",
                       "Summer", "Pebble", "Copper", "Violet"))
    return f"{word}{rng.randint(10, 9999)}{rng.choice('!#$%&*?')}"


# ============================================================================================== sensitive

_BANKS = ("Northbridge Bank", "Harbourline Credit Union", "Meridian Trust", "Aurora Savings", "Kestrel Bank")
_CARD_PALETTES: tuple[tuple[RGB, RGB], ...] = (((16, 38, 92), (58, 104, 178)), ((22, 22, 26), (78, 78, 88)),
                                                ((0, 104, 150), (118, 176, 206)), ((140, 24, 44), (218, 96, 70)),
                                                ((26, 86, 58), (118, 168, 110)))


def _brand(d: Draw, brand: str, right: int, bottom: int) -> None:
    """The network mark in the lower right corner."""
    if brand == "visa":
        _t(d, (right, bottom), "VISA", 78, "bold_oblique", WHITE, anchor="rd")
    elif brand == "mastercard":
        d.ellipse([right - 190, bottom - 120, right - 70, bottom], fill=(235, 0, 27))
        d.ellipse([right - 120, bottom - 120, right, bottom], fill=(247, 158, 27))
        d.ellipse([right - 120, bottom - 120, right - 70, bottom], fill=(255, 95, 0))
        _t(d, (right - 95, bottom + 6), "mastercard", 22, "bold", WHITE, anchor="ma")
    elif brand == "discover":
        _t(d, (right, bottom), "DISCOVER", 44, "bold", WHITE, anchor="rd")
    else:
        d.rectangle([right - 260, bottom - 70, right, bottom], fill=(0, 111, 207))
        _t(d, (right - 130, bottom - 35), "AMERICAN EXPRESS", 22, "bold", WHITE, anchor="mm")


def _payment_card(rng: random.Random, variant: int) -> _Drawn:
    """Card fronts with full number, expiry and holder: 'card' whatever the brand or layout."""
    brand = ("visa", "mastercard", "amex", "amex", "discover", "visa")[variant % 6]
    number = {"visa": lambda: _luhn_number(rng, "4", 16),
              "mastercard": lambda: _luhn_number(rng, rng.choice(("51", "53", "55", "2221", "2720")), 16),
              "amex": lambda: _luhn_number(rng, rng.choice(("34", "37")), 15),
              "discover": lambda: _luhn_number(rng, "6011", 16)}[brand]()
    printed = _group(number, (4, 6, 5) if brand == "amex" else (4, 4, 4, 4))
    expiry = f"{rng.randint(1, 12):02d}/{rng.randint(26, 31)}"
    first, last = _person(rng)
    holder = f"{first} {rng.choice(string.ascii_uppercase)} {last}".upper() if rng.random() < 0.4 \
        else f"{first} {last}".upper()
    w, h = 1024, 646
    c1, c2 = _CARD_PALETTES[variant % len(_CARD_PALETTES)]
    img = _noise(_gradient((w, h), c1, c2, horizontal=variant % 2 == 0), rng, 6)
    d = ImageDraw.Draw(img)
    bank = _BANKS[variant % len(_BANKS)]
    _t(d, (70, 60), bank, 36, "bold", WHITE)
    if brand != "amex":
        _t(d, (w - 70, 66), rng.choice(("Platinum", "Debit", "Rewards", "Classic")), 28, "oblique", (225, 225, 230),
           anchor="ra")
    chip_y = 200 if brand != "amex" else 230
    d.rounded_rectangle([90, chip_y, 215, chip_y + 92], radius=14, fill=(212, 180, 98), outline=(150, 120, 60))
    for k in (1, 2):
        d.line([90, chip_y + 31 * k, 215, chip_y + 31 * k], fill=(150, 120, 60), width=2)
    d.line([152, chip_y, 152, chip_y + 92], fill=(150, 120, 60), width=2)
    for r in (18, 32, 46):
        d.arc([250 - r, chip_y + 46 - r, 250 + r, chip_y + 46 + r], -50, 50, fill=(235, 235, 235), width=5)
    size = 58 if brand == "amex" else 60
    ny = 360
    _t(d, (93, ny + 3), printed, size, "mono_bold", (40, 40, 40))
    _t(d, (90, ny), printed, size, "mono_bold", (242, 242, 242))
    _t(d, (372, 458), "VALID", 16, "bold", (230, 230, 230))
    _t(d, (372, 478), "THRU", 16, "bold", (230, 230, 230))
    _t(d, (440, 454), expiry, 38, "mono_bold", (242, 242, 242))
    _t(d, (90, 540), holder, 36, "mono", (242, 242, 242))
    _brand(d, brand, w - 60, h - 60)
    truth = (("card_number", printed), ("expiry", expiry), ("name", holder))
    desc = f"front of a {brand} card, number, expiry and cardholder"
    if variant in (3, 5):
        card = Image.new("RGBA", (w, h), (0, 0, 0, 0))
        ImageDraw.Draw(card).rounded_rectangle([0, 0, w - 1, h - 1], radius=44, fill=WHITE)
        rounded = Image.new("RGB", (w, h), (0, 0, 0))
        rounded.paste(img, (0, 0), card)
        photo = _photo(rounded, rng, surface=((120, 96, 70), (70, 74, 82))[variant % 2], pad=0.12,
                       width=520 if variant == 3 else 1000)
        return _Drawn(_jpeg(photo, 80), desc + ", photographed on a table", "card", truth, jpeg=True)
    return _Drawn(img, desc, "card", truth)


def _driving_licence(rng: random.Random, variant: int) -> _Drawn:
    """Licence cards in a few issuers' styles: name, date of birth, number, address, photo."""
    first, last = _person(rng)
    dob = _date(rng, 1955, 2004)
    issued = _date(rng, 2016, 2023)
    expiry = dt.date(issued.year + 10, issued.month, min(issued.day, 28))
    w, h = 1024, 646
    if variant % 3 == 0:  # EU-style pink card, UK-like number
        bg1, bg2, head, title, issuer = (248, 222, 226), (226, 236, 246), (40, 60, 140), "DRIVING LICENCE", "UTOPIA"
        number = (last.upper() + "99999")[:5] + f"{dob.year % 100 // 10}{dob.month:02d}{dob.day:02d}{dob.year % 10}" \
            + f"{first[0]}9{rng.choice(string.ascii_uppercase)}{rng.randint(10, 99)}"
        street, town = _uk_address(rng)
        dates = _uk_date
    elif variant % 3 == 1:  # US-style
        bg1, bg2, head, title, issuer = (232, 240, 228), (250, 246, 222), (20, 90, 60), "DRIVER LICENSE", \
            "STATE OF WESTMARK"
        number = f"{rng.choice('ABDFGHKMS')}{rng.randint(100, 999)}-{rng.randint(1000, 9999)}-{rng.randint(1000, 9999)}"
        street, town = _us_address(rng)
        dates = _us_date
    else:
        bg1, bg2, head, title, issuer = (236, 232, 246), (250, 250, 250), (88, 40, 120), "PERMIS DE CONDUIRE", \
            "EASTVALE"
        number = f"{rng.randint(10, 99)}{rng.choice(string.ascii_uppercase)}{rng.randint(100000, 999999)}"
        street, town = _uk_address(rng)
        dates = _uk_date
    img = _gradient((w, h), bg1, bg2, horizontal=True)
    d = ImageDraw.Draw(img)
    _guilloche(d, (0, 110, w, h), _shade(bg1, 0.92), rng, 18)
    d.rectangle([0, 0, w, 100], fill=head)
    _t(d, (40, 50), title, 44, "bold", WHITE, anchor="lm")
    _t(d, (w - 40, 50), issuer, 28, "bold", (235, 235, 235), anchor="rm")
    _face(img, (40, 140, 300, 470))
    _signature(d, 50, 540, 240, rng)
    x, y = 340, 135
    rows = [("1.", last.upper()), ("2.", first.upper()), ("3.", f"{dates(dob)}  {rng.choice(UK_TOWNS).upper()}"),
            ("4a.", dates(issued)), ("4b.", dates(expiry)), ("5.", number), ("8.", street.upper()), ("", town.upper())]
    if variant % 3 == 1:
        rows = [("DL", number), ("LN", last.upper()), ("FN", first.upper()), ("DOB", dates(dob)),
                ("EXP", dates(expiry)), ("ISS", dates(issued)), ("", street.upper()), ("", town.upper())]
    for label, value in rows:
        _t(d, (x, y + 6), label, 20, "bold", head)
        _t(d, (x + 64, y), value, 30, "bold" if label in ("1.", "2.", "LN", "FN") else "sans")
        y += 50
    _t(d, (x, h - 60), "9. AM/A/B/BE", 22, "sans", GREY)
    truth = (("surname", last.upper()), ("given_names", first.upper()), ("dob", dates(dob)),
             ("licence_number", number), ("address", street.upper()), ("address", town.upper()))
    desc = f"{title.lower()} card with photo silhouette, name, date of birth, number and address"
    if variant == 2:
        return _Drawn(_jpeg(_photo(img, rng, surface=(150, 150, 156), width=900), 78), desc + " (photo)",
                      "id_document", truth, jpeg=True)
    return _Drawn(img, desc, "id_document", truth)


def _national_id(rng: random.Random, variant: int) -> _Drawn:
    """Identity cards: two fronts in different styles and one back with address and a TD1 MRZ."""
    first, last = _person(rng)
    dob = _date(rng, 1950, 2005)
    expiry = _date(rng, 2027, 2034)
    sex = rng.choice("MF")
    number = _rand(rng, "CFGHJKLMNPRTVWXYZ", 2) + _rand(rng, string.digits + "CFGHJKLMNPRTVWXYZ", 7)
    w, h = 1024, 646
    if variant % 3 == 2:  # back of the card
        img = _gradient((w, h), (226, 238, 236), (244, 246, 238))
        d = ImageDraw.Draw(img)
        _guilloche(d, (0, 0, w, 360), (206, 222, 220), rng, 16)
        street, town = _uk_address(rng)
        _t(d, (60, 40), "ADDRESS / ADRESSE", 18, "bold", (40, 90, 90))
        _t(d, (60, 70), street.upper(), 30)
        _t(d, (60, 110), town.upper(), 30)
        _t(d, (60, 170), "HEIGHT / TAILLE", 18, "bold", (40, 90, 90))
        _t(d, (60, 198), f"{rng.randint(152, 196)} cm", 28)
        _t(d, (420, 170), "AUTHORITY / AUTORITÉ", 18, "bold", (40, 90, 90))
        _t(d, (420, 198), f"MUNICIPALITY OF {rng.choice(UK_TOWNS).upper()}", 26)
        lines = td1_mrz("UTO", last, first, number, "UTO", dob, sex, expiry)
        d.rectangle([0, 380, w, h], fill=(250, 250, 248))
        for i, line in enumerate(lines):
            _t(d, (w / 2, 430 + i * 66), line, 44, "mono", (15, 15, 15), anchor="ma")
        truth = (("address", street.upper()), ("address", town.upper()), ("mrz_td1_line1", lines[0]),
                 ("mrz_td1_line2", lines[1]), ("mrz_td1_line3", lines[2]))
        return _Drawn(img, "back of an identity card with address and a three-line TD1 machine-readable zone",
                      "id_document", truth)
    palette = ((214, 232, 248), (246, 250, 240), (30, 80, 140)) if variant % 3 == 0 else \
        ((248, 238, 214), (238, 244, 250), (150, 70, 20))
    img = _gradient((w, h), palette[0], palette[1])
    d = ImageDraw.Draw(img)
    _guilloche(d, (0, 100, w, h), _shade(palette[0], 0.93), rng, 20)
    _t(d, (40, 30), "REPUBLIC OF UTOPIA", 26, "bold", palette[2])
    _t(d, (40, 64), "IDENTITY CARD  ·  CARTE D'IDENTITÉ", 24, "sans", palette[2])
    photo_box = (w - 310, 120, w - 50, 450) if variant % 3 == 1 else (40, 130, 300, 460)
    _face(img, photo_box)
    x = 40 if variant % 3 == 1 else 340
    y = 125
    fields = (("Surname / Nom", last.upper()), ("Given names / Prénoms", first.upper()),
              ("Sex / Sexe", sex), ("Nationality / Nationalité", "UTO"),
              ("Date of birth / Date de naissance", _dmy(dob).upper()), ("Date of expiry / Date d'expiration",
                                                                          _dmy(expiry).upper()))
    for label, value in fields:
        _t(d, (x, y), label, 16, "sans", GREY)
        _t(d, (x, y + 20), value, 30, "bold")
        y += 66
    _t(d, (x, h - 86), "Card No. / No de carte", 16, "sans", GREY)
    _t(d, (x, h - 64), number, 36, "mono_bold", (170, 20, 30))
    _signature(d, w - 300, h - 80, 220, rng)
    truth = (("surname", last.upper()), ("given_names", first.upper()), ("dob", _dmy(dob).upper()),
             ("id_number", number))
    return _Drawn(img, "front of an identity card: photo silhouette, name, date of birth, card number",
                  "id_document", truth)


def _passport(rng: random.Random, variant: int) -> _Drawn:
    """Passport data pages with a checksum-valid two-line TD3 MRZ."""
    first, last = _person(rng)
    if rng.random() < 0.35:
        first = f"{first} {rng.choice(FIRST_NAMES)}"
    dob = _date(rng, 1948, 2010)
    issued = _date(rng, 2017, 2024)
    expiry = dt.date(issued.year + 10, issued.month, min(issued.day, 28)) - dt.timedelta(days=1)
    sex = rng.choice("MF")
    state, country = (("UTO", "UTOPIA"), ("UTO", "UTOPIA"), ("GBR", "UNITED KINGDOM OF EXAMPLE"),
                      ("NLD", "KINGDOM OF EXAMPLE"))[variant % 4]
    number = _rand(rng, string.ascii_uppercase, 2) + _rand(rng, string.digits, 7)
    personal = _rand(rng, string.digits, 10) if variant % 2 else ""
    line1, line2 = td3_mrz(state, last, first, number, state, dob, sex, expiry, personal)
    w, h = 1240, 870
    tints = ((232, 240, 232), (236, 232, 246), (246, 238, 226), (226, 238, 246))
    img = _gradient((w, h), tints[variant % 4], (250, 250, 246))
    d = ImageDraw.Draw(img)
    _guilloche(d, (0, 0, w, 640), _shade(tints[variant % 4], 0.9), rng, 26)
    _t(d, (60, 36), f"PASSPORT   PASSEPORT   {country}", 28, "bold", (60, 60, 90))
    _face(img, (60, 110, 380, 520))
    _signature(d, 80, 585, 260, rng, (40, 40, 60))
    cols = ((420, [("Type / Type", "P"), ("Surname / Nom", last.upper()), ("Given names / Prénoms", first.upper()),
                   ("Nationality / Nationalité", country), ("Date of birth / Date de naissance", _dmy(dob).upper()),
                   ("Place of birth / Lieu de naissance", rng.choice(UK_TOWNS).upper())]),
            (900, [("Code / Code", state), ("Passport No. / No du passeport", number), ("Sex / Sexe", sex),
                   ("Date of issue / Date de délivrance", _dmy(issued).upper()),
                   ("Date of expiry / Date d'expiration", _dmy(expiry).upper()),
                   ("Authority / Autorité", "HMPO" if state == "GBR" else "MINISTRY")]))
    for x, fields in cols:
        y = 100
        for label, value in fields:
            _t(d, (x, y), label, 16, "sans", (90, 90, 110))
            _t(d, (x, y + 20), value, 28 if len(value) < 22 else 22, "bold", (25, 25, 40))
            y += 80
    d.rectangle([0, 650, w, h], fill=(252, 252, 250))
    _t(d, (w / 2, 690), line1, 44, "mono", (10, 10, 10), anchor="ma")
    _t(d, (w / 2, 770), line2, 44, "mono", (10, 10, 10), anchor="ma")
    truth = (("surname", last.upper()), ("given_names", first.upper()), ("dob", _dmy(dob).upper()),
             ("passport_number", number), ("mrz_line1", line1), ("mrz_line2", line2))
    desc = "passport data page with photo silhouette, personal data and two-line MRZ"
    if variant == 2:
        return _Drawn(_jpeg(_photo(img, rng, surface=(70, 60, 52), width=1100), 82), desc + " (photo)",
                      "passport", truth, jpeg=True)
    if variant == 3:
        return _Drawn(_noise(_scale(img, 1000), rng, 8), desc + " (scan)", "passport", truth)
    return _Drawn(img, desc, "passport", truth)


_LABS = ("Riverside Medical Laboratory", "Northgate Clinical Pathology", "St. Aldric Hospital Laboratory",
         "Valley Diagnostics")
_PANELS: tuple[tuple[str, tuple[tuple[str, str, float, float, int], ...]], ...] = (
    ("COMPLETE BLOOD COUNT", (("WBC", "10^3/uL", 4.0, 11.0, 1), ("RBC", "10^6/uL", 4.2, 5.9, 2),
                              ("Hemoglobin", "g/dL", 12.0, 17.5, 1), ("Hematocrit", "%", 36.0, 50.0, 1),
                              ("MCV", "fL", 80.0, 100.0, 0), ("Platelets", "10^3/uL", 150.0, 400.0, 0),
                              ("Neutrophils", "%", 40.0, 70.0, 0), ("Lymphocytes", "%", 20.0, 40.0, 0))),
    ("LIPID PANEL", (("Total cholesterol", "mg/dL", 125.0, 200.0, 0), ("LDL cholesterol", "mg/dL", 40.0, 100.0, 0),
                     ("HDL cholesterol", "mg/dL", 40.0, 80.0, 0), ("Triglycerides", "mg/dL", 50.0, 150.0, 0),
                     ("Non-HDL cholesterol", "mg/dL", 60.0, 130.0, 0))),
    ("COMPREHENSIVE METABOLIC PANEL", (("Glucose, fasting", "mg/dL", 70.0, 99.0, 0),
                                       ("Creatinine", "mg/dL", 0.6, 1.2, 2), ("eGFR", "mL/min/1.73m2", 60.0, 120.0, 0),
                                       ("Sodium", "mmol/L", 135.0, 145.0, 0), ("Potassium", "mmol/L", 3.5, 5.1, 1),
                                       ("ALT", "U/L", 7.0, 56.0, 0), ("AST", "U/L", 10.0, 40.0, 0),
                                       ("HbA1c", "%", 4.0, 5.6, 1), ("TSH", "mIU/L", 0.4, 4.0, 2))),
)


def _mrn(rng: random.Random) -> str:
    return rng.choice(("", "MRN-", "H")) + str(rng.randint(10_000_000, 99_999_999))


def _lab_report(rng: random.Random, variant: int) -> _Drawn:
    """A laboratory results page tied to a named patient: health data."""
    first, last = _person(rng)
    dob = _date(rng, 1940, 2008)
    mrn = _mrn(rng)
    collected = _date(rng, 2023, 2025)
    doc_first, doc_last = _person(rng)
    w, h = 900, 1270
    img = Image.new("RGB", (w, h), (255, 255, 255) if variant != 1 else (252, 251, 246))
    d = ImageDraw.Draw(img)
    accent = ((20, 80, 140), (120, 30, 60), (20, 110, 90))[variant % 3]
    lab = _LABS[variant % len(_LABS)]
    d.rectangle([0, 0, w, 110], fill=accent)
    _t(d, (50, 32), lab, 32, "bold", WHITE)
    _t(d, (50, 76), f"{rng.randint(10, 400)} {rng.choice(STREETS)}, {rng.choice(UK_TOWNS)}", 18, "sans",
       (225, 230, 240))
    title, tests = _PANELS[variant % len(_PANELS)]
    y = 140
    left = (("Patient", f"{last.upper()}, {first}"), ("Date of birth", _us_date(dob)),
            ("Sex", rng.choice(("Female", "Male"))), ("MRN", mrn))
    right = (("Collected", f"{_us_date(collected)} {rng.randint(7, 11):02d}:{rng.randint(0, 59):02d}"),
             ("Reported", _us_date(collected + dt.timedelta(days=1))), ("Ordering", f"Dr. {doc_first[0]}. {doc_last}"),
             ("Specimen", rng.choice(("Whole blood", "Serum", "Plasma"))))
    for i, ((l1, v1), (l2, v2)) in enumerate(zip(left, right, strict=True)):
        _t(d, (50, y + i * 36), f"{l1}:", 20, "bold")
        _t(d, (210, y + i * 36), v1, 20)
        _t(d, (480, y + i * 36), f"{l2}:", 20, "bold")
        _t(d, (610, y + i * 36), v2, 20)
    y += 4 * 36 + 24
    d.line([50, y, w - 50, y], fill=accent, width=3)
    _t(d, (50, y + 20), title, 26, "bold", accent)
    y += 70
    cols = (50, 320, 430, 620, 810)
    for x, head in zip(cols, ("Test", "Result", "Units", "Reference range", "Flag"), strict=True):
        _t(d, (x, y), head, 20, "bold", GREY)
    y += 36
    d.line([50, y - 6, w - 50, y - 6], fill=(200, 200, 200), width=1)
    for k, (name, unit, lo, hi, decimals) in enumerate(tests):
        value = rng.uniform(lo - (hi - lo) * 0.25, hi + (hi - lo) * 0.25)
        flag = "H" if value > hi else "L" if value < lo else ""
        if k % 2 == 0:
            d.rectangle([46, y - 6, w - 46, y + 30], fill=(244, 246, 250))
        _t(d, (cols[0], y), name, 21)
        _t(d, (cols[1], y), f"{value:.{decimals}f}", 21, "bold" if flag else "sans", (170, 20, 20) if flag else INK)
        _t(d, (cols[2], y), unit, 19, "sans", GREY)
        _t(d, (cols[3], y), f"{lo:.{decimals}f} - {hi:.{decimals}f}", 21)
        _t(d, (cols[4], y), flag, 21, "bold", (170, 20, 20))
        y += 40
    y += 30
    note = ("Results flagged H or L fall outside the laboratory reference interval and should be interpreted in "
            "the clinical context by the ordering clinician.")
    y = _paragraph(d, 50, y, note, 18, "sans", w - 100, GREY)
    _t(d, (50, h - 60), f"Accession {rng.randint(100000, 999999)}   ·   Page 1 of 1", 18, "sans", GREY)
    truth = (("name", f"{last.upper()}, {first}"), ("dob", _us_date(dob)), ("mrn", mrn))
    desc = f"laboratory report ({title.lower()}) for a named patient with date of birth and MRN"
    if variant == 2:
        return _Drawn(_jpeg(_photo(img, rng, surface=(150, 140, 128), width=960), 80), desc + " (photo)", "health",
                      truth, jpeg=True)
    return _Drawn(img, desc, "health", truth)


_DRUGS = (("Amoxicillin 500 mg capsules", "Take 1 capsule by mouth three times daily for 7 days", "21"),
          ("Sertraline 50 mg tablets", "Take 1 tablet by mouth once daily in the morning", "30"),
          ("Metformin 850 mg tablets", "Take 1 tablet by mouth twice daily with meals", "60"),
          ("Lisinopril 10 mg tablets", "Take 1 tablet by mouth once daily", "30"),
          ("Salbutamol 100 mcg inhaler", "Inhale 2 puffs every 4-6 hours as needed for wheeze", "1"))


def _prescription(rng: random.Random, variant: int) -> _Drawn:
    """Prescriptions naming the patient, their birth date, the drug and dose: health data."""
    first, last = _person(rng)
    dob = _date(rng, 1938, 2012)
    drug, sig, qty = _DRUGS[(variant * 2 + rng.randint(0, 1)) % len(_DRUGS)]
    doc_first, doc_last = _person(rng)
    written = _date(rng, 2023, 2025)
    street, town = _us_address(rng)
    if variant % 3 == 2:
        w, h = 900, 1270
    else:
        w, h = 820, 1080
    paper = ((236, 244, 252), (255, 255, 255), (250, 248, 236))[variant % 3]
    img = Image.new("RGB", (w, h), paper)
    d = ImageDraw.Draw(img)
    clinic = rng.choice(("Lakeside Family Practice", "Hillcrest Medical Group", "Elm Park Health Centre"))
    _t(d, (w / 2, 50), clinic, 34, "serif_bold", (30, 60, 110), anchor="ma")
    _t(d, (w / 2, 100), f"Dr. {doc_first} {doc_last}, MD  ·  {rng.choice(('Family Medicine', 'Internal Medicine'))}",
       20, "serif", GREY, anchor="ma")
    d.line([50, 140, w - 50, 140], fill=(30, 60, 110), width=2)
    y = 170
    for label, value in (("Patient", f"{first} {last}"), ("Date of birth", _us_date(dob)),
                         ("Address", f"{street}, {town}"), ("Date", _us_date(written))):
        _t(d, (60, y), f"{label}:", 22, "bold")
        _t(d, (240, y), value, 24 if label != "Address" else 21)
        y += 48
    y += 20
    _t(d, (60, y), "Rx", 72, "serif_bold", (30, 60, 110))
    y += 110
    _t(d, (80, y), drug, 30, "bold")
    y += 56
    y = _paragraph(d, 80, y, f"Sig: {sig}.", 24, "sans", w - 160)
    y += 10
    _t(d, (80, y), f"Disp: #{qty}", 24)
    _t(d, (380, y), f"Refills: {rng.randint(0, 3)}", 24)
    y += 48
    _t(d, (80, y), rng.choice(("Substitution permitted", "Dispense as written")), 20, "oblique", GREY)
    sy = h - 170
    _signature(d, w - 380, sy, 280, rng)
    d.line([w - 400, sy + 40, w - 60, sy + 40], fill=GREY, width=1)
    _t(d, (w - 400, sy + 50), f"Dr. {doc_first} {doc_last}, MD", 20, "sans", GREY)
    truth = (("name", f"{first} {last}"), ("dob", _us_date(dob)), ("drug", drug))
    desc = f"prescription for {drug.split()[0]} naming the patient, date of birth and prescriber"
    if variant % 3 == 1:
        small = _photo(img, rng, surface=(170, 150, 120), width=640)
        return _Drawn(_jpeg(small, 78), desc + " (small photo)", "health", truth, jpeg=True)
    return _Drawn(img, desc, "health", truth)


def _xray(rng: random.Random, variant: int) -> _Drawn:
    """Chest radiographs with the patient's name, MRN and birth date burned into a corner: health data."""
    w, h = (1024, 1024) if variant != 2 else (900, 1100)
    img = Image.new("L", (w, h), 8)
    d = ImageDraw.Draw(img)
    cx = w / 2
    d.ellipse([w * 0.08, h * 0.12, w * 0.92, h * 1.25], fill=70)
    for side in (-1, 1):
        lx = cx + side * w * 0.2
        d.ellipse([lx - w * 0.17, h * 0.2, lx + w * 0.17, h * 0.86], fill=32)
    d.ellipse([cx - w * 0.05, h * 0.45, cx + w * 0.22, h * 0.82], fill=105)
    d.rectangle([cx - w * 0.035, h * 0.05, cx + w * 0.035, h], fill=150)
    for k in range(10):
        ry = h * 0.2 + k * h * 0.062
        box = [cx - w * 0.36, ry, cx + w * 0.36, ry + h * 0.22]
        for start, end in ((185, 265), (275, 355)):  # PIL angles run clockwise from 3 o'clock: upper left, upper right
            d.arc(box, start, end, fill=165, width=max(6, w // 110))
    for side in (-1, 1):
        d.line([(cx + side * w * 0.05, h * 0.17), (cx + side * w * 0.33, h * 0.13)], fill=180, width=w // 60)
    d.ellipse([w * 0.1, h * 0.86, w * 0.9, h * 1.1], fill=95)
    img = img.filter(ImageFilter.GaussianBlur(w / 110))
    rgb = _noise(img.convert("RGB"), rng, 16, blur=1.0)
    d = ImageDraw.Draw(rgb)
    first, last = _person(rng)
    dob = _date(rng, 1935, 2010)
    mrn = _mrn(rng)
    taken = _date(rng, 2022, 2025)
    lines = (rng.choice(("RIVERSIDE GENERAL HOSPITAL", "ST. ALDRIC HOSPITAL", "NORTHGATE IMAGING")),
             f"{last.upper()}^{first.upper()}", f"MRN: {mrn}", f"DOB: {dob.isoformat()}  {rng.choice('MF')}",
             f"CHEST PA  {taken.isoformat()} {rng.randint(8, 18):02d}:{rng.randint(0, 59):02d}")
    size = 24 if variant != 1 else 20
    x, y, anchor = (24, 24, "la") if variant != 1 else (w - 24, 24, "ra")
    for line in lines:
        _t(d, (x, y), line, size, "mono", (235, 235, 235), anchor=anchor)
        y += size + 10
    _t(d, (w - 60 if variant != 1 else 60, h * 0.3), "L" if variant != 1 else "R", 54, "bold", (240, 240, 240),
       anchor="mm")
    _t(d, (w - 24, h - 30), f"kVp 120  mAs {rng.uniform(1.5, 3.5):.1f}", 18, "mono", (200, 200, 200), anchor="rd")
    truth = (("name", f"{last.upper()}^{first.upper()}"), ("mrn", mrn), ("dob", dob.isoformat()))
    return _Drawn(rgb, "chest X-ray with patient name, MRN and date of birth burned into a corner", "health", truth)


# ------------------------------------------------------------------------------------- screens with text

Segment = tuple[str, RGB]

_DARK_CODE = {"kw": (198, 120, 221), "str": (152, 195, 121), "com": (110, 118, 129), "num": (209, 154, 102),
              "txt": (220, 223, 228), "fn": (97, 175, 239)}
_LIGHT_CODE = {"kw": (0, 0, 200), "str": (163, 21, 21), "com": (0, 128, 0), "num": (9, 134, 88),
               "txt": (30, 30, 30), "fn": (121, 94, 38)}
_KEYWORDS = frozenset(("def", "return", "import", "from", "if", "not", "else", "elif", "for", "in", "class", "None",
                       "True", "False", "with", "as", "raise", "try", "except", "const", "let", "await", "async",
                       "function", "export", "while", "and", "or", "is", "lambda"))
_TOKEN = re.compile(r"(#.*$|//.*$|\"[^\"]*\"|'[^']*'|\b\d[\d_.]*\b|\b[A-Za-z_]\w*\b|\s+|.)")


def _highlight(line: str, palette: dict[str, RGB]) -> list[Segment]:
    """Tiny syntax colouring so code screenshots look like an editor, not a text dump."""
    out: list[Segment] = []
    for m in _TOKEN.finditer(line):
        tok = m.group(0)
        if tok.startswith(("#", "//")):
            kind = "com"
        elif tok[0] in "\"'":
            kind = "str"
        elif tok[0].isdigit():
            kind = "num"
        elif tok in _KEYWORDS:
            kind = "kw"
        elif tok[0].isalpha() and line[m.end():m.end() + 1] == "(":
            kind = "fn"
        else:
            kind = "txt"
        out.append((tok, palette[kind]))
    return out


def _draw_segments(d: Draw, x: float, y: float, segments: Sequence[Segment], size: int, style: str = "mono") -> None:
    for text, color in segments:
        x += _t(d, (x, y), text, size, style, color)


def _editor(lines: Sequence[str], title: str, dark: bool, size: tuple[int, int] = (1280, 800), font_size: int = 19,
            files: Sequence[str] = (), active: str = "") -> Image.Image:
    """An IDE window: file tree, tab, line numbers and highlighted code."""
    img, d, top = _window(size, title, dark)
    palette = _DARK_CODE if dark else _LIGHT_CODE
    side = (37, 38, 44) if dark else (240, 241, 244)
    tree_w = 250 if files else 0
    if files:
        d.rectangle([0, top, tree_w, size[1]], fill=side)
        _t(d, (18, top + 16), "EXPLORER", 16, "bold", (150, 150, 160) if dark else (90, 90, 100))
        for i, name in enumerate(files):
            y = top + 52 + i * 30
            if name == active:
                d.rectangle([0, y - 4, tree_w, y + 24], fill=(55, 60, 72) if dark else (214, 226, 245))
            label = name.rstrip("/").rsplit("/", 1)[-1]
            depth = name.rstrip("/").count("/")
            _t(d, (22 + 18 * depth, y), f"▾ {label}" if name.endswith("/") else f"  {label}", 17, "sans",
               (200, 200, 205) if dark else (50, 50, 55))
    tab_bg = (30, 31, 36) if dark else (250, 250, 250)
    d.rectangle([tree_w, top, size[0], top + 40], fill=side)
    d.rectangle([tree_w, top, tree_w + 220, top + 40], fill=tab_bg)
    _t(d, (tree_w + 20, top + 20), active or title, 17, "sans", palette["txt"], anchor="lm")
    y = top + 60
    step = int(font_size * 1.55)
    for n, line in enumerate(lines, start=1):
        _t(d, (tree_w + 54, y), str(n), font_size, "mono", (110, 114, 122) if dark else (160, 160, 165), anchor="ra")
        _draw_segments(d, tree_w + 76, y, _highlight(line, palette), font_size)
        y += step
        if y > size[1] - step:
            break
    return img


def _terminal(lines: Sequence[Sequence[Segment] | str], title: str, size: tuple[int, int] = (1280, 760),
              font_size: int = 19, bg: RGB = (24, 26, 30)) -> Image.Image:
    """A terminal window: light text on dark, prompts in green."""
    img, d, top = _window(size, title, True)
    d.rectangle([0, top, size[0], size[1]], fill=bg)
    y = top + 18
    for line in lines:
        segs: Sequence[Segment] = [(line, (214, 218, 224))] if isinstance(line, str) else line
        _draw_segments(d, 22, y, segs, font_size)
        y += int(font_size * 1.5)
    return img


def _prompt(user: str, host: str, path: str, command: str) -> list[Segment]:
    return [(f"{user}@{host}", (126, 200, 90)), (":", (214, 218, 224)), (path, (97, 160, 239)),
            ("$ ", (214, 218, 224)), (command, (235, 235, 235))]


def _aws_id(rng: random.Random) -> str:
    return "AKIA" + _rand(rng, string.ascii_uppercase + "234567", 16)


def _terminal_secret(rng: random.Random, variant: int) -> _Drawn:
    """Terminals and editors showing live credentials: cloud keys, tokens, a private key, a .env file."""
    first, last = _person(rng)
    user = (first[0] + last).lower()
    host = rng.choice(("laptop", "devbox", "mbp-2", "build-01"))
    v = variant % 6
    if v == 0:
        key_id, secret = _aws_id(rng), _rand(rng, _B64, 40)
        lines: list[Sequence[Segment] | str] = [
            _prompt(user, host, "~", "aws configure list"),
            "      Name                    Value             Type    Location",
            "   profile                <not set>             None    None",
            f"access_key     ****************{key_id[-4:]} shared-credentials-file",
            _prompt(user, host, "~", "cat ~/.aws/credentials"), "[default]", f"aws_access_key_id = {key_id}",
            f"aws_secret_access_key = {secret}", "", "[staging]", f"aws_access_key_id = {_aws_id(rng)}",
            f"aws_secret_access_key = {_rand(rng, _B64, 40)}", "region = eu-west-2", _prompt(user, host, "~", "")]
        truth = (("aws_access_key_id", key_id), ("aws_secret_access_key", secret))
        return _Drawn(_terminal(lines, f"{user}@{host}: ~"), "terminal printing ~/.aws/credentials with AWS keys",
                      "credentials", truth)
    if v == 1:
        token = "ghp_" + _rand(rng, _ALNUM, 36)
        repo = rng.choice(("infra-example", "billing-service", "mobile-app"))
        lines = [_prompt(user, host, f"~/src/{repo}", "gh auth token"), token,
                 _prompt(user, host, f"~/src/{repo}", f"export GITHUB_TOKEN={token}"),
                 _prompt(user, host, f"~/src/{repo}", "git push origin feature/retry-backoff"),
                 "Enumerating objects: 17, done.", "Counting objects: 100% (17/17), done.",
                 "Delta compression using up to 10 threads",
                 "Writing objects: 100% (9/9), 2.31 KiB | 2.31 MiB/s, done.",
                 f"To https://github.com/acme-example/{repo}.git", "   4f1c2ab..9e07d3c  feature/retry-backoff -> "
                 "feature/retry-backoff", _prompt(user, host, f"~/src/{repo}", "")]
        return _Drawn(_terminal(lines, f"{user}@{host}: ~/src/{repo}", (1280, 640)),
                      "terminal showing a GitHub personal access token (ghp_...)", "credentials",
                      (("github_token", token),))
    if v == 2:
        head = rng.choice(("-----BEGIN RSA PRIVATE KEY-----", "-----BEGIN OPENSSH PRIVATE KEY-----"))
        body = ["MIIEpAIBAAKCAQEA" + _rand(rng, _B64, 48)] if "RSA" in head else \
            ["b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW"]
        body += [_rand(rng, _B64, 64 if "RSA" in head else 70) for _ in range(15)]
        lines = [_prompt(user, host, "~", "cat ~/.ssh/id_rsa" if "RSA" in head else "cat ~/.ssh/id_ed25519"), head,
                 *body, head.replace("BEGIN", "END"), _prompt(user, host, "~", "")]
        return _Drawn(_terminal(lines, f"{user}@{host}: ~", (1180, 860), 18),
                      "terminal printing an SSH private key block", "credentials",
                      (("private_key", head), ("private_key_body", body[1])))
    if v == 3:
        password = _password(rng) + _rand(rng, _ALNUM, 4)
        secret_key = _rand(rng, _ALNUM + "!@#%^*-_", 50)
        env = ["# production settings - do not commit", "APP_ENV=production", "DEBUG=false",
               "DB_HOST=db-primary.internal.example.net", "DB_PORT=5432", f"DB_USER={last.lower()}_app",
               f"DB_PASSWORD={password}", "DB_NAME=orders", "",
               f"DATABASE_URL=postgres://{last.lower()}_app:{password}@db-primary.internal.example.net:5432/orders",
               f"SECRET_KEY={secret_key}", "REDIS_URL=redis://cache.internal.example.net:6379/0", "LOG_LEVEL=info"]
        files = ("app/", "app/__init__.py", "app/models.py", "app/views.py", "migrations/", ".env", ".gitignore",
                 "docker-compose.yml", "requirements.txt")
        img = _editor(env, ".env — orders-service", dark=False, files=files, active=".env", font_size=18)
        return _Drawn(img, "editor showing a .env file with a database password and secret key", "credentials",
                      (("password", password), ("secret_key", secret_key)))
    if v == 4:
        key = "sk-proj-" + _rand(rng, _ALNUM + "-_", 56)
        lines = [_prompt(user, host, "~/notebooks", f"export OPENAI_API_KEY={key}"),
                 _prompt(user, host, "~/notebooks", "python summarize.py reports/q3.pdf --model small"),
                 "Loading reports/q3.pdf (14 pages)...", "Chunking: 38 chunks of <= 1200 tokens",
                 "Summarising  [####################] 38/38  00:41", "Wrote reports/q3.summary.md (2,114 words)",
                 _prompt(user, host, "~/notebooks", "")]
        return _Drawn(_terminal(lines, f"{user}@{host}: ~/notebooks", (1280, 560), 18),
                      "terminal exporting OPENAI_API_KEY=sk-... before running a script", "credentials",
                      (("openai_api_key", key),))
    key_id, secret = _aws_id(rng), _rand(rng, _B64, 40)
    token = "ghp_" + _rand(rng, _ALNUM, 36)
    code = ['"""Deployment settings for the nightly export job."""', "import os", "",
            "BUCKET = \"exports-nightly\"", "REGION = \"us-east-1\"", "",
            "# TODO: move to the secrets manager before release", f"AWS_ACCESS_KEY_ID = \"{key_id}\"",
            f"AWS_SECRET_ACCESS_KEY = \"{secret}\"", f"GITHUB_TOKEN = \"{token}\"", "",
            "def client_kwargs() -> dict:", "    return {", "        \"region_name\": REGION,",
            "        \"aws_access_key_id\": AWS_ACCESS_KEY_ID,",
            "        \"aws_secret_access_key\": AWS_SECRET_ACCESS_KEY,", "    }"]
    files = ("export_job/", "export_job/__init__.py", "export_job/settings.py", "export_job/run.py", "tests/",
             "README.md", "pyproject.toml")
    img = _editor(code, "settings.py — export_job", dark=True, files=files, active="export_job/settings.py",
                  size=(1366, 820))
    return _Drawn(_jpeg(img, 85), "dark editor with AWS keys and a GitHub token hard-coded in settings.py",
                  "credentials", (("aws_access_key_id", key_id), ("aws_secret_access_key", secret),
                                  ("github_token", token)), jpeg=True)


def _sticky_note(rng: random.Random, variant: int) -> _Drawn:
    """Passwords written on sticky notes and whiteboards, photographed."""
    first, last = _person(rng)
    password = _password(rng)
    v = variant % 4
    ink = ((25, 40, 120), (20, 20, 20), (160, 20, 30), (10, 90, 60))[v]
    if v == 1:  # whiteboard
        w, h = 1200, 800
        img = _noise(_gradient((w, h), (246, 247, 248), (222, 226, 230), horizontal=True), rng, 5)
        d = ImageDraw.Draw(img)
        d.rectangle([0, 0, w - 1, h - 1], outline=(160, 165, 170), width=14)
        login = (first[0] + last).lower()
        _t(d, (70, 60), "Sprint 14 - demo laptop", 44, "bold_oblique", (30, 80, 170))
        for i, item in enumerate(("- rebuild staging box", "- rotate badge reader", "- order HDMI adapters")):
            _t(d, (90, 150 + i * 62), item, 36, "oblique", (40, 40, 40))
        d.rectangle([70, 380, 880, 600], outline=(200, 40, 40), width=4)
        _t(d, (100, 410), f"Login: {login}", 50, "bold_oblique", ink)
        _t(d, (100, 500), f"Password: {password}", 50, "bold_oblique", ink)
        _t(d, (w - 80, h - 70), "(wipe after demo!)", 30, "oblique", (200, 40, 40), anchor="rd")
        photo = _photo(img, rng, surface=(120, 110, 100), pad=0.04, width=1100)
        return _Drawn(_jpeg(photo, 80), "whiteboard photo with a login name and password", "credentials",
                      (("login", login), ("password", password)), jpeg=True)
    note = (255, 236, 120) if v != 2 else (255, 170, 200)
    n = 620
    img = _noise(_gradient((n, n), note, _shade(note, 0.93)), rng, 6)
    d = ImageDraw.Draw(img)
    style = ("bold_oblique", "", "oblique", "serif_italic")[v]
    truth: tuple[tuple[str, str], ...]
    if v == 0:
        network = rng.choice(("Kestrel-Guest", "HomeNet-5G", "TheBurrow", "Office_2.4"))
        rows = ("WiFi", f"network: {network}", "wifi password:", password)
        truth = (("password", password),)
        desc = "yellow sticky note with a wifi password"
    elif v == 2:
        rows = ("bank app", f"user: {first.lower()}{rng.randint(1, 99)}", f"pw: {password}", "")
        truth = (("password", password),)
        desc = "pink sticky note on a monitor with a banking user and pw"
    else:
        vpn_user = f"{first[0].lower()}.{last.lower()}"
        rows = ("VPN", f"user: {vpn_user}", "pass:", password)
        truth = (("login", vpn_user), ("password", password))
        desc = "sticky note with VPN user name and password"
    y = 70
    for i, row in enumerate(rows):
        size = 56 if i == 0 else 46
        while size > 24 and _tw(row, size, style) > n - 90:
            size -= 2
        _t(d, (50, y), row, size, style, ink)
        y += max(size, 46) + 50
    surface = ((70, 70, 76), (0, 0, 0), (40, 42, 48), (150, 120, 90))[v]
    photo = _photo(img, rng, surface=surface, pad=0.18, angle=rng.uniform(-3, 3), width=760)
    return _Drawn(_jpeg(photo, 82), desc, "credentials", truth, jpeg=True)


# ------------------------------------------------------------------------------- finance, mail and forms

_SHOPS = ("Card payment GREENLEAF GROCERS", "Contactless CORNER COFFEE CO", "Direct debit COUNCIL TAX",
          "Card payment CITY TRANSIT", "Direct debit ENERGY EXAMPLE LTD",
          "Card payment BOOKSHOP ON THE HILL", "Transfer to savings", "Cash withdrawal ATM MARKET ST",
          "Card payment PHARMACY PLUS", "Direct debit MOBILE EXAMPLE", "Card payment PETROL STATION 24")


def _bank_statement(rng: random.Random, variant: int) -> _Drawn:
    """Account statements with the holder's name, address and a mod-97-valid IBAN."""
    first, last = _person(rng)
    v = variant % 3
    if v == 0:
        sort = f"{rng.randint(10, 99)}{rng.randint(10, 99)}{rng.randint(10, 99)}"
        account = _rand(rng, string.digits, 8)
        iban = _make_iban("GB", "NBRG" + sort + account)
        bank, bic, cur = "Northbridge Bank", "NBRGGB2L", "£"
        extra = (("Sort code", f"{sort[:2]}-{sort[2:4]}-{sort[4:]}"), ("Account number", account))
        street, town = _uk_address(rng)
    elif v == 1:
        iban = _make_iban("DE", _rand(rng, string.digits, 18))
        bank, bic, cur = "Meridian Bank AG", "MRDNDEFFXXX", "€"
        extra = (("Kontonummer", iban[12:]),)
        street, town = f"{rng.choice(('Lindenstraße', 'Gartenweg', 'Am Markt'))} {rng.randint(1, 80)}", \
            f"{rng.randint(10000, 99999)} {rng.choice(('Neustadt', 'Bergheim', 'Talhausen'))}"
    else:
        iban = _make_iban("NL", "KSTR" + _rand(rng, string.digits, 10))
        bank, bic, cur = "Kestrel Bank N.V.", "KSTRNL2A", "€"
        extra = ()
        street, town = f"{rng.choice(('Kerkstraat', 'Molenweg', 'Dorpsplein'))} {rng.randint(1, 200)}", \
            f"{rng.randint(1000, 9999)} {rng.choice(string.ascii_uppercase)}{rng.choice(string.ascii_uppercase)} " \
            f"{rng.choice(('Zuiderveen', 'Oosterwolde', 'Waterdam'))}"
    w, h = 900, 1270
    img = Image.new("RGB", (w, h), WHITE)
    d = ImageDraw.Draw(img)
    accent = ((0, 70, 120), (150, 20, 40), (240, 120, 0))[v]
    d.rectangle([50, 50, 110, 110], fill=accent)
    _t(d, (80, 80), bank[0], 40, "bold", WHITE, anchor="mm")
    _t(d, (128, 58), bank, 30, "bold", accent)
    _t(d, (128, 96), "Statement of account", 20, "sans", GREY)
    y = 160
    for line in (f"{rng.choice(('', '', 'Dr '))}{first} {last}", street, town):
        _t(d, (60, y), line, 22)
        y += 32
    period_end = _date(rng, 2024, 2025).replace(day=28)
    period_start = period_end.replace(day=1)
    rows = (("Period", f"{_dmy(period_start)} - {_dmy(period_end)}"), *extra, ("IBAN", _iban_print(iban)),
            ("BIC", bic))
    d.rounded_rectangle([470, 150, w - 50, 166 + 46 * len(rows)], radius=8, outline=(200, 200, 205), width=2)
    yy = 166
    for label, value in rows:
        _t(d, (490, yy), label, 16, "sans", GREY)
        _t(d, (490, yy + 18), value, 20 if label != "IBAN" else 19, "mono" if label == "IBAN" else "sans")
        yy += 46
    balance = rng.uniform(400, 6000)
    opening = balance
    y = 200 + 46 * len(rows)
    d.rectangle([50, y, w - 50, y + 40], fill=_shade(accent, 1.85))
    for x, head in ((60, "Date"), (170, "Description"), (620, "Out"), (730, "In"), (w - 60, "Balance")):
        _t(d, (x, y + 20), head, 19, "bold", anchor="lm" if head in ("Date", "Description") else "rm")
    y += 56
    day = period_start
    for k in range(14):
        day = min(period_end, day + dt.timedelta(days=rng.randint(0, 3)))
        if k == 3:
            desc, amount = f"Salary {rng.choice(('ACME EXAMPLE LTD', 'NORTHWIND TRADING', 'BLUE RIVER LLP'))}", \
                rng.uniform(1800, 4200)
        elif k == 1:
            desc, amount = "Standing order RENT", -rng.uniform(600, 1400)
        else:
            desc, amount = rng.choice(_SHOPS), -rng.uniform(3, 240)
        balance += amount
        _t(d, (60, y), f"{day.day:02d} {MONTHS[day.month - 1]}", 19)
        _t(d, (170, y), desc, 18)
        _t(d, (620 if amount < 0 else 730, y), f"{abs(amount):,.2f}", 18, anchor="ra")
        _t(d, (w - 60, y), f"{balance:,.2f}", 18, anchor="ra")
        y += 40
        d.line([50, y - 10, w - 50, y - 10], fill=(230, 230, 232), width=1)
    y += 20
    _t(d, (60, y), f"Opening balance {cur}{opening:,.2f}", 20, "bold")
    _t(d, (w - 60, y), f"Closing balance {cur}{balance:,.2f}", 20, "bold", anchor="ra")
    _t(d, (60, h - 60), f"{bank} · Page 1 of 2", 17, "sans", GREY)
    truth = (("name", f"{first} {last}"), ("iban", _iban_print(iban)))
    desc = f"{bank} statement with account holder, address, IBAN {iban[:2]} and transactions"
    if v == 2:
        return _Drawn(_jpeg(_photo(img, rng, surface=(60, 66, 74), width=950), 80), desc + " (photo)", "iban", truth,
                      jpeg=True)
    return _Drawn(img, desc, "iban", truth)


_MAIL_BODIES = (
    ("Re: Saturday plans", "Hi {to},\n\nThanks for the photos from the weekend! Are we still on for the walk on "
     "Saturday? I can pick you up at 9 and we could stop for breakfast on the way back.\n\nLet me know,"),
    ("Lease renewal", "Dear {to},\n\nAttached is the signed renewal for the flat. I have kept a copy for my records. "
     "Please call me if anything needs changing before Friday.\n\nKind regards,"),
    ("Quick question about the invoice", "Hello {to},\n\nCould you check the amount on last month's invoice? I think "
     "the second line was billed twice. Happy to talk it through on the phone this afternoon.\n\nBest,"),
    ("Dinner on the 14th", "Hey {to},\n\nBooked a table for six at 7:30. Let me know if anyone can't make it and I "
     "will change the booking. Ring me if you get lost, the place is hard to find.\n\nCheers,"),
)


def _email(rng: random.Random, variant: int) -> _Drawn:
    """Mail clients showing personal addresses and a signature phone number: contact data."""
    s_first, s_last = _person(rng)
    r_first, r_last = _person(rng)
    sender, recipient = _email_address(s_first, s_last, rng), _email_address(r_first, r_last, rng)
    phone = _uk_mobile(rng) if variant % 2 else _us_phone(rng)
    subject, body = _MAIL_BODIES[variant % len(_MAIL_BODIES)]
    body = body.format(to=r_first)
    sent = _date(rng, 2024, 2025)
    when = f"{FULL_MONTHS[sent.month - 1]} {sent.day}, {sent.year}, {rng.randint(7, 22)}:{rng.randint(0, 59):02d}"
    truth = (("email", sender), ("email", recipient), ("phone", phone), ("name", f"{s_first} {s_last}"))
    desc = "e-mail with personal From/To addresses and a phone number in the signature"
    signature = (f"{s_first} {s_last}", rng.choice(("Mobile", "Tel", "Cell", "M")) + f": {phone}")
    if variant % 4 == 3:  # phone screenshot
        w, h = 620, 1240
        img = Image.new("RGB", (w, h), WHITE)
        d = ImageDraw.Draw(img)
        _t(d, (40, 28), "9:41", 24, "bold")
        _t(d, (w - 40, 28), "5G  87%", 22, "bold", anchor="ra")
        _t(d, (30, 90), "< Inbox", 26, "sans", (0, 122, 255))
        y = 160
        y = _paragraph(d, 30, y, subject, 34, "bold", w - 60, leading=1.25) + 20
        d.ellipse([30, y, 100, y + 70], fill=(90, 130, 200))
        _t(d, (65, y + 35), s_first[0] + s_last[0], 28, "bold", WHITE, anchor="mm")
        _t(d, (120, y + 4), f"{s_first} {s_last}", 26, "bold")
        _t(d, (120, y + 40), sender, 21, "sans", GREY)
        y += 96
        _t(d, (30, y), f"To: {recipient}", 21, "sans", GREY)
        _t(d, (30, y + 34), when, 19, "sans", GREY)
        y += 90
        for para in body.split("\n\n"):
            y = _paragraph(d, 30, y, para, 25, "sans", w - 60) + 16
        for line in signature:
            _t(d, (30, y), line, 24)
            y += 36
        return _Drawn(img, desc + " (phone screenshot)", "contact", truth)
    dark = variant % 4 == 2
    img, d, top = _window((1280, 800), f"{subject} - Mail", dark)
    fg = (225, 226, 230) if dark else INK
    muted = (150, 152, 160) if dark else GREY
    side = (38, 40, 46) if dark else (243, 244, 247)
    d.rectangle([0, top, 220, 800], fill=side)
    for i, (folder, count) in enumerate((("Inbox", "12"), ("Starred", ""), ("Sent", ""), ("Drafts", "2"),
                                         ("Archive", ""), ("Spam", ""))):
        _t(d, (24, top + 30 + i * 40), folder, 20, "bold" if i == 0 else "sans", fg)
        _t(d, (196, top + 30 + i * 40), count, 18, "sans", muted, anchor="ra")
    d.line([220, top, 220, 800], fill=(70, 70, 76) if dark else (215, 216, 220))
    x = 260
    y = top + 30
    _t(d, (x, y), subject, 30, "bold", fg)
    y += 60
    d.ellipse([x, y, x + 56, y + 56], fill=(180, 100, 60))
    _t(d, (x + 28, y + 28), s_first[0], 26, "bold", WHITE, anchor="mm")
    _t(d, (x + 76, y), "From:", 20, "bold", fg)
    _t(d, (x + 150, y), f"{s_first} {s_last} <{sender}>", 20, "sans", fg)
    _t(d, (x + 76, y + 32), "To:", 20, "bold", fg)
    _t(d, (x + 150, y + 32), f"{r_first} {r_last} <{recipient}>", 20, "sans", fg)
    _t(d, (1240, y), when, 18, "sans", muted, anchor="ra")
    y += 100
    for para in body.split("\n\n"):
        y = _paragraph(d, x, y, para, 22, "sans", 900, fg) + 14
    y += 6
    _t(d, (x, y), "--", 20, "sans", muted)
    for line in (*signature, rng.choice(("Sent from my phone", "", "Pronouns: she/her", ""))):
        y += 32
        _t(d, (x, y), line, 20, "sans", muted if line.startswith(("Sent", "Pronouns")) else fg)
    if variant % 4 == 1:
        return _Drawn(_jpeg(img, 70), desc + " (compressed screenshot)", "contact", truth, jpeg=True)
    return _Drawn(img, desc, "contact", truth)


def _w2(rng: random.Random, variant: int) -> _Drawn:
    """W-2 wage statements: an SSA-valid SSN next to the employee's name, with an employer EIN and wages."""
    first, last = _person(rng)
    ssn = ("078-05-1120", "219-09-9999")[variant] if variant < 2 and rng.random() < 0.5 else _make_ssn(rng)
    ein = _make_ein(rng)
    wages = rng.uniform(28000, 160000)
    fed = wages * rng.uniform(0.1, 0.22)
    employer = rng.choice(("Northwind Trading Co.", "Blue River Logistics Inc.", "Copperleaf Studios LLC"))
    e_street, e_town = _us_address(rng)
    street, town = _us_address(rng)
    year = rng.choice((2022, 2023, 2024))
    w, h = 1240, 820
    img = Image.new("RGB", (w, h), (255, 255, 255) if variant != 1 else (250, 250, 244))
    d = ImageDraw.Draw(img)
    red = (180, 30, 40) if variant % 2 == 0 else (30, 30, 30)
    m = 30

    def box(x0: int, y0: int, x1: int, y1: int, label: str, value: str = "", vsize: int = 24) -> None:
        d.rectangle([x0, y0, x1, y1], outline=red, width=2)
        _t(d, (x0 + 8, y0 + 6), label, 16, "sans", red)
        if value:
            _t(d, (x0 + 14, y0 + 30), value, vsize, "mono", (20, 20, 20))

    mid = 640
    box(m, m, mid, 100, "a  Employee's social security number", ssn, 28)
    box(mid, m, w - m, 100, "OMB No. 1545-0008")
    box(m, 100, mid, 170, "b  Employer identification number (EIN)", ein)
    box(mid, 100, 940, 170, "1  Wages, tips, other compensation", f"{wages:,.2f}")
    box(940, 100, w - m, 170, "2  Federal income tax withheld", f"{fed:,.2f}")
    box(m, 170, mid, 330, "c  Employer's name, address, and ZIP code")
    for i, line in enumerate((employer, e_street, e_town)):
        _t(d, (m + 14, 202 + i * 36), line, 22, "mono")
    box(mid, 170, 940, 250, "3  Social security wages", f"{min(wages, 160200):,.2f}")
    box(940, 170, w - m, 250, "4  Social security tax withheld", f"{min(wages, 160200) * 0.062:,.2f}")
    box(mid, 250, 940, 330, "5  Medicare wages and tips", f"{wages:,.2f}")
    box(940, 250, w - m, 330, "6  Medicare tax withheld", f"{wages * 0.0145:,.2f}")
    box(m, 330, mid, 400, "d  Control number", f"{rng.randint(10000, 99999)}")
    box(mid, 330, 940, 400, "7  Social security tips")
    box(940, 330, w - m, 400, "8  Allocated tips")
    box(m, 400, mid, 560, "e  Employee's first name and initial        Last name")
    given = f"{first} {rng.choice(string.ascii_uppercase)}."
    _t(d, (m + 14, 434), given, 24, "mono")
    _t(d, (m + 330, 434), last, 24, "mono")
    _t(d, (m + 14, 476), street, 22, "mono")
    _t(d, (m + 14, 512), town, 22, "mono")
    box(mid, 400, 940, 480, "10  Dependent care benefits")
    box(940, 400, w - m, 480, "12a  See instructions", f"D  {wages * 0.05:,.2f}")
    box(mid, 480, w - m, 560, "13  Statutory employee   Retirement plan   Third-party sick pay")
    box(m, 560, 330, 640, "15  State", rng.choice(("OR", "IA", "OH", "NC")))
    box(330, 560, mid, 640, "16  State wages, tips, etc.", f"{wages:,.2f}")
    box(mid, 560, 940, 640, "17  State income tax", f"{wages * 0.045:,.2f}")
    box(940, 560, w - m, 640, "20  Locality name")
    _t(d, (m, 670), "Form", 22, "sans", red)
    _t(d, (m + 62, 660), "W-2", 44, "bold", red)
    _t(d, (m + 170, 668), "Wage and Tax Statement", 30, "bold", red)
    _t(d, (w - m, 664), str(year), 48, "bold", red, anchor="ra")
    _t(d, (m, 740), "Copy B - To Be Filed With Employee's FEDERAL Tax Return.", 18, "sans", red)
    _t(d, (w - m, 740), "Department of the Treasury - Internal Revenue Service", 18, "sans", red, anchor="ra")
    truth = (("ssn", ssn), ("ein", ein), ("given_names", given), ("surname", last))
    desc = "W-2 wage and tax statement with the employee's SSN, name, address, employer EIN and wages"
    if variant == 1:
        return _Drawn(_jpeg(_photo(img, rng, surface=(110, 90, 70), width=1150), 80), desc + " (photo)", "ssn", truth,
                      jpeg=True)
    if variant == 2:
        return _Drawn(_noise(_scale(img, 1000), rng, 10), desc + " (scan)", "ssn", truth)
    return _Drawn(img, desc, "ssn", truth)


def _payslip(rng: random.Random, variant: int) -> _Drawn:
    """Payslips: UK ones carry a National Insurance number (national_id), US ones an SSN (ssn)."""
    first, last = _person(rng)
    uk = variant % 2 == 0
    ident = _make_nino(rng) if uk else _make_ssn(rng)
    cur = "£" if uk else "$"
    company = rng.choice(("Fernhollow Engineering Ltd", "Ashbury Print Works Ltd", "Kingsmere Foods Ltd")) if uk \
        else rng.choice(("Lakewood Dental Group LLC", "Pine Bluff Freight Inc.", "Cedar Falls Bakery Co."))
    pay_date = _date(rng, 2024, 2025)
    basic = rng.uniform(1800, 5200)
    overtime = rng.uniform(0, 400)
    gross = basic + overtime
    w, h = 1000, 1060
    img = Image.new("RGB", (w, h), WHITE)
    d = ImageDraw.Draw(img)
    accent = ((40, 80, 60), (30, 60, 120), (90, 60, 120), (120, 70, 20))[variant % 4]
    d.rectangle([0, 0, w, 96], fill=accent)
    _t(d, (40, 48), company, 30, "bold", WHITE, anchor="lm")
    _t(d, (w - 40, 48), "PAYSLIP" if uk else "EARNINGS STATEMENT", 26, "bold", WHITE, anchor="rm")
    y = 130
    ident_label = "NI number" if uk else "SSN"
    info = (("Employee", f"{first} {last}"), ("Employee no.", f"{rng.randint(100, 9999):05d}"),
            (ident_label, ident), ("Tax code" if uk else "Filing status", "1257L" if uk else "Single"),
            ("Pay date", _uk_date(pay_date) if uk else _us_date(pay_date)),
            ("Pay period", f"Month {pay_date.month}" if uk else f"{MONTHS[pay_date.month - 1]} {pay_date.year}"))
    for i, (label, value) in enumerate(info):
        col, row = i % 2, i // 2
        _t(d, (40 + col * 480, y + row * 60), label, 17, "sans", GREY)
        _t(d, (40 + col * 480, y + row * 60 + 22), value, 24, "bold" if label in ("Employee", ident_label) else "sans")
    y += 3 * 60 + 30
    if uk:
        deductions = (("Income tax (PAYE)", gross * 0.14), ("National Insurance", gross * 0.08),
                      ("Pension 5%", basic * 0.05), ("Student loan", rng.choice((0.0, gross * 0.03))))
    else:
        deductions = (("Federal income tax", gross * 0.12), ("Social Security", gross * 0.062),
                      ("Medicare", gross * 0.0145), ("State income tax", gross * 0.04), ("401(k)", basic * 0.05))
    d.rectangle([40, y, w - 40, y + 40], fill=_shade(accent, 1.85))
    _t(d, (56, y + 20), "Payments", 20, "bold", anchor="lm")
    _t(d, (500, y + 20), "Deductions", 20, "bold", anchor="lm")
    y += 56
    payments = (("Basic pay", basic), ("Overtime", overtime))
    for i in range(max(len(payments), len(deductions))):
        if i < len(payments):
            _t(d, (56, y), payments[i][0], 20)
            _t(d, (450, y), f"{payments[i][1]:,.2f}", 20, "mono", anchor="ra")
        _t(d, (500, y), deductions[i][0], 20)
        _t(d, (w - 56, y), f"{deductions[i][1]:,.2f}", 20, "mono", anchor="ra")
        y += 38
    total_ded = sum(v for _, v in deductions)
    y += 16
    d.line([40, y, w - 40, y], fill=(200, 200, 200), width=2)
    y += 16
    _t(d, (56, y), "Gross pay", 21, "bold")
    _t(d, (450, y), f"{gross:,.2f}", 21, "mono_bold", anchor="ra")
    _t(d, (500, y), "Total deductions", 21, "bold")
    _t(d, (w - 56, y), f"{total_ded:,.2f}", 21, "mono_bold", anchor="ra")
    y += 70
    d.rounded_rectangle([w - 420, y, w - 40, y + 80], radius=10, fill=_shade(accent, 1.8))
    _t(d, (w - 400, y + 40), "NET PAY", 24, "bold", accent, anchor="lm")
    _t(d, (w - 60, y + 40), f"{cur}{gross - total_ded:,.2f}", 32, "bold", accent, anchor="rm")
    y += 120
    _t(d, (40, y), "Year to date", 22, "bold", accent)
    y += 40
    months = pay_date.month
    ytd = (("Taxable pay", gross * months), ("Tax paid", deductions[0][1] * months),
           (deductions[1][0], deductions[1][1] * months), ("Pension" if uk else "Medicare", deductions[2][1] * months))
    for i, (label, value) in enumerate(ytd):
        _t(d, (56 + (i % 2) * 480, y + (i // 2) * 36), label, 19, "sans", GREY)
        _t(d, (450 + (i % 2) * 494, y + (i // 2) * 36), f"{value:,.2f}", 19, "mono", anchor="ra")
    _t(d, (w / 2, h - 50), f"{company} · Payroll department · Private and confidential", 17, "sans", GREY,
       anchor="ma")
    truth = (("nino" if uk else "ssn", ident), ("name", f"{first} {last}"))
    desc = f"{'UK' if uk else 'US'} payslip with employee name, {ident_label}, pay and deductions"
    expected = "national_id" if uk else "ssn"
    if variant == 3:
        return _Drawn(_jpeg(_photo(img, rng, surface=(190, 180, 160), width=900), 78), desc + " (photo)", expected,
                      truth, jpeg=True)
    return _Drawn(img, desc, expected, truth)


# ================================================================================================= benign

_MENU = {
    "Starters": (("Tomato and basil bruschetta", 6.5), ("Soup of the day with sourdough", 5.9),
                 ("Burrata, peach and hazelnut", 9.5), ("Crispy calamari, lemon aioli", 8.75),
                 ("Whipped feta with honey", 7.25)),
    "Mains": (("Wild mushroom risotto", 15.5), ("Pan-fried sea bass, fennel, capers", 21.0),
              ("Slow-cooked lamb shoulder", 23.5), ("Aubergine parmigiana", 14.75), ("Chicken Milanese, rocket", 17.9),
              ("Spaghetti alle vongole", 18.5), ("Chickpea and spinach curry", 13.25)),
    "Desserts": (("Tiramisu", 7.0), ("Lemon tart, creme fraiche", 6.75), ("Affogato", 5.5),
                 ("Dark chocolate torte", 7.25), ("Seasonal sorbet (3 scoops)", 5.0)),
}


def _menu(rng: random.Random, variant: int) -> _Drawn:
    """Restaurant menus: dishes and prices, no people."""
    name = ("Trattoria Lucca", "The Corner Kitchen", "Harbour Fish Bar")[variant % 3]
    cur = ("€", "£", "$")[variant % 3]
    chalk = variant % 3 == 1
    w, h = (900, 1240) if variant % 3 != 2 else (620, 880)
    bg, fg, accent = ((250, 244, 228), (40, 34, 28), (140, 40, 30)) if not chalk else \
        ((34, 52, 44), (236, 236, 226), (240, 210, 120))
    img = _noise(Image.new("RGB", (w, h), bg), rng, 8 if chalk else 4)
    d = ImageDraw.Draw(img)
    small = variant % 3 == 2
    title_style = "serif_bold" if not chalk else "bold_oblique"
    _t(d, (w / 2, 50), name, 52 if not small else 38, title_style, accent, anchor="ma")
    _t(d, (w / 2, 120 if not small else 100), rng.choice(("Lunch & Dinner", "Served 12:00 - 22:00", "Est. 1987")),
       22 if not small else 18, "serif_italic", fg, anchor="ma")
    y = 180 if not small else 150
    body_style = "serif" if not chalk else "sans"
    size = 24 if not small else 19
    for section, dishes in _MENU.items():
        _t(d, (w / 2, y), section.upper(), size + 6, "serif_bold" if not chalk else "bold", accent, anchor="ma")
        y += size + 30
        for dish, price in rng.sample(dishes, 3 if small else 4):
            price += rng.choice((0, 0.5, 1.0))
            label = f"{price:.2f}"
            _t(d, (60, y), dish, size, body_style, fg)
            dots_x = 60 + _tw(dish, size, body_style) + 10
            end = w - 60 - _tw(label, size, body_style) - 10
            if end > dots_x:
                d.line([dots_x, y + size * 0.8, end, y + size * 0.8], fill=_shade(fg, 1.6 if not chalk else 0.6),
                       width=1)
            _t(d, (w - 60, y), label, size, body_style, fg, anchor="ra")
            y += int(size * 1.7)
        y += 20
    _t(d, (w / 2, h - 60), f"Prices in {cur}, taxes included. Please tell us about any allergies.", 17 if small else 18,
       "serif_italic", fg, anchor="ma")
    if small:
        return _Drawn(_jpeg(_photo(img, rng, surface=(60, 50, 44), width=560), 80),
                      "small photo of a fish bar menu card with prices", jpeg=True)
    return _Drawn(img, f"{'chalkboard' if chalk else 'printed'} restaurant menu with dishes and prices")


def _sign(rng: random.Random, variant: int) -> _Drawn:
    """Street, shop and museum signs with opening hours."""
    v = variant % 3
    if v == 0:
        w, h = 1100, 760
        img = _gradient((w, h), (120, 170, 220), (200, 225, 245))
        d = ImageDraw.Draw(img)
        d.rectangle([530, 300, 560, h], fill=(90, 96, 100))
        street = rng.choice(("Elm Street", "Harbour Road", "Station Parade", "Kestrel Lane"))
        d.rounded_rectangle([180, 130, 920, 300], radius=18, fill=(20, 110, 60), outline=WHITE, width=8)
        _t(d, (550, 215), street, 84, "bold", WHITE, anchor="mm")
        d.rectangle([330, 360, 760, 560], fill=WHITE, outline=(200, 20, 30), width=10)
        _t(d, (545, 400), "NO PARKING", 44, "bold", (200, 20, 30), anchor="ma")
        _t(d, (545, 460), "8am - 6pm", 36, "bold", INK, anchor="ma")
        _t(d, (545, 510), "Mon - Sat", 32, "sans", INK, anchor="ma")
        return _Drawn(_jpeg(_noise(img, rng, 6), 84), "street name sign above a no-parking sign with hours", jpeg=True)
    if v == 1:
        w, h = 800, 1000
        img = _noise(_gradient((w, h), (60, 48, 40), (40, 32, 26)), rng, 8, blur=1.5)
        d = ImageDraw.Draw(img)
        d.rectangle([100, 80, 700, 920], fill=(250, 250, 246))
        shop = rng.choice(("Willow & Thread", "Ashbury Books", "The Tool Shed"))
        _t(d, (400, 140), shop, 44, "serif_bold", (60, 40, 30), anchor="ma")
        _t(d, (400, 220), "OPENING HOURS", 30, "bold", (140, 40, 30), anchor="ma")
        rows = (("Monday", "9:00 - 17:30"), ("Tuesday", "9:00 - 17:30"), ("Wednesday", "9:00 - 17:30"),
                ("Thursday", "9:00 - 19:00"), ("Friday", "9:00 - 19:00"), ("Saturday", "10:00 - 16:00"),
                ("Sunday", "Closed"))
        for i, (day, hours) in enumerate(rows):
            _t(d, (150, 300 + i * 62), day, 32, "serif")
            _t(d, (650, 300 + i * 62), hours, 32, "serif", anchor="ra")
        _t(d, (400, 780), "Bank holidays 11:00 - 15:00", 26, "serif_italic", GREY, anchor="ma")
        d.rounded_rectangle([260, 830, 540, 900], radius=12, fill=(30, 120, 60))
        _t(d, (400, 865), "OPEN", 44, "bold", WHITE, anchor="mm")
        return _Drawn(_photo(img, rng, surface=(50, 40, 34), pad=0.03, width=800),
                      "shop door sign with weekly opening hours")
    w, h = 1200, 800
    img = Image.new("RGB", (w, h), (24, 36, 60))
    d = ImageDraw.Draw(img)
    _t(d, (80, 70), "MUSEUM OF", 40, "sans", (220, 200, 150))
    _t(d, (80, 120), "MARITIME HISTORY", 72, "bold", WHITE)
    d.line([80, 230, 1120, 230], fill=(220, 200, 150), width=3)
    left = (("Opening hours", ""), ("Tuesday - Sunday", "10:00 - 17:00"), ("Last admission", "16:30"),
            ("Monday", "closed"), ("25 - 26 December", "closed"))
    right = (("Admission", ""), ("Adults", "€12.00"), ("Students, 65+", "€8.00"), ("Under 18", "free"),
             ("Family (2+3)", "€30.00"))
    for col, width, rows2 in ((80, 520, left), (680, 440, right)):
        for i, (a, b) in enumerate(rows2):
            _t(d, (col, 270 + i * 64), a, 36 if i == 0 else 30, "bold" if i == 0 else "sans",
               (220, 200, 150) if i == 0 else WHITE)
            _t(d, (col + width, 270 + i * 64), b, 30, "sans", WHITE, anchor="ra")
    _t(d, (80, 700), "Gallery 3 reopens 1 March after refurbishment  ·  www.example.org/museum", 24, "sans",
       (180, 190, 210))
    return _Drawn(img, "museum entrance sign with opening hours and admission prices")


def _slide(rng: random.Random, variant: int) -> _Drawn:
    """Presentation slides: title, bullets, numbers and version strings."""
    w, h = 1280, 720
    v = variant % 3
    theme = (((255, 255, 255), (20, 60, 120), INK), ((28, 32, 44), (120, 200, 255), (230, 232, 238)),
             ((248, 246, 240), (170, 60, 40), INK))[v]
    bg, accent, fg = theme
    img = Image.new("RGB", (w, h), bg)
    d = ImageDraw.Draw(img)
    d.rectangle([0, 0, 24, h], fill=accent)
    if v == 0:
        title = f"Q{rng.randint(1, 4)} Product Update"
        bullets = (f"Shipped v{rng.randint(2, 5)}.{rng.randint(0, 9)}.{rng.randint(0, 12)} to 98% of users",
                   f"p95 latency down from {rng.randint(380, 520)} ms to {rng.randint(150, 240)} ms",
                   f"Crash-free sessions: {rng.uniform(99.1, 99.9):.1f}%", "Offline mode moves to next quarter",
                   "Next review: 14:00, room B204")
    elif v == 1:
        title = "Onboarding for new contributors"
        bullets = ("Clone the repository and run make setup", "Read CONTRIBUTING.md before the first pull request",
                   "Every change needs a test and a changelog line", "CI runs lint, unit and integration suites",
                   "Ask questions in the #dev-help channel")
    else:
        title = "Roadmap 2025"
        bullets = ("Jan - Mar: migrate storage to the new cluster", "Apr - Jun: public API v3 beta",
                   "Jul - Sep: accessibility audit and fixes", "Oct - Dec: retire legacy dashboard",
                   "Budget: 4 teams, 22 engineers")
    _t(d, (80, 70), title, 54, "bold", accent)
    y = 200
    for b in bullets:
        d.ellipse([84, y + 12, 100, y + 28], fill=accent)
        _t(d, (124, y), b, 32, "sans", fg)
        y += 76
    _t(d, (w - 40, h - 40), f"{rng.randint(3, 24)}", 22, "sans", GREY, anchor="rd")
    _t(d, (60, h - 40), "Internal · Engineering all-hands", 20, "sans", GREY, anchor="ld")
    return _Drawn(img, f"presentation slide: {title}")


def _chart(rng: random.Random, variant: int) -> _Drawn:
    """Bar and line charts with axis labels and numbers."""
    w, h = 1200, 800
    img = Image.new("RGB", (w, h), WHITE)
    d = ImageDraw.Draw(img)
    v = variant % 3
    x0, y0, x1, y1 = 140, 130, w - 60, h - 120
    if v == 2:  # horizontal bars
        _t(d, (w / 2, 40), "How do you get to work? (n = 1,240)", 36, "bold", anchor="ma")
        options = ("Bicycle", "Bus", "Car", "Train", "Walk", "Work from home")
        shares = [rng.randint(5, 30) for _ in options]
        total = sum(shares)
        for i, (label, share) in enumerate(zip(options, shares, strict=True)):
            pct = share * 100 / total
            y = 140 + i * 95
            _t(d, (260, y + 30), label, 26, "sans", anchor="rm")
            d.rectangle([280, y + 5, 280 + pct * 22, y + 55], fill=(70, 140, 90))
            _t(d, (290 + pct * 22, y + 30), f"{pct:.1f}%", 24, "bold", anchor="lm")
        return _Drawn(img, "horizontal bar chart of commuting survey percentages")
    d.line([x0, y0, x0, y1, x1, y1], fill=INK, width=2)
    top = 500 if v == 0 else 30
    for k in range(6):
        yy = y1 - (y1 - y0) * k / 5
        d.line([x0, yy, x1, yy], fill=(225, 225, 228), width=1)
        _t(d, (x0 - 12, yy), f"{top * k // 5}", 22, "sans", GREY, anchor="rm")
    if v == 0:
        _t(d, (w / 2, 40), f"Revenue by quarter, {rng.choice((2023, 2024))} (EUR thousands)", 34, "bold", anchor="ma")
        labels = ("Q1", "Q2", "Q3", "Q4")
        for i, label in enumerate(labels):
            for j, color in enumerate(((40, 100, 170), (230, 140, 40))):
                val = rng.randint(120, 480)
                bx = x0 + 60 + i * 250 + j * 90
                by = y1 - (y1 - y0) * val / top
                d.rectangle([bx, by, bx + 80, y1], fill=color)
                _t(d, (bx + 40, by - 8), str(val), 22, "bold", anchor="md")
            _t(d, (x0 + 150 + i * 250, y1 + 16), label, 26, "sans", anchor="ma")
        for j, (label, color) in enumerate((("Europe", (40, 100, 170)), ("Americas", (230, 140, 40)))):
            d.rectangle([x1 - 300 + j * 160, 90, x1 - 280 + j * 160, 110], fill=color)
            _t(d, (x1 - 270 + j * 160, 100), label, 22, "sans", anchor="lm")
        return _Drawn(img, "grouped bar chart of quarterly revenue with values")
    _t(d, (w / 2, 40), "Average daily temperature, Lisbon (°C)", 34, "bold", anchor="ma")
    temps = [rng.uniform(11, 16) + 9 * math.sin((m - 3.5) / 12 * 2 * math.pi) + 4 for m in range(12)]
    pts = [(x0 + 40 + m * (x1 - x0 - 80) / 11, y1 - (y1 - y0) * t / top) for m, t in enumerate(temps)]
    d.line(pts, fill=(200, 60, 50), width=4)
    for (px, py), t, m in zip(pts, temps, MONTHS, strict=True):
        d.ellipse([px - 6, py - 6, px + 6, py + 6], fill=(200, 60, 50))
        _t(d, (px, py - 14), f"{t:.1f}", 19, "sans", anchor="md")
        _t(d, (px, y1 + 16), m, 22, "sans", anchor="ma")
    _t(d, (w / 2, h - 40), "Month", 24, "sans", GREY, anchor="md")
    return _Drawn(img, "line chart of monthly temperatures with labelled points")


_PROSE = (
    ("Chapter Seven", "The lighthouse had not been lit for eleven years, but the keeper's cottage still smelled of "
     "lamp oil and salt. On the first morning the wind came straight off the water and rattled every pane in its "
     "frame, as if the house were trying to remember how to speak. The shelves held tide tables from decades ago, a "
     "tin of buttons, and a logbook whose last entry simply recorded fog, then clearing, then nothing at all. "
     "Outside, the gulls wheeled over the rocks and argued about the scraps the fishing boats had left behind. "
     "By noon the sky had opened into a hard, bright blue, and the sea below the cliff turned the colour of "
     "bottle glass. It was the kind of light that made distances lie: the far headland looked close enough to "
     "touch, and the village, only a mile inland, seemed to float above the fields like something half imagined."),
    ("Chapter Two", "Market day began before dawn, with the clatter of trestle tables being dragged across the "
     "square and the low complaint of vans reversing into narrow lanes. By seven the air was thick with the smell "
     "of bread and wet cabbages, and the first customers were moving slowly between the stalls, weighing apples "
     "in their palms as though the fruit might tell them something. The cheese seller kept a radio tuned to a "
     "station that played only waltzes. Nobody had ever asked her why, and she had never offered to explain. "
     "Across the square the clock on the old corn exchange ran four minutes fast, which everyone knew and nobody "
     "corrected, so that the whole town lived slightly ahead of itself and was, on the whole, rather proud of it."),
    ("Chapter Twelve", "The river was higher than anyone could remember, brown and quick and carrying whole branches "
     "past the mill. From the footbridge you could feel it working at the stones beneath you, a patient pressure "
     "that never quite became a sound. The children had been told to stay away, which meant of course that they "
     "gathered on the bank every afternoon after school to watch what the water brought down: a blue bucket, a "
     "fence post, once an entire garden bench, upright and dignified, sailing towards the sea as if it had "
     "somewhere important to be. In the evenings the water went quiet and silver, and the swallows came down "
     "low over it, taking the insects that rose from the flooded meadows in great shimmering clouds."),
)


def _book_page(rng: random.Random, variant: int) -> _Drawn:
    """Book pages of invented prose, and a copyright page with an ISBN (a 13-digit near-miss)."""
    w, h = 820, 1200
    img = Image.new("RGB", (w, h), (250, 246, 236))
    d = ImageDraw.Draw(img)
    if variant % 3 == 2:
        isbn = _ean13(rng, "978")
        printed = f"ISBN {isbn[:3]}-{isbn[3]}-{isbn[4:9]}-{isbn[9:12]}-{isbn[12]}"
        y = 520
        for line in ("First published in 2021 by Saltmarsh Press", "This paperback edition published 2023", "",
                     "Text copyright © Saltmarsh Press 2021", "Cover illustration © Saltmarsh Press 2021", "",
                     "All rights reserved. No part of this publication may be", "reproduced without permission.",
                     "", "A catalogue record for this book is available", "from the national library.", "",
                     printed, "", "10 9 8 7 6 5 4 3 2 1", "Printed on paper from responsible sources"):
            _t(d, (w / 2, y), line, 19, "serif", INK, anchor="ma")
            y += 30
        return _Drawn(_noise(img, rng, 5), "copyright page of a paperback with an ISBN-13", decoys=(isbn,))
    heading, text = _PROSE[variant % len(_PROSE)]
    _t(d, (w / 2, 120), heading, 34, "serif_bold", anchor="ma")
    _paragraph(d, 80, 220, text, 25, "serif", w - 160, leading=1.7)
    page = rng.randint(40, 260)
    _t(d, (w / 2, h - 60), str(page), 20, "serif", anchor="ma")
    img = _noise(img, rng, 5)
    if variant % 3 == 1:
        return _Drawn(_jpeg(_photo(img, rng, surface=(120, 96, 72), width=880), 82),
                      "photo of a novel's page of prose", jpeg=True)
    return _Drawn(img, "book page with a chapter heading and prose")


_CODE_SAMPLES = (
    ("auth.py", (
        "import getpass", "import hashlib", "import hmac", "",
        "ITERATIONS = 600_000", "",
        "def check_password(pw: str, stored_hash: bytes, salt: bytes) -> bool:",
        '    """Compare a password with its stored PBKDF2 hash."""',
        '    candidate = hashlib.pbkdf2_hmac("sha256", pw.encode(), salt, ITERATIONS)',
        "    return hmac.compare_digest(candidate, stored_hash)", "",
        "def main() -> None:", '    user = input("Username: ")', "    password = getpass.getpass()",
        "    record = load_user(user)",
        "    if record is None or not check_password(password, record.hash, record.salt):",
        '        raise SystemExit("Login failed")', '    print(f"Welcome back, {user}")')),
    ("middleware.py", (
        "from flask import abort, g, request", "", "from .tokens import verify_token", "",
        "def require_auth(view):", "    def wrapper(*args, **kwargs):",
        '        token = request.headers.get("Authorization")', "        if not token:",
        "            abort(401)", '        claims = verify_token(token.removeprefix("Bearer "))',
        "        if claims is None:", "            abort(403)", "        g.user_id = claims.sub",
        "        return view(*args, **kwargs)", "    return wrapper", "",
        'API_KEY_ENV = "PAYMENTS_API_KEY"  # read at start-up, never logged',
        "api_key = os.environ.get(API_KEY_ENV)")),
    ("signup.js", (
        "// Validate the sign-up form before sending it", "async function onSubmit(form) {",
        '  const password = form.elements["password"].value;',
        '  const confirm = form.elements["confirm"].value;', "  if (password.length < 12) {",
        '    return showError("Password must be at least 12 characters");', "  }",
        "  if (password !== confirm) {", '    return showError("Passwords do not match");', "  }",
        "  const token = await getAccessToken();",
        '  const res = await fetch("/api/v2/users", { method: "POST", body: new FormData(form),',
        "    headers: { Authorization: `Bearer ${token}` } });",
        '  if (!res.ok) showError(`Sign-up failed (${res.status})`);', "}")),
)


def _code(rng: random.Random, variant: int) -> _Drawn:
    """Code and terminals that talk about passwords and tokens without containing any."""
    v = variant % 4
    if v == 3:
        lines: list[Sequence[Segment] | str] = [
            _prompt("dev", "ci-runner", "~/app", "python --version"), "Python 3.12.4",
            _prompt("dev", "ci-runner", "~/app", "pip install -q -r requirements.txt"),
            _prompt("dev", "ci-runner", "~/app", "pytest -q"),
            "........................................ [ 95%]", "..                                       [100%]",
            f"42 passed, 1 skipped in {rng.uniform(2, 9):.2f}s",
            _prompt("dev", "ci-runner", "~/app", "git log --oneline -4"),
            [("9e07d3c ", (230, 200, 90)), ("Retry uploads with exponential backoff", (214, 218, 224))],
            [("4f1c2ab ", (230, 200, 90)), ("Bump version to 2.4.1", (214, 218, 224))],
            [("b81e0f5 ", (230, 200, 90)), ("Fix off-by-one in pagination", (214, 218, 224))],
            [("07aa9c1 ", (230, 200, 90)), ("Docs: explain the cache settings", (214, 218, 224))],
            _prompt("dev", "ci-runner", "~/app", "")]
        return _Drawn(_terminal(lines, "dev@ci-runner: ~/app", (1200, 640)),
                      "terminal running tests and git log (commit hashes, versions, no secrets)")
    name, code = _CODE_SAMPLES[v]
    files = ("src/", f"src/{name}", "src/models.py", "src/views.py", "tests/", "tests/test_auth.py", "README.md")
    img = _editor(code, f"{name} — app", dark=v != 1, files=files, active=f"src/{name}",
                  size=(1366, 860) if v != 2 else (1280, 760), font_size=18)
    if v == 2:
        img = _jpeg(img, 75)
    return _Drawn(img, f"editor showing {name}: mentions passwords/tokens but holds none", jpeg=v == 2)


_GROCERIES = (("MILK SEMI-SKIMMED 2L", 1.65), ("SOURDOUGH LOAF", 2.80), ("BANANAS LOOSE", 0.98),
              ("FREE RANGE EGGS 6", 2.35),
              ("CHEDDAR MATURE 400G", 3.60), ("PASTA FUSILLI 500G", 0.95), ("TOMATOES CHERRY", 1.75),
              ("COFFEE BEANS 250G", 4.99), ("OLIVE OIL 500ML", 5.49), ("DISH SOAP", 1.20), ("APPLES BRAEBURN", 2.10),
              ("YOGHURT GREEK 500G", 2.25), ("RICE BASMATI 1KG", 2.60), ("ORANGE JUICE 1L", 1.89))


def _receipt(rng: random.Random, variant: int) -> _Drawn:
    """Till receipts: items, totals, a masked card and an order number that fails Luhn; no names."""
    v = variant % 4
    store = ("FRESHWAY MARKET", "CORNER HARDWARE", "BEANS & BREW", "FRESHWAY MARKET")[v]
    w = 560
    items = rng.sample(_GROCERIES, rng.randint(5, 9)) if v != 2 else \
        [("FLAT WHITE", 3.20), ("OAT LATTE", 3.60), ("ALMOND CROISSANT", 2.95), ("SPARKLING WATER", 1.80)]
    if v == 1:
        items = [("WOOD SCREWS 4X40 (200)", 6.49), ("CABLE TIES 100PK", 3.99), ("SANDPAPER ASSORTED", 4.25),
                 ("MASKING TAPE 25MM", 2.49), ("LED BULB E27 9W", 3.75)]
    h = 660 + 34 * len(items)
    img = Image.new("RGB", (w, h), (252, 252, 248))
    d = ImageDraw.Draw(img)
    size = 21
    y = 36
    _t(d, (w / 2, y), store, 30, "mono_bold", anchor="ma")
    y += 48
    vat_reg = f"VAT REG {rng.randint(100, 999)} {rng.randint(1000, 9999)} {rng.randint(10, 99)}"
    for line in (f"{rng.randint(1, 99)} MARKET SQUARE, {rng.choice(UK_TOWNS).upper()}", vat_reg):
        _t(d, (w / 2, y), line, 18, "mono", anchor="ma")
        y += 28
    when = _date(rng, 2024, 2025)
    y += 12
    _t(d, (30, y), f"{_uk_date(when)}  {rng.randint(8, 21):02d}:{rng.randint(0, 59):02d}", size, "mono")
    _t(d, (w - 30, y), f"TILL {rng.randint(1, 9)}  #{rng.randint(1000, 9999)}", size, "mono", anchor="ra")
    y += 44
    total = 0.0
    for name, price in items:
        qty = rng.choice((1, 1, 1, 2))
        _t(d, (30, y), f"{qty} {name}"[:30], size, "mono")
        _t(d, (w - 30, y), f"{price * qty:.2f}", size, "mono", anchor="ra")
        total += price * qty
        y += 34
    y += 10
    _t(d, (30, y), "-" * 38, size, "mono")
    y += 34
    vat = total / 6
    for label, value, style in (("SUBTOTAL", total - vat, "mono"), ("VAT 20%", vat, "mono"),
                                ("TOTAL", total, "mono_bold")):
        _t(d, (30, y), label, size + (6 if label == "TOTAL" else 0), style)
        _t(d, (w - 30, y), f"£{value:.2f}", size + (6 if label == "TOTAL" else 0), style, anchor="ra")
        y += 38
    last4 = f"{rng.randint(0, 9999):04d}"
    order = _not_luhn(rng, 16, rng.choice(("4", "5", "3")))
    y += 10
    for line in (f"{rng.choice(('VISA', 'MASTERCARD', 'DEBIT'))} CONTACTLESS", f"CARD **** **** **** {last4}",
                 f"AUTH CODE {rng.randint(100000, 999999)}", f"ORDER {_group(order, (4, 4, 4, 4))}",
                 f"TERMINAL {rng.randint(10000000, 99999999)}"):
        _t(d, (30, y), line, size, "mono")
        y += 32
    y += 20
    _t(d, (w / 2, y), "THANK YOU FOR SHOPPING WITH US", 19, "mono", anchor="ma")
    _t(d, (w / 2, y + 30), "RETURNS WITHIN 28 DAYS WITH RECEIPT", 18, "mono", anchor="ma")
    decoys = (order,)
    desc = f"{store.lower()} till receipt with items, totals, masked card and order number"
    if v == 3:
        return _Drawn(_jpeg(_photo(img, rng, surface=(40, 44, 50), pad=0.1, width=620), 78), desc + " (photo)",
                      decoys=decoys, jpeg=True)
    if v == 2:
        return _Drawn(_scale(img, 420), desc + " (small)", decoys=decoys)
    return _Drawn(_noise(img, rng, 4), desc, decoys=decoys)


def _timetable(rng: random.Random, variant: int) -> _Drawn:
    """Bus timetables, a departures board and a ferry schedule."""
    v = variant % 3
    if v == 1:  # departure board, amber on black
        w, h = 1280, 720
        img = Image.new("RGB", (w, h), (12, 12, 14))
        d = ImageDraw.Draw(img)
        amber = (255, 176, 40)
        hh, mm = rng.randint(6, 20), rng.randint(0, 30)
        _t(d, (40, 30), "DEPARTURES", 48, "bold", amber)
        _t(d, (w - 40, 30), f"{hh:02d}:{mm:02d}", 48, "mono_bold", amber, anchor="ra")
        for x, head in ((40, "Time"), (200, "Destination"), (800, "Plat"), (960, "Expected")):
            _t(d, (x, 120), head, 28, "bold", (200, 200, 200))
        dests = ("Kingsmere", "Eastbridge Parkway", "Lowerton", "Airport", "Fernhollow", "Marlow Vale",
                 "Thistlecombe", "Ashbury Central")
        for i, dest in enumerate(rng.sample(dests, 7)):
            mm += rng.randint(3, 14)
            t = f"{hh + mm // 60:02d}:{mm % 60:02d}"
            y = 180 + i * 68
            _t(d, (40, y), t, 34, "mono_bold", amber)
            _t(d, (200, y), dest, 34, "bold", amber)
            _t(d, (800, y), str(rng.randint(1, 12)), 34, "mono_bold", amber)
            _t(d, (960, y), rng.choice(("On time", "On time", f"{hh + (mm + 6) // 60:02d}:{(mm + 6) % 60:02d}",
                                        "Delayed", "Cancelled")), 34, "bold", amber)
        return _Drawn(_jpeg(_noise(img, rng, 8), 80), "station departures board (amber on black)", jpeg=True)
    w, h = 1000, 1200 if v == 0 else 900
    img = Image.new("RGB", (w, h), WHITE)
    d = ImageDraw.Draw(img)
    if v == 0:
        route = rng.randint(4, 99)
        d.rectangle([0, 0, w, 110], fill=(200, 30, 40))
        _t(d, (40, 55), str(route), 64, "bold", WHITE, anchor="lm")
        _t(d, (160, 55), "Central Station - Riverside - Airport", 32, "bold", WHITE, anchor="lm")
        stops = ("Central Station", "Market Square", "Riverside", "Hospital", "Retail Park", "Airport")
        _t(d, (40, 140), "Monday to Friday", 26, "bold")
        for i, stop in enumerate(stops):
            y = 200 + i * 60
            if i % 2 == 0:
                d.rectangle([30, y - 10, w - 30, y + 40], fill=(246, 240, 240))
            _t(d, (40, y), stop, 24)
            start = 6 * 60 + rng.randint(0, 10) + i * 7
            for k in range(6):
                t = start + k * 20
                _t(d, (330 + k * 105, y), f"{t // 60:02d}:{t % 60:02d}", 24, "mono")
        _t(d, (40, 600), "Then every 20 minutes until 19:40", 24, "oblique")
        _t(d, (40, 650), "Saturday: every 30 minutes 07:15 - 18:45    Sunday: no service", 22, "sans", GREY)
        _t(d, (40, 720), "Timetable valid from 2 September. Times are approximate.", 22, "sans", GREY)
        return _Drawn(img, "bus route timetable with stops and departure times")
    _t(d, (w / 2, 50), "Island Ferry Timetable", 44, "serif_bold", (20, 70, 120), anchor="ma")
    _t(d, (w / 2, 115), "Summer season 1 May - 30 September", 24, "serif_italic", GREY, anchor="ma")
    for x, head in ((80, "Depart harbour"), (420, "Arrive island"), (720, "Return")):
        _t(d, (x, 190), head, 26, "bold", (20, 70, 120))
    t = 7 * 60 + 30
    for i in range(8):
        y = 250 + i * 64
        _t(d, (80, y), f"{t // 60:02d}:{t % 60:02d}", 28, "mono")
        _t(d, (420, y), f"{(t + 45) // 60:02d}:{(t + 45) % 60:02d}", 28, "mono")
        _t(d, (720, y), f"{(t + 75) // 60:02d}:{(t + 75) % 60:02d}", 28, "mono")
        t += rng.choice((60, 90, 90, 120))
    _t(d, (80, 790), "Adult return €18 · Child €9 · Bicycle €4", 24)
    _t(d, (80, 834), "Crossings may be cancelled in high winds.", 22, "sans", GREY)
    return _Drawn(img, "ferry timetable with times and fares")


def _product_label(rng: random.Random, variant: int) -> _Drawn:
    """Nutrition facts and product labels with barcodes, lot numbers and best-before dates."""
    v = variant % 3
    ean = _ean13(rng, rng.choice(("50", "40", "87", "76")))
    if v == 0:
        w, h = 640, 1060
        img = Image.new("RGB", (w, h), WHITE)
        d = ImageDraw.Draw(img)
        d.rectangle([20, 20, w - 20, h - 20], outline=INK, width=4)
        _t(d, (40, 36), "Nutrition Facts", 52, "bold")
        _t(d, (40, 110), "8 servings per container", 24)
        _t(d, (40, 146), "Serving size", 28, "bold")
        _t(d, (w - 40, 146), "2/3 cup (55g)", 28, "bold", anchor="ra")
        d.rectangle([40, 190, w - 40, 206], fill=INK)
        _t(d, (40, 220), "Calories", 40, "bold")
        _t(d, (w - 40, 214), str(rng.randint(140, 260)), 52, "bold", anchor="ra")
        d.rectangle([40, 280, w - 40, 288], fill=INK)
        _t(d, (w - 40, 296), "% Daily Value*", 22, "bold", anchor="ra")
        rows = (("Total Fat", f"{rng.randint(2, 12)}g"), ("  Saturated Fat", f"{rng.randint(0, 4)}g"),
                ("Cholesterol", "0mg"), ("Sodium", f"{rng.randint(50, 300)}mg"),
                ("Total Carbohydrate", f"{rng.randint(20, 45)}g"), ("  Dietary Fiber", f"{rng.randint(1, 8)}g"),
                ("  Total Sugars", f"{rng.randint(2, 16)}g"), ("Protein", f"{rng.randint(2, 9)}g"))
        y = 334
        for name, amount in rows:
            d.line([40, y - 6, w - 40, y - 6], fill=INK, width=1)
            _t(d, (40, y), f"{name} {amount}", 24, "bold" if not name.startswith(" ") else "sans")
            _t(d, (w - 40, y), f"{rng.randint(0, 25)}%", 24, "bold", anchor="ra")
            y += 44
        d.rectangle([40, y, w - 40, y + 10], fill=INK)
        y += 24
        for vit in ("Vitamin D 2mcg 10%", "Calcium 260mg 20%", "Iron 8mg 45%", "Potassium 240mg 6%"):
            _t(d, (40, y), vit, 22)
            y += 36
        _paragraph(d, 40, y + 10, "* The % Daily Value tells you how much a nutrient in a serving of food "
                   "contributes to a daily diet. 2,000 calories a day is used for general nutrition advice.", 18,
                   "sans", w - 80)
        return _Drawn(img, "nutrition facts panel with calories and daily values")
    w, h = 1100, 700
    bg = (246, 236, 214) if v == 1 else (226, 240, 246)
    img = Image.new("RGB", (w, h), bg)
    d = ImageDraw.Draw(img)
    if v == 1:
        _t(d, (60, 50), "Hillside Orchard", 30, "serif_italic", (120, 40, 40))
        _t(d, (60, 96), "Strawberry Jam", 64, "serif_bold", (150, 20, 40))
        ingredients = ("Ingredients: strawberries (55%), sugar, lemon juice, gelling agent: pectin. Prepared with "
                       "55g of fruit per 100g. Total sugar content 60g per 100g. Once opened, keep refrigerated "
                       "and eat within 4 weeks.")
        net = "340 g"
    else:
        _t(d, (60, 50), "AQUA PURE", 30, "bold", (20, 90, 130))
        _t(d, (60, 96), "Gentle Daily Shampoo", 56, "bold", (20, 60, 100))
        ingredients = ("Ingredients: aqua, sodium laureth sulfate, cocamidopropyl betaine, glycerin, sodium chloride, "
                       "citric acid, parfum, sodium benzoate. For external use only. Avoid contact with eyes.")
        net = "250 ml"
    _paragraph(d, 60, 200, ingredients, 22, "sans", 620)
    lot = f"LOT {rng.randint(10, 99)}{rng.randint(100, 999)}{rng.choice('ABCDEFG')}"
    bb = _date(rng, 2026, 2028)
    _t(d, (60, 470), f"Best before: {bb.month:02d}/{bb.year}" if v == 1 else "Use within 12 months of opening", 24,
       "bold")
    _t(d, (60, 510), lot, 24, "mono")
    _t(d, (60, 560), net, 44, "bold")
    d.rectangle([730, 420, 1050, 640], fill=WHITE)
    _barcode(d, 760, 440, 260, 140, ean, rng)
    _t(d, (760, 200), f"Made in {rng.choice(('Kingsmere', 'Lowerton', 'Eastbridge'))}", 22)
    _t(d, (760, 240), "www.example.com", 22, "sans", GREY)
    img = _jpeg(_photo(img, rng, surface=(200, 200, 196), pad=0.04, width=1100), 84)
    return _Drawn(img, f"{'jam jar' if v == 1 else 'shampoo'} label with ingredients, lot number and EAN-13 barcode",
                  decoys=(ean,), jpeg=True)


def _poster(rng: random.Random, variant: int) -> _Drawn:
    """Event posters: dates, times, venues, prices and a web address, no people."""
    v = variant % 3
    w, h = 900, 1270
    if v == 0:
        img = _gradient((w, h), (20, 24, 60), (120, 40, 90))
        d = ImageDraw.Draw(img)
        for _ in range(40):
            x, y, r = rng.randint(0, w), rng.randint(0, 500), rng.randint(1, 3)
            d.ellipse([x - r, y - r, x + r, y + r], fill=(255, 240, 200))
        _t(d, (w / 2, 200), "HARBOUR LIGHTS", 76, "bold", (255, 210, 120), anchor="ma")
        _t(d, (w / 2, 300), "JAZZ FESTIVAL", 64, "bold", WHITE, anchor="ma")
        _t(d, (w / 2, 460), "14 - 16 JUNE 2025", 54, "bold", (255, 210, 120), anchor="ma")
        for i, line in enumerate(("Three nights · Twelve bands · One harbour", "Gates open 18:00 · Music until 23:30",
                                  "Old Customs Quay, Eastbridge", "Day ticket €25 · Weekend pass €60")):
            _t(d, (w / 2, 600 + i * 64), line, 32, "sans", WHITE, anchor="ma")
        _t(d, (w / 2, h - 120), "www.example.org/harbourlights", 30, "bold", (255, 210, 120), anchor="ma")
        return _Drawn(img, "jazz festival poster with dates, times, venue and ticket prices")
    if v == 1:
        img = Image.new("RGB", (w, h), (244, 236, 210))
        d = ImageDraw.Draw(img)
        d.rectangle([40, 40, w - 40, h - 40], outline=(60, 110, 50), width=8)
        _t(d, (w / 2, 130), "Farmers'", 90, "serif_bold", (60, 110, 50), anchor="ma")
        _t(d, (w / 2, 250), "Market", 90, "serif_bold", (60, 110, 50), anchor="ma")
        _t(d, (w / 2, 420), "Every Saturday", 54, "bold", (150, 70, 30), anchor="ma")
        _t(d, (w / 2, 500), "8:00 - 13:00", 54, "bold", (150, 70, 30), anchor="ma")
        _t(d, (w / 2, 620), "Town Hall Square, Kingsmere", 34, "serif", anchor="ma")
        for i, item in enumerate(("Local vegetables & fruit", "Bread, cheese & honey", "Hot food & coffee",
                                  "Plants and cut flowers")):
            _t(d, (w / 2, 720 + i * 56), item, 32, "serif_italic", anchor="ma")
        _t(d, (w / 2, 1080), "Free entry · Dogs welcome · Card accepted at most stalls", 24, "sans", GREY, anchor="ma")
        return _Drawn(_jpeg(_photo(img, rng, surface=(130, 130, 128), pad=0.05, width=820), 82),
                      "farmers' market poster photographed on a wall", jpeg=True)
    img = Image.new("RGB", (w, h), WHITE)
    d = ImageDraw.Draw(img)
    d.rectangle([0, 0, w, 420], fill=(0, 110, 140))
    _t(d, (60, 80), "PUBLIC LECTURE", 36, "bold", (200, 240, 250))
    _paragraph(d, 60, 150, "The Physics of Clouds: why they float, and why they fall", 52, "bold", w - 120, WHITE, 1.2)
    rows = (("When", "Thursday 3 October, 19:00 - 20:30"), ("Where", "Lecture Theatre B204, Science Building"),
            ("Entry", "Free, no booking needed"), ("Access", "Step-free entrance on Mill Lane"))
    for i, (k, val) in enumerate(rows):
        _t(d, (60, 500 + i * 90), k, 28, "bold", (0, 110, 140))
        _t(d, (220, 500 + i * 90), val, 28)
    _t(d, (60, 900), "Part of the Autumn Science Series 2025", 28, "oblique", GREY)
    _t(d, (60, 960), "Next: 17 October - Volcanoes and the weather", 26, "sans", GREY)
    return _Drawn(img, "public lecture poster with date, time and room")


def _whiteboard_math(rng: random.Random, variant: int) -> _Drawn:
    """Whiteboards with maths: formulas and numbers that are not identifiers."""
    w, h = 1280, 860
    img = _noise(_gradient((w, h), (250, 250, 252), (226, 230, 234), horizontal=True), rng, 5)
    d = ImageDraw.Draw(img)
    blue, black, red = (30, 70, 170), (25, 25, 30), (190, 30, 40)
    if variant % 2 == 0:
        a, b, c = rng.randint(1, 4), rng.choice((-7, -5, -3, -2, 2, 3, 5, 8)), rng.randint(-12, -1)
        lines = ((f"Solve {a}x² {'+' if b > 0 else '-'} {abs(b)}x - {-c} = 0", blue, 44),
                 ("x = (-b ± √(b² - 4ac)) / 2a", black, 44),
                 (f"b² - 4ac = {b * b} - 4·{a}·({c}) = {b * b - 4 * a * c}", black, 40),
                 (f"x₁ ≈ {(-b + math.sqrt(b * b - 4 * a * c)) / (2 * a):.3f}", red, 40),
                 (f"x₂ ≈ {(-b - math.sqrt(b * b - 4 * a * c)) / (2 * a):.3f}", red, 40))
    else:
        lines = (("f(x) = 3x² + 2x - 5", blue, 46), ("f'(x) = 6x + 2", black, 44), ("∫₀¹ x² dx = 1/3", black, 44),
                 ("lim (1 + 1/n)ⁿ = e ≈ 2.71828", red, 42), ("[1 2; 3 4] · [5; 6] = [17; 39]", black, 42))
    y = 90
    for text, color, size in lines:
        _t(d, (90, y), text, size, "oblique", color)
        y += size + 70
    _t(d, (w - 90, h - 90), "HW: p. 142, ex. 3-9", 34, "oblique", blue, anchor="rd")
    return _Drawn(_jpeg(_photo(img, rng, surface=(150, 140, 128), pad=0.03, width=1200), 82),
                  "whiteboard with maths working", jpeg=True)


def _invoice(rng: random.Random, variant: int) -> _Drawn:
    """Invoices from one company to another: amounts, VAT, PO numbers, no person named."""
    seller, buyer = rng.sample(("Brightwater Logistics Ltd", "Copperleaf Studios GmbH", "Northwind Trading Co.",
                                "Kestrel Analytics B.V.", "Lowerton Print Works Ltd"), 2)
    w, h = 900, 1270
    img = Image.new("RGB", (w, h), WHITE)
    d = ImageDraw.Draw(img)
    accent = ((30, 60, 110), (20, 110, 90), (90, 60, 140))[variant % 3]
    _t(d, (60, 60), seller, 30, "bold", accent)
    for i, line in enumerate((f"{rng.randint(1, 90)} {rng.choice(STREETS)}", f"{rng.choice(UK_TOWNS)} Business Park",
                              f"Company no. {rng.randint(1000000, 9999999):08d}")):
        _t(d, (60, 106 + i * 28), line, 18, "sans", GREY)
    _t(d, (w - 60, 60), "INVOICE", 48, "bold", accent, anchor="ra")
    number = f"INV-{rng.choice((2024, 2025))}-{rng.randint(1, 999):04d}"
    issued = _date(rng, 2024, 2025)
    po = _not_luhn(rng, 12)
    meta = (("Invoice no.", number), ("Date", _dmy(issued)), ("Due", _dmy(issued + dt.timedelta(days=30))),
            ("PO number", po))
    for i, (k, val) in enumerate(meta):
        _t(d, (560, 140 + i * 32), k, 18, "bold")
        _t(d, (w - 60, 140 + i * 32), val, 18, anchor="ra")
    _t(d, (60, 300), "Bill to", 20, "bold", accent)
    _t(d, (60, 330), buyer, 22, "bold")
    _t(d, (60, 362), "Accounts Payable", 20)
    _t(d, (60, 392), f"{rng.randint(1, 90)} {rng.choice(STREETS)}, {rng.choice(UK_TOWNS)}", 20)
    y = 470
    d.rectangle([60, y, w - 60, y + 40], fill=_shade(accent, 1.85))
    for x, head, anchor in ((74, "Description", "lm"), (560, "Qty", "rm"), (690, "Unit", "rm"),
                            (w - 74, "Amount", "rm")):
        _t(d, (x, y + 20), head, 19, "bold", anchor=anchor)
    y += 60
    services = (("Warehouse storage, pallet-weeks", 40, 3.5), ("Courier collection", 6, 18.0),
                ("Design retainer, March", 1, 2400.0), ("Print run, A5 leaflets (5,000)", 1, 385.0),
                ("Data pipeline maintenance (hours)", 12, 95.0), ("Freight, Eastbridge to Lowerton", 3, 210.0),
                ("Licence renewal, analytics seats", 10, 29.0))
    subtotal = 0.0
    for desc, qty, unit in rng.sample(services, 5):
        qty = max(1, qty + rng.randint(-1, 3))
        amount = qty * unit
        subtotal += amount
        _t(d, (74, y), desc, 19)
        _t(d, (560, y), str(qty), 19, anchor="ra")
        _t(d, (690, y), f"{unit:,.2f}", 19, anchor="ra")
        _t(d, (w - 74, y), f"{amount:,.2f}", 19, anchor="ra")
        y += 44
    y += 20
    d.line([460, y, w - 60, y], fill=(200, 200, 200), width=2)
    y += 20
    for k, val, style in (("Subtotal", subtotal, "sans"), ("VAT 20%", subtotal * 0.2, "sans"),
                          ("Total due (GBP)", subtotal * 1.2, "bold")):
        _t(d, (480, y), k, 21, style)
        _t(d, (w - 74, y), f"{val:,.2f}", 21, style, anchor="ra")
        y += 40
    _t(d, (60, h - 180), "Payment terms: 30 days from invoice date.", 19)
    _t(d, (60, h - 150), f"Please quote {number} with your payment.", 19)
    _t(d, (60, h - 90), "Thank you for your business. www.example.com", 18, "sans", GREY)
    desc = "company-to-company invoice with line items, VAT and PO number"
    if variant % 3 == 2:
        return _Drawn(_jpeg(_scale(img, 760), 70), desc + " (compressed)", decoys=(po,), jpeg=True)
    return _Drawn(img, desc, decoys=(po,))


def _map(rng: random.Random, variant: int) -> _Drawn:
    """Street maps with street names, a park, a river and landmarks."""
    w, h = 1200, 900
    img = Image.new("RGB", (w, h), (242, 238, 228))
    d = ImageDraw.Draw(img)
    river_y = rng.randint(560, 700)
    d.polygon([(0, river_y), (w, river_y - 120), (w, river_y - 40), (0, river_y + 70)], fill=(170, 205, 235))
    d.rectangle([600, 150, 840, 250], fill=(196, 226, 180))
    _t(d, (720, 200), "Riverside Park" if variant % 2 == 0 else "Linden Gardens", 22, "oblique", (50, 100, 40),
       anchor="mm")
    names_h = rng.sample(("Harbour Road", "Market Street", "Mill Lane", "Station Parade", "Church Walk"), 3)
    names_v = rng.sample(("Kestrel Lane", "Wren Street", "Quarry Hill", "Ferry Lane", "Elm Street"), 3)
    road, edge, label_ink = WHITE, (200, 196, 186), (70, 70, 80)
    for i in range(3):
        y = 90 + i * 190
        d.rectangle([0, y, w, y + 34], fill=road, outline=edge)
    for i, name in enumerate(names_v):
        x = 200 + i * 340
        d.rectangle([x, 0, x + 34, h], fill=road, outline=edge)
        label = Image.new("RGBA", (150, 34), (0, 0, 0, 0))
        _t(ImageDraw.Draw(label), (75, 17), name, 20, "sans", label_ink, anchor="mm")
        label = label.rotate(90, expand=True)
        img.paste(label, (x, 317 + (i % 2) * 190 if i != 1 else 128), label)
    for i, name in enumerate(names_h):
        _t(d, (250 + ((i + variant) % 3) * 340, 90 + i * 190 + 17), name, 20, "sans", label_ink, anchor="lm")
    for (x, y), poi in zip(((280, 180), (600, 380), (300, 400)), rng.sample(
            ("Central Library", "Museum of Transport", "Station", "Town Hall", "Swimming Pool"), 3), strict=True):
        d.ellipse([x - 12, y - 12, x + 12, y + 12], fill=(200, 50, 50))
        _t(d, (x + 20, y), poi, 22, "bold", (60, 40, 40), anchor="lm")
    _t(d, (40, river_y + 20), "River Lowe", 26, "serif_italic", (40, 90, 150))
    d.rectangle([w - 240, h - 60, w - 40, h - 50], fill=INK)
    _t(d, (w - 140, h - 70), "200 m", 20, "sans", anchor="md")
    _t(d, (w - 40, 20), "N ↑", 30, "bold", anchor="ra")
    if variant % 2:
        return _Drawn(_jpeg(img, 72), "street map screenshot with street names and landmarks", jpeg=True)
    return _Drawn(img, "street map with street names, park, river and landmarks")


def _calendar(rng: random.Random, variant: int) -> _Drawn:
    """Month calendars with work events (no names, no contact details)."""
    year, month = rng.choice(((2025, 3), (2025, 6), (2024, 11), (2025, 9)))
    w, h = 1280, 900
    img, d, top = _window((w, h), f"Calendar - {FULL_MONTHS[month - 1]} {year}", variant % 2 == 1)
    dark = variant % 2 == 1
    fg = (225, 226, 230) if dark else INK
    line = (70, 72, 80) if dark else (220, 222, 226)
    _t(d, (30, top + 20), f"{FULL_MONTHS[month - 1]} {year}", 36, "bold", fg)
    cell_w, cell_h = (w - 60) / 7, 122
    for i, name in enumerate(("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")):
        _t(d, (30 + i * cell_w + 8, top + 80), name, 20, "bold", (140, 140, 150))
    first = dt.date(year, month, 1)
    offset = first.weekday()
    days = (dt.date(year + month // 12, month % 12 + 1, 1) - first).days
    events = {rng.randint(1, days): e for e in ("Review 14:00", "Release v4.2", "Lunch 12:30", "Q3 planning",
                                                  "Office closed", "Fire drill 11:00")}
    for day in range(1, days + 1):
        idx = offset + day - 1
        x, y = 30 + (idx % 7) * cell_w, top + 112 + (idx // 7) * cell_h
        d.rectangle([x, y, x + cell_w, y + cell_h], outline=line)
        _t(d, (x + 10, y + 8), str(day), 22, "sans", fg)
        if day in events:
            d.rounded_rectangle([x + 6, y + 44, x + cell_w - 6, y + 76], radius=6, fill=(66, 133, 244))
            _t(d, (x + 12, y + 60), events[day], 16, "sans", WHITE, anchor="lm")
    return _Drawn(img, f"month calendar ({FULL_MONTHS[month - 1]} {year}) with work events")


def _recipe(rng: random.Random, variant: int) -> _Drawn:
    """Recipe cards: ingredients with quantities and numbered steps."""
    if variant % 2 == 0:
        title, ingredients, steps = "Roasted Tomato Soup", (
            "1 kg ripe tomatoes, halved", "1 red onion, quartered", "4 garlic cloves", "2 tbsp olive oil",
            "500 ml vegetable stock", "1 tsp smoked paprika", "Salt and pepper"), (
            "Heat the oven to 200 °C (180 °C fan).", "Roast tomatoes, onion and garlic with the oil for 35 min.",
            "Blend with the stock and paprika until smooth.", "Simmer 10 min, season and serve with bread.")
        meta = "Serves 4 · 50 min"
    else:
        title, ingredients, steps = "Lemon Drizzle Loaf", (
            "225 g butter, softened", "225 g caster sugar", "4 eggs", "225 g self-raising flour",
            "Zest of 2 lemons", "Juice of 1.5 lemons", "85 g icing sugar"), (
            "Heat the oven to 180 °C and line a 900 g loaf tin.", "Beat butter and sugar, then add eggs one by one.",
            "Fold in the flour and zest; bake for 45-50 min.", "Mix juice and icing sugar; pour over the warm cake.")
        meta = "Makes 10 slices · 1 h 10 min"
    w, h = 1100, 760
    img = Image.new("RGB", (w, h), (255, 252, 245))
    d = ImageDraw.Draw(img)
    accent = (190, 70, 40) if variant % 2 == 0 else (200, 160, 20)
    d.rectangle([0, 0, w, 100], fill=accent)
    _t(d, (40, 50), title, 44, "serif_bold", WHITE, anchor="lm")
    _t(d, (w - 40, 50), meta, 22, "sans", WHITE, anchor="rm")
    _t(d, (40, 130), "Ingredients", 28, "bold", accent)
    for i, item in enumerate(ingredients):
        _t(d, (50, 180 + i * 40), f"• {item}", 21)
    _t(d, (470, 130), "Method", 28, "bold", accent)
    y = 180
    for i, step in enumerate(steps, start=1):
        _t(d, (470, y), f"{i}.", 22, "bold")
        y = _paragraph(d, 505, y, step, 21, "sans", w - 560) + 12
    return _Drawn(_photo(img, rng, surface=(160, 120, 90), pad=0.04, width=1000) if variant % 2 else img,
                  f"recipe card for {title.lower()}")


def _spreadsheet(rng: random.Random, variant: int) -> _Drawn:
    """Spreadsheets of sales figures, one with product codes (EAN-13 near-misses)."""
    w, h = 1366, 800
    img, d, top = _window((w, h), "Q1_sales.xlsx" if variant % 2 == 0 else "inventory.xlsx", False)
    d.rectangle([0, top, w, top + 44], fill=(238, 240, 243))
    formula = "=SUM(B2:D2)" if variant % 2 == 0 else "=C2*D2"
    _t(d, (14, top + 22), "fx", 18, "oblique", GREY, anchor="lm")
    _t(d, (60, top + 22), formula, 18, "mono", anchor="lm")
    y0 = top + 44
    cols = [60, 290, 470, 650, 830, 1010, 1190, w]
    d.rectangle([0, y0, w, y0 + 30], fill=(230, 232, 236))
    for i in range(len(cols) - 1):
        _t(d, ((cols[i] + cols[i + 1]) / 2, y0 + 15), "ABCDEFG"[i], 17, "sans", GREY, anchor="mm")
    decoys: list[str] = []
    if variant % 2 == 0:
        header = ("Region", "January", "February", "March", "Q1 total", "Growth")
        rows = []
        for region in ("North", "South", "East", "West", "Central", "Online", "Wholesale"):
            vals = [rng.randint(18000, 96000) for _ in range(3)]
            rows.append((region, *(f"{v:,}" for v in vals), f"{sum(vals):,}", f"{rng.uniform(-8, 15):+.1f}%"))
    else:
        header = ("Product", "EAN", "Price", "Stock", "Value", "Reorder")
        rows = []
        for product in ("Desk lamp", "Office chair", "Monitor arm", "USB-C hub", "Notebook A5", "Whiteboard pens",
                        "Cable tray"):
            ean = _ean13(rng, "50")
            decoys.append(ean)
            price, stock = rng.uniform(2, 180), rng.randint(0, 400)
            rows.append((product, ean, f"{price:.2f}", str(stock), f"{price * stock:,.2f}",
                         "yes" if stock < 50 else "no"))
    for r, row in enumerate((header, *rows)):
        y = y0 + 30 + r * 44
        d.rectangle([0, y, cols[0], y + 44], fill=(230, 232, 236))
        _t(d, (cols[0] / 2, y + 22), str(r + 1), 17, "sans", GREY, anchor="mm")
        for i, cell in enumerate(row):
            d.rectangle([cols[i], y, cols[i + 1], y + 44], outline=(214, 216, 220))
            right = (i > 0 and cell[:1].isdigit()) or cell[:1] in "+-"
            _t(d, (cols[i + 1] - 10 if right else cols[i] + 10, y + 22), cell, 19, "bold" if r == 0 else "sans",
               anchor="rm" if right else "lm")
    return _Drawn(img, "spreadsheet of " + ("regional sales figures" if variant % 2 == 0 else "stock with EAN codes"),
                  decoys=tuple(decoys))


def _error_dialog(rng: random.Random, variant: int) -> _Drawn:
    """Error dialogs with file names, error codes and version numbers."""
    w, h = 1100, 700
    img = _gradient((w, h), (40, 90, 140), (90, 150, 190), horizontal=True)
    d = ImageDraw.Draw(img)
    box = (200, 160, 900, 540)
    d.rectangle([box[0] + 8, box[1] + 10, box[2] + 8, box[3] + 10], fill=(20, 40, 60))
    d.rectangle(box, fill=(246, 246, 246))
    d.rectangle([box[0], box[1], box[2], box[1] + 44], fill=(225, 225, 228))
    if variant % 2 == 0:
        _t(d, (box[0] + 16, box[1] + 22), "Spreadsheet Editor", 19, "sans", anchor="lm")
        d.ellipse([box[0] + 30, box[1] + 80, box[0] + 94, box[1] + 144], fill=(210, 40, 40))
        _t(d, (box[0] + 62, box[1] + 112), "×", 44, "bold", WHITE, anchor="mm")
        _t(d, (box[0] + 120, box[1] + 80), "The file could not be opened.", 24, "bold")
        _paragraph(d, box[0] + 120, box[1] + 124, f"'report_Q{rng.randint(1, 4)}_final.xlsx' is locked for editing "
                   "by another process. Close other programs and try again.", 20, "sans", 540)
        _t(d, (box[0] + 120, box[1] + 230), f"Error code: 0x8007{rng.randint(0, 0xFFFF):04X}", 19, "mono", GREY)
        buttons = ("Retry", "Cancel")
    else:
        _t(d, (box[0] + 16, box[1] + 22), "Problem Report", 19, "sans", anchor="lm")
        d.rounded_rectangle([box[0] + 30, box[1] + 80, box[0] + 94, box[1] + 144], radius=14, fill=(240, 170, 30))
        _t(d, (box[0] + 62, box[1] + 112), "!", 44, "bold", WHITE, anchor="mm")
        _t(d, (box[0] + 120, box[1] + 80), "PhotoSort quit unexpectedly.", 24, "bold")
        _paragraph(d, box[0] + 120, box[1] + 124, "Click Reopen to open the application again. Your library was "
                   "saved automatically 2 minutes ago.", 20, "sans", 540)
        _t(d, (box[0] + 120, box[1] + 230), f"Version 3.{rng.randint(0, 9)}.{rng.randint(0, 20)} "
           f"(build {rng.randint(1000, 9999)})", 19, "mono", GREY)
        buttons = ("Ignore", "Report...", "Reopen")
    bx = box[2] - 20
    for label in reversed(buttons):
        bw = _tw(label, 20) + 40
        d.rounded_rectangle([bx - bw, box[3] - 70, bx, box[3] - 26], radius=8,
                            fill=(0, 110, 220) if label == buttons[-1] else WHITE, outline=(170, 170, 176))
        _t(d, (bx - bw / 2, box[3] - 48), label, 20, "sans", WHITE if label == buttons[-1] else INK, anchor="mm")
        bx -= bw + 14
    return _Drawn(img, "desktop error dialog with an error code / version number")


def _weather(rng: random.Random, variant: int) -> _Drawn:
    """Weather widgets: city, temperatures, hourly and daily forecast."""
    city = ("Lisbon", "Kingsmere", "Oslo", "Eastbridge")[variant % 4]
    w, h = 760, 1000 if variant % 2 == 0 else 620
    top_c, bottom_c = ((60, 120, 200), (130, 190, 240)) if variant % 2 == 0 else ((40, 50, 80), (90, 100, 140))
    img = _gradient((w, h), top_c, bottom_c)
    d = ImageDraw.Draw(img)
    now = rng.randint(6, 28)
    _t(d, (w / 2, 60), city, 44, "sans", WHITE, anchor="ma")
    _t(d, (w / 2, 120), f"{now}°", 120, "sans", WHITE, anchor="ma")
    _t(d, (w / 2, 270), rng.choice(("Partly cloudy", "Sunny intervals", "Light rain", "Clear")), 30, "sans", WHITE,
       anchor="ma")
    _t(d, (w / 2, 316), f"H:{now + rng.randint(1, 5)}°  L:{now - rng.randint(3, 9)}°", 28, "sans", WHITE, anchor="ma")
    hour = rng.randint(6, 16)
    for i in range(6):
        x = 70 + i * 124
        _t(d, (x, 390), "Now" if i == 0 else f"{hour + i:02d}:00", 22, "sans", WHITE, anchor="ma")
        _t(d, (x, 440), f"{now + rng.randint(-2, 3)}°", 28, "bold", WHITE, anchor="ma")
    if variant % 2 == 0:
        d.line([40, 500, w - 40, 500], fill=(200, 220, 240), width=1)
        for i, day in enumerate(("Today", "Tue", "Wed", "Thu", "Fri", "Sat")):
            y = 530 + i * 70
            _t(d, (50, y), day, 28, "sans", WHITE)
            _t(d, (380, y), f"{rng.randint(0, 80)}%", 24, "sans", (200, 230, 255))
            _t(d, (w - 50, y), f"{now - rng.randint(2, 8)}°  {now + rng.randint(0, 6)}°", 28, "sans", WHITE,
               anchor="ra")
    return _Drawn(img, f"weather widget for {city} with hourly and daily forecast")


# =============================================================================================== registry

Builder = Callable[[random.Random, int], _Drawn]

#: (kind, builder, how many variants) for each sensitive kind; the builder decides the expected category.
SENSITIVE_KINDS: tuple[tuple[str, Builder, int], ...] = (
    ("payment_card", _payment_card, 6),
    ("driving_licence", _driving_licence, 3),
    ("national_id_card", _national_id, 3),
    ("passport", _passport, 4),
    ("lab_report", _lab_report, 3),
    ("prescription", _prescription, 3),
    ("xray", _xray, 3),
    ("terminal_secret", _terminal_secret, 6),
    ("sticky_note_password", _sticky_note, 4),
    ("bank_statement", _bank_statement, 3),
    ("email", _email, 4),
    ("tax_form", _w2, 3),
    ("payslip", _payslip, 4),
)

BENIGN_KINDS: tuple[tuple[str, Builder, int], ...] = (
    ("menu", _menu, 3),
    ("sign", _sign, 3),
    ("slide", _slide, 3),
    ("chart", _chart, 3),
    ("book_page", _book_page, 3),
    ("code", _code, 4),
    ("receipt", _receipt, 4),
    ("timetable", _timetable, 3),
    ("product_label", _product_label, 3),
    ("poster", _poster, 3),
    ("whiteboard_math", _whiteboard_math, 2),
    ("invoice", _invoice, 3),
    ("map", _map, 2),
    ("calendar", _calendar, 2),
    ("recipe", _recipe, 2),
    ("spreadsheet", _spreadsheet, 2),
    ("error_dialog", _error_dialog, 2),
    ("weather", _weather, 2),
)

_SEED = "fastvlm-privacy-corpus-v1"


@functools.lru_cache(maxsize=1)
def _specs() -> tuple[tuple[str, str, Builder, int, bool], ...]:
    """(name, kind, builder, variant, sensitive) for every sample; numbers are shuffled so names say nothing."""
    plan = [(kind, b, i, True) for kind, b, n in SENSITIVE_KINDS for i in range(n)]
    plan += [(kind, b, i, False) for kind, b, n in BENIGN_KINDS for i in range(n)]
    rng = random.Random(f"{_SEED}:names")
    numbers = rng.sample(range(1000, 10000), len(plan))
    out = []
    for (kind, builder, variant, sensitive), number in zip(plan, numbers, strict=True):
        out.append((f"IMG_{number}", kind, builder, variant, sensitive))
    return tuple(out)


def _render(name: str, kind: str, builder: Builder, variant: int, sensitive: bool) -> Sample:
    """Build one sample from its own seeded generator, so samples do not depend on each other."""
    drawn = builder(random.Random(f"{_SEED}:{kind}:{variant}"), variant)
    expected = drawn.expected if sensitive else "none"
    if sensitive and expected not in EXPECTED:
        raise ValueError(f"{kind} #{variant}: unknown category {expected!r}")
    if not sensitive and drawn.truth:
        raise ValueError(f"{kind} #{variant}: benign samples carry no sensitive values")
    image = drawn.image if drawn.image.mode == "RGB" else drawn.image.convert("RGB")
    ext = "jpg" if drawn.jpeg else "png"
    return Sample(f"{name}.{ext}", kind, expected, image, drawn.description, drawn.truth, drawn.decoys)


@functools.lru_cache(maxsize=1)
def _all() -> tuple[tuple[Sample, ...], tuple[Sample, ...]]:
    samples = [_render(*spec) for spec in _specs()]
    return tuple(s for s in samples if s.expected != "none"), tuple(s for s in samples if s.expected == "none")


def sensitive_pictures() -> list[Sample]:
    """Pictures the gate must keep local (cached: built once per process)."""
    return list(_all()[0])


def benign_pictures() -> list[Sample]:
    """Pictures with text and nothing sensitive, which the gate should let through (cached)."""
    return list(_all()[1])


def regenerate(name: str) -> Sample:
    """Build one sample again from scratch, bypassing the cache (for determinism checks)."""
    stem = name.rsplit(".", 1)[0]
    for spec in _specs():
        if spec[0] == stem:
            return _render(*spec)
    raise KeyError(name)


def save_all(directory: str | Path) -> list[Path]:
    """Write every picture (PNG, or high-quality JPEG for the .jpg names) and an index.tsv for eyeballing."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    rows = ["name\tkind\texpected\tdescription"]
    for s in sensitive_pictures() + benign_pictures():
        path = out / s.name
        if s.name.endswith(".jpg"):
            s.image.save(path, format="JPEG", quality=92)
        else:
            s.image.save(path, format="PNG")
        paths.append(path)
        rows.append(f"{s.name}\t{s.kind}\t{s.expected}\t{s.description}")
    (out / "index.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return paths


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python tests/privacy/corpus.py OUTPUT_DIRECTORY")
    written = save_all(sys.argv[1])
    print(f"wrote {len(written)} pictures to {sys.argv[1]}")
