"""An independent holdout corpus for the privacy egress gate: pictures rendered differently from corpus.py.

The pictures were designed from what real documents and screens look like, without reading the
detectors or the tuning corpus, and none was changed after seeing how the gate judged it. They differ
from a typical synthetic set on purpose: documents photographed on a desk (perspective, uneven light,
shadows, blur, grain, JPEG artefacts), filling only part of the frame; phone and desktop screenshots;
photographs of screens; serif, mono, condensed and hand-lettered text; German, Spanish, French, Italian
and Dutch documents; sizes from 0.3 to 2 megapixels. Identifiers carry valid checksums where the real
ones do (Luhn, ICAO 9303, IBAN mod-97, DNI letter, codice fiscale, NIR key, ABA routing, DEA, EAN-13,
GitHub token CRC32); `verify()` checks them. Every person, company and number is invented.

Rendering is deterministic: each picture draws its random numbers from `random.Random(name)`.

    python tests/privacy/holdout_corpus.py OUTDIR      # writes every picture (PNG or JPEG by its name)
"""

from __future__ import annotations

import io
import math
import random
import string
import sys
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageFont, ImageOps

RGB = tuple[int, int, int]
Truth = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Sample:
    name: str  # a camera or screenshot file name; never hints at the content
    kind: str
    description: str
    image: Image.Image = field(repr=False, compare=False)
    truth: Truth = ()  # (label, value) of the sensitive things drawn; empty for benign pictures


# =========================================================================== check digits


def luhn_ok(number: str) -> bool:
    digits = [int(c) for c in number if c.isdigit()]
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2:
            d *= 2
            d -= 9 if d > 9 else 0
        total += d
    return total % 10 == 0


def luhn_complete(prefix: str) -> str:
    """`prefix` plus the digit that makes it pass Luhn."""
    for c in "0123456789":
        if luhn_ok(prefix + c):
            return prefix + c
    raise AssertionError("unreachable")


def _icao_value(c: str) -> int:
    if c.isdigit():
        return int(c)
    if c == "<":
        return 0
    return ord(c) - ord("A") + 10


def icao_check(field_: str) -> str:
    weights = (7, 3, 1)
    return str(sum(_icao_value(c) * weights[i % 3] for i, c in enumerate(field_)) % 10)


def _iban_number(text: str) -> int:
    return int("".join(str(int(c, 36)) for c in text))


def iban(country: str, bban: str) -> str:
    check = 98 - _iban_number(bban + country + "00") % 97
    return f"{country}{check:02d}{bban}"


def iban_ok(value: str) -> bool:
    s = value.replace(" ", "")
    return _iban_number(s[4:] + s[:4]) % 97 == 1


def iban_spaced(value: str) -> str:
    return " ".join(value[i : i + 4] for i in range(0, len(value), 4))


def dni_letter(number: int) -> str:
    return "TRWAGMYFPDXBNJZSQVHLCKE"[number % 23]


_CF_ODD_DIGITS = [1, 0, 5, 7, 9, 13, 15, 17, 19, 21]
_CF_ODD = dict(zip("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ",
                   [*_CF_ODD_DIGITS, *_CF_ODD_DIGITS, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24, 23],
                   strict=True))


def cf_check(first15: str) -> str:
    """The codice fiscale's 16th character."""
    total = 0
    for i, c in enumerate(first15):
        if i % 2 == 0:  # 1st, 3rd, ... character (odd positions counting from 1)
            total += _CF_ODD[c]
        else:
            total += int(c) if c.isdigit() else ord(c) - ord("A")
    return chr(ord("A") + total % 26)


def _cf_letters(word: str, given: bool) -> str:
    word = "".join(c for c in word.upper() if c.isalpha())
    cons = [c for c in word if c not in "AEIOU"]
    vows = [c for c in word if c in "AEIOU"]
    if given and len(cons) > 3:
        cons = [cons[0], cons[2], cons[3]]
    return ("".join(cons + vows) + "XXX")[:3]


def codice_fiscale(surname: str, name: str, year: int, month: int, day: int, female: bool, town: str) -> str:
    cf = (_cf_letters(surname, False) + _cf_letters(name, True) + f"{year % 100:02d}" + "ABCDEHLMPRST"[month - 1]
          + f"{day + (40 if female else 0):02d}" + town)
    return cf + cf_check(cf)


def nir_key(nir13: str) -> str:
    return f"{97 - int(nir13) % 97:02d}"


def aba_ok(routing: str) -> bool:
    d = [int(c) for c in routing]
    return len(d) == 9 and (3 * (d[0] + d[3] + d[6]) + 7 * (d[1] + d[4] + d[7]) + d[2] + d[5] + d[8]) % 10 == 0


def aba_complete(first8: str) -> str:
    for c in "0123456789":
        if aba_ok(first8 + c):
            return first8 + c
    raise AssertionError("unreachable")


def dea_check(digits6: str) -> str:
    d = [int(c) for c in digits6]
    return str((d[0] + d[2] + d[4] + 2 * (d[1] + d[3] + d[5])) % 10)


def dea_ok(dea: str) -> bool:
    return len(dea) == 9 and dea[:2].isalpha() and dea_check(dea[2:8]) == dea[8]


def elfproef_ok(account10: str) -> bool:
    """The Dutch 11-test the 10-digit account numbers inside NL IBANs pass."""
    return sum(int(c) * w for c, w in zip(account10, range(10, 0, -1), strict=True)) % 11 == 0


def rib_key(bank: str, branch: str, account: str) -> str:
    return f"{97 - (89 * int(bank) + 15 * int(branch) + 3 * int(account)) % 97:02d}"


def ean13_check(first12: str) -> str:
    total = sum(int(c) * (3 if i % 2 else 1) for i, c in enumerate(first12))
    return str((10 - total % 10) % 10)


_B62 = string.digits + string.ascii_uppercase + string.ascii_lowercase


def github_token(rng: random.Random, prefix: str = "ghp_") -> str:
    body = "".join(rng.choice(_B62) for _ in range(30))
    crc = zlib.crc32(body.encode())
    tail = ""
    while crc:
        crc, r = divmod(crc, 62)
        tail = _B62[r] + tail
    return prefix + body + tail.rjust(6, "0")


def github_token_ok(token: str) -> bool:
    body, tail = token[4:34], token[34:]
    crc, value = zlib.crc32(body.encode()), 0
    for c in tail:
        value = value * 62 + _B62.index(c)
    return len(token) == 40 and value == crc


def mrz_td3(doc: str, nat: str, dob: str, sex: str, expiry: str, personal: str = "") -> str:
    personal = personal.ljust(14, "<")
    pc = icao_check(personal) if personal.strip("<") else "<"
    core = doc.ljust(9, "<") + icao_check(doc.ljust(9, "<"))
    line = core + nat + dob + icao_check(dob) + sex + expiry + icao_check(expiry) + personal + pc
    composite = core + dob + icao_check(dob) + expiry + icao_check(expiry) + personal + pc
    return line + icao_check(composite)


def mrz_name(surname: str, given: str, width: int) -> str:
    def clean(s: str) -> str:
        table = str.maketrans({"Ä": "AE", "Ö": "OE", "Ü": "UE", "ß": "SS", "É": "E", "È": "E", "Ç": "C", "Ñ": "N",
                               " ": "<", "-": "<", "'": ""})
        return s.upper().translate(table)

    return (clean(surname) + "<<" + clean(given)).ljust(width, "<")[:width]


def mrz_td1(country: str, doc: str, dob: str, sex: str, expiry: str, nat: str, surname: str, given: str) -> list[str]:
    l1 = ("ID" + country + doc + icao_check(doc)).ljust(30, "<")
    opt2 = "<" * 11
    l2 = dob + icao_check(dob) + sex + expiry + icao_check(expiry) + nat.ljust(3, "<") + opt2
    composite = l1[5:30] + l2[0:7] + l2[8:15] + l2[18:29]
    return [l1, l2 + icao_check(composite), mrz_name(surname, given, 30)]


def mrz_td1_ok(lines: Sequence[str]) -> bool:
    l1, l2 = lines[0], lines[1]
    return (icao_check(l1[5:14]) == l1[14] and icao_check(l2[0:6]) == l2[6] and icao_check(l2[8:14]) == l2[14]
            and icao_check(l1[5:30] + l2[0:7] + l2[8:15] + l2[18:29]) == l2[29])


def mrz_td3_ok(line2: str) -> bool:
    return (icao_check(line2[0:9]) == line2[9] and icao_check(line2[13:19]) == line2[19]
            and icao_check(line2[21:27]) == line2[27]
            and icao_check(line2[0:10] + line2[13:20] + line2[21:43]) == line2[43])


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(n))


def _chars(rng: random.Random, n: int, alphabet: str = _B62) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


# =========================================================================== drawing

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
FONTS = {
    "sans": "DejaVuSans", "sans-b": "DejaVuSans-Bold", "sans-i": "DejaVuSans-Oblique",
    "sans-bi": "DejaVuSans-BoldOblique", "sans-l": "DejaVuSans-ExtraLight",
    "serif": "DejaVuSerif", "serif-b": "DejaVuSerif-Bold", "serif-i": "DejaVuSerif-Italic",
    "serif-bi": "DejaVuSerif-BoldItalic",
    "mono": "DejaVuSansMono", "mono-b": "DejaVuSansMono-Bold", "mono-i": "DejaVuSansMono-Oblique",
    "cond": "DejaVuSansCondensed", "cond-b": "DejaVuSansCondensed-Bold", "cond-i": "DejaVuSansCondensed-Oblique",
    "scond": "DejaVuSerifCondensed", "scond-b": "DejaVuSerifCondensed-Bold", "scond-i": "DejaVuSerifCondensed-Italic",
}
Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


@lru_cache(maxsize=1024)
def font(style: str, size: int) -> Font:
    try:
        return ImageFont.truetype(str(FONT_DIR / f"{FONTS[style]}.ttf"), size)
    except OSError:
        return ImageFont.load_default(size=size)


class Page:
    """A flat document or screen being drawn, before it is photographed."""

    def __init__(self, w: int, h: int, bg: RGB = (255, 255, 255)) -> None:
        self.img = Image.new("RGB", (w, h), bg)
        self.d = ImageDraw.Draw(self.img)

    @property
    def w(self) -> int:
        return self.img.width

    @property
    def h(self) -> int:
        return self.img.height

    def text(self, x: float, y: float, s: str, size: int = 20, style: str = "sans", fill: RGB = (25, 25, 28),
             anchor: str = "la") -> float:
        f = font(style, size)
        if "\n" in s:
            self.d.multiline_text((x, y), s, font=f, fill=fill, anchor=anchor, spacing=size // 4,
                                  align="center" if anchor[0] == "m" else "left")
            return max(self.d.textlength(r, font=f) for r in s.split("\n"))
        self.d.text((x, y), s, font=f, fill=fill, anchor=anchor)
        return self.d.textlength(s, font=f)

    def length(self, s: str, size: int, style: str = "sans") -> float:
        return self.d.textlength(s, font=font(style, size))

    def lines(self, x: float, y: float, rows: Sequence[str], size: int = 20, style: str = "sans",
              fill: RGB = (25, 25, 28), gap: float = 1.45) -> float:
        for row in rows:
            self.text(x, y, row, size, style, fill)
            y += size * gap
        return y

    def wrap(self, x: float, y: float, text: str, width: float, size: int = 20, style: str = "serif",
             fill: RGB = (25, 25, 28), gap: float = 1.45, justify: bool = False) -> float:
        words, line = text.split(), []
        rows: list[list[str]] = []
        for w in words:
            if line and self.length(" ".join([*line, w]), size, style) > width:
                rows.append(line)
                line = []
            line.append(w)
        if line:
            rows.append(line)
        for i, row in enumerate(rows):
            if justify and i < len(rows) - 1 and len(row) > 1:
                used = sum(self.length(w, size, style) for w in row)
                space = (width - used) / (len(row) - 1)
                cx = x
                for w in row:
                    cx += self.text(cx, y, w, size, style, fill) + space
            else:
                self.text(x, y, " ".join(row), size, style, fill)
            y += size * gap
        return y

    def rect(self, box: Sequence[float], fill: RGB | None = None, outline: RGB | None = None, width: int = 1,
             radius: int = 0) -> None:
        if radius:
            self.d.rounded_rectangle(list(box), radius, fill=fill, outline=outline, width=width)
        else:
            self.d.rectangle(list(box), fill=fill, outline=outline, width=width)

    def hline(self, y: float, x0: float, x1: float, fill: RGB = (40, 40, 40), width: int = 1) -> None:
        self.d.line([(x0, y), (x1, y)], fill=fill, width=width)

    def vline(self, x: float, y0: float, y1: float, fill: RGB = (40, 40, 40), width: int = 1) -> None:
        self.d.line([(x, y0), (x, y1)], fill=fill, width=width)

    def gradient(self, box: Sequence[int], top: RGB, bottom: RGB, horizontal: bool = False) -> None:
        x0, y0, x1, y1 = (int(v) for v in box)
        n = (x1 - x0) if horizontal else (y1 - y0)
        for i in range(max(n, 1)):
            t = i / max(n - 1, 1)
            c = tuple(int(a + (b - a) * t) for a, b in zip(top, bottom, strict=True))
            if horizontal:
                self.d.line([(x0 + i, y0), (x0 + i, y1)], fill=c)
            else:
                self.d.line([(x0, y0 + i), (x1, y0 + i)], fill=c)

    def paste(self, img: Image.Image, x: int, y: int) -> None:
        if img.mode == "RGBA":
            self.img.paste(img, (x, y), img)
        else:
            self.img.paste(img, (x, y))


def _lerp(a: RGB, b: RGB, t: float) -> RGB:
    return (int(a[0] + (b[0] - a[0]) * t), int(a[1] + (b[1] - a[1]) * t), int(a[2] + (b[2] - a[2]) * t))


def _noise(rng: random.Random, w: int, h: int, size: tuple[int, int] | None = None) -> Image.Image:
    """Random gray cells `w`x`h`, smoothly resized to `size`."""
    img = Image.frombytes("L", (w, h), rng.randbytes(w * h))
    return img.resize(size, Image.Resampling.BICUBIC) if size else img


def _surface(kind: str, size: tuple[int, int], rng: random.Random) -> Image.Image:
    """A desk, table, wall or cloth the document lies on."""
    w, h = size
    if kind in ("wood", "oak", "walnut"):
        grain = _noise(rng, 1, max(h // 7, 4), size)
        fine = _noise(rng, max(w // 40, 2), max(h // 2, 2), size)
        gray = ImageChops.blend(grain, fine, 0.35)
        gray = ImageOps.autocontrast(gray, cutoff=1)
        colours = {"wood": ((92, 58, 32), (170, 118, 72)), "oak": ((150, 112, 70), (212, 176, 128)),
                   "walnut": ((52, 34, 22), (110, 74, 48))}[kind]
        out = ImageOps.colorize(gray, colours[0], colours[1])
        plank = max(h // rng.randint(3, 5), 60)
        d = ImageDraw.Draw(out)
        for y in range(rng.randint(0, plank), h, plank):
            d.line([(0, y), (w, y)], fill=_lerp(colours[0], (0, 0, 0), 0.4), width=2)
        return out
    colours = {
        "laminate": ((182, 182, 176), (222, 221, 214), 8, 0.25),
        "dark": ((22, 24, 28), (64, 66, 72), 12, 0.5),
        "granite": ((40, 40, 42), (120, 118, 115), 3, 0.8),
        "linen": ((150, 170, 200), (200, 214, 232), 6, 0.6),
        "plaster": ((196, 190, 178), (236, 232, 222), 10, 0.35),
        "cork": ((140, 96, 58), (206, 160, 112), 2, 0.9),
        "felt": ((40, 62, 48), (78, 104, 84), 8, 0.6),
        "glass": ((150, 160, 168), (215, 222, 228), 5, 0.2),
        "dashboard": ((18, 18, 20), (48, 48, 52), 4, 0.7),
    }
    dark, light, cells, fine_share = colours[kind]
    smooth = _noise(rng, cells, cells, size)
    fine = _noise(rng, w // 2 + 1, h // 2 + 1, size)
    gray = ImageOps.autocontrast(ImageChops.blend(smooth, fine, fine_share), cutoff=1)
    out = ImageOps.colorize(gray, dark, light)
    if kind == "linen":
        d = ImageDraw.Draw(out)
        for x in range(0, w, 5):
            d.line([(x, 0), (x, h)], fill=_lerp(dark, light, 0.45))
    return out


def brick_wall(size: tuple[int, int], rng: random.Random) -> Image.Image:
    w, h = size
    out = Image.new("RGB", size, (190, 184, 170))
    d = ImageDraw.Draw(out)
    bh, bw = 34, 96
    for row, y in enumerate(range(-4, h, bh)):
        off = (row % 2) * bw // 2
        for x in range(-bw + off, w, bw):
            base = (rng.randint(130, 170), rng.randint(58, 80), rng.randint(40, 58))
            d.rectangle([x + 3, y + 3, x + bw - 3, y + bh - 3], fill=base)
    return ImageChops.multiply(out, ImageOps.colorize(_noise(rng, w // 3 + 1, h // 3 + 1, size), (170,) * 3,
                                                      (255,) * 3))


def _solve(a: list[list[float]], b: list[float]) -> list[float]:
    n = len(b)
    m = [[*row, b[i]] for i, row in enumerate(a)]
    for col in range(n):
        piv = max(range(col, n), key=lambda r: abs(m[r][col]))
        m[col], m[piv] = m[piv], m[col]
        for r in range(n):
            if r != col:
                f = m[r][col] / m[col][col]
                for c in range(col, n + 1):
                    m[r][c] -= f * m[col][c]
    return [m[i][n] / m[i][i] for i in range(n)]


def perspective_coeffs(dst: Sequence[tuple[float, float]], src: Sequence[tuple[float, float]]) -> list[float]:
    """Coefficients for Image.transform(PERSPECTIVE) that map output points `dst` to input points `src`."""
    a, b = [], []
    for (x, y), (u, v) in zip(dst, src, strict=True):
        a.append([x, y, 1, 0, 0, 0, -x * u, -y * u])
        b.append(u)
        a.append([0, 0, 0, x, y, 1, -x * v, -y * v])
        b.append(v)
    return _solve(a, b)


@dataclass
class Item:
    """A flat picture placed in a photographed scene."""

    img: Image.Image
    cx: float  # centre, as a fraction of the frame
    cy: float
    width: float  # width on the frame, as a fraction of the frame's width
    rot: float = 0.0  # degrees, anticlockwise
    tilt: float = 0.0  # camera pitch: >0 makes the top edge narrower (farther away)
    skew: float = 0.0  # camera yaw: >0 makes the left edge shorter
    shadow: float = 0.45
    mask: Image.Image | None = None


def _corners(it: Item, fw: int, fh: int) -> list[tuple[float, float]]:
    w = it.width * fw
    h = w * it.img.height / it.img.width
    pts = [(-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2)]
    out = []
    cos, sin = math.cos(math.radians(-it.rot)), math.sin(math.radians(-it.rot))
    for x, y in pts:
        x *= 1 - it.tilt if y < 0 else 1 + it.tilt * 0.35
        y *= 1 - it.skew if x < 0 else 1 + it.skew * 0.35
        out.append((fw * it.cx + x * cos - y * sin, fh * it.cy + x * sin + y * cos))
    return out


def scene(rng: random.Random, size: tuple[int, int], ground: Image.Image | str, items: Sequence[Item], *,
          light: float = 0.3, cast: RGB = (255, 250, 240), blur: float = 0.6, grain: float = 0.12,
          quality: int = 78, glare: float = 0.0, blob: float = 0.0) -> Image.Image:
    """Photograph `items` lying on `ground`: perspective, shadows, uneven light, blur, grain, JPEG."""
    fw, fh = size
    out = ground.copy() if isinstance(ground, Image.Image) else _surface(ground, size, rng)
    out = out.resize(size) if out.size != size else out
    for it in items:
        dst = _corners(it, fw, fh)
        img = it.img
        span = max(math.dist(dst[0], dst[1]), math.dist(dst[3], dst[2])) / img.width
        mask = it.mask or Image.new("L", img.size, 255)
        if span < 0.9:  # shrink first so the perspective warp does not alias
            new = (max(int(img.width * span * 1.15), 8), max(int(img.height * span * 1.15), 8))
            img, mask = img.resize(new, Image.Resampling.LANCZOS), mask.resize(new, Image.Resampling.LANCZOS)
        src = [(0, 0), (img.width, 0), (img.width, img.height), (0, img.height)]
        coeffs = perspective_coeffs(dst, src)
        warped = img.transform(size, Image.Transform.PERSPECTIVE, coeffs, Image.Resampling.BICUBIC)
        wmask = mask.transform(size, Image.Transform.PERSPECTIVE, coeffs, Image.Resampling.BILINEAR)
        if it.shadow:
            off = int(fw * 0.008) + 2
            sh = ImageChops.offset(wmask, off, off).filter(ImageFilter.GaussianBlur(fw * 0.008 + 2))
            sh = sh.point(lambda v, s=it.shadow: int(v * s))
            out = Image.composite(Image.new("RGB", size, (0, 0, 0)), out, sh)
        out.paste(warped, (0, 0), wmask)
    if blob:  # the shadow of the phone or the photographer's hand
        shade = Image.new("L", size, 0)
        d = ImageDraw.Draw(shade)
        side = rng.choice([(0, 0), (fw, 0), (0, fh), (fw, fh)])
        r = rng.uniform(0.35, 0.55) * max(fw, fh)
        d.ellipse([side[0] - r, side[1] - r * 0.8, side[0] + r, side[1] + r * 0.8], fill=int(255 * blob))
        shade = shade.filter(ImageFilter.GaussianBlur(fw * 0.05))
        out = Image.composite(Image.new("RGB", size, (0, 0, 0)), out, shade)
    if light:
        cells = Image.frombytes("L", (3, 3), bytes(rng.randint(int(255 * (1 - light)), 255) for _ in range(9)))
        shade_l = cells.resize(size, Image.Resampling.BICUBIC)
        out = ImageChops.multiply(out, Image.merge("RGB", [shade_l.point(lambda v, c=c: v * c // 255)
                                                           for c in cast]))
    if glare:
        g = Image.new("L", size, 0)
        d = ImageDraw.Draw(g)
        x = rng.uniform(0.2, 0.7) * fw
        d.polygon([(x, 0), (x + fw * 0.18, 0), (x - fw * 0.12, fh), (x - fw * 0.3, fh)], fill=int(255 * glare))
        g = g.filter(ImageFilter.GaussianBlur(fw * 0.04))
        out = Image.composite(Image.new("RGB", size, (255, 255, 255)), out, g)
    return finish(out, rng, blur=blur, grain=grain, quality=quality)


def finish(img: Image.Image, rng: random.Random, *, blur: float = 0.0, grain: float = 0.0,
           quality: int | None = None) -> Image.Image:
    """Camera softness, sensor grain and a JPEG round trip."""
    if blur:
        img = img.filter(ImageFilter.GaussianBlur(blur))
    if grain:
        w, h = img.size
        n = Image.frombytes("L", (w, h), rng.randbytes(w * h))
        n = n.point(lambda v, a=grain: int(128 + (v - 128) * a))
        img = ImageChops.add(img, Image.merge("RGB", (n, n, n)), 1.0, -128)
    if quality:
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=quality)
        img = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    return img


def mesh_warp(img: Image.Image, f: Callable[[float, float], tuple[float, float]], nx: int = 24,
              ny: int = 8, size: tuple[int, int] | None = None) -> Image.Image:
    """Warp `img` with `f` (output point -> source point) sampled on an nx x ny grid."""
    w, h = size or img.size
    mesh = []
    for i in range(nx):
        for j in range(ny):
            x0, x1 = w * i / nx, w * (i + 1) / nx
            y0, y1 = h * j / ny, h * (j + 1) / ny
            quad = (*f(x0, y0), *f(x0, y1), *f(x1, y1), *f(x1, y0))
            mesh.append(((int(x0), int(y0), math.ceil(x1), math.ceil(y1)), quad))
    return img.transform((w, h), Image.Transform.MESH, mesh, Image.Resampling.BICUBIC)


def page_curl(img: Image.Image, amount: float, rng: random.Random) -> Image.Image:
    """A page that does not lie flat: rows bow, as in a bound book or a folded letter."""
    w, h = img.size
    phase = rng.uniform(0, math.pi)

    def f(x: float, y: float) -> tuple[float, float]:
        bow = amount * h * math.sin(math.pi * x / w + phase) * (0.4 + 0.6 * y / h)
        return x, y - bow

    return mesh_warp(img, f)


def cylinder(img: Image.Image, arc: float = 0.75) -> Image.Image:
    """`img` as a label wrapped round a bottle, seen from the front: the middle `arc` share of its width shows,
    squeezed towards the sides; the result is narrower than `img` (2 * arc / pi of its width)."""
    w, h = img.size
    out_w = int(2 * arc * w / math.pi)
    r = out_w / 2

    def f(x: float, y: float) -> tuple[float, float]:
        u = max(-0.9999, min(0.9999, (x - r) / r))
        return w / 2 + math.asin(u) * r, y

    out = mesh_warp(img, f, nx=64, ny=2, size=(out_w, h))
    shade = Image.new("L", (out_w, 1))
    for x in range(out_w):
        u = (x - r) / r
        shade.putpixel((x, 0), int(255 * (0.5 + 0.5 * math.sqrt(max(0.0, 1 - u * u)))))
    shade = shade.resize((out_w, h))
    return ImageChops.multiply(out, Image.merge("RGB", (shade, shade, shade)))


def handwrite(page: Page, x: float, y: float, text: str, size: int, rng: random.Random, *,
              style: str = "sans-l", fill: RGB = (30, 40, 120), slant: float = 0.28, wobble: float = 5.0,
              stroke: int = 0) -> float:
    """Hand-lettered text: letters drawn one by one, jittered and rotated, then the line is sheared."""
    f = font(style, size)
    w = int(page.length(text, size, style) * 1.15 + size * 2)
    h = int(size * 2.2)
    layer = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    cx = size * 0.5
    base = size * 0.5
    for ch in text:
        adv = ImageDraw.Draw(layer).textlength(ch, font=f)
        if ch != " ":
            tile = Image.new("RGBA", (int(size * 1.8), int(size * 1.8)), (0, 0, 0, 0))
            ImageDraw.Draw(tile).text((size * 0.4, size * 0.3), ch, font=f, fill=(*fill, 255),
                                      stroke_width=stroke, stroke_fill=(*fill, 255))
            tile = tile.rotate(rng.uniform(-wobble, wobble), resample=Image.Resampling.BICUBIC)
            layer.alpha_composite(tile, (int(cx - size * 0.4), int(base + rng.gauss(0, size * 0.04) - size * 0.3)))
        cx += adv * rng.uniform(0.92, 1.06)
        base += rng.gauss(0, size * 0.015)
    layer = layer.transform(layer.size, Image.Transform.AFFINE, (1, slant, -slant * h * 0.6, 0, 1, 0),
                            Image.Resampling.BICUBIC)
    page.img.paste(layer, (int(x - size * 0.5), int(y - size * 0.5)), layer)
    return cx - size * 0.5


# --------------------------------------------------------------------------- barcodes

_C39 = {
    "0": "000110100", "1": "100100001", "2": "001100001", "3": "101100000", "4": "000110001",
    "5": "100110000", "6": "001110000", "7": "000100101", "8": "100100100", "9": "001100100",
    "A": "100001001", "B": "001001001", "C": "101001000", "D": "000011001", "E": "100011000",
    "F": "001011000", "G": "000001101", "H": "100001100", "I": "001001100", "J": "000011100",
    "K": "100000011", "L": "001000011", "M": "101000010", "N": "000010011", "O": "100010010",
    "P": "001010010", "Q": "000000111", "R": "100000110", "S": "001000110", "T": "000010110",
    "U": "110000001", "V": "011000001", "W": "111000000", "X": "010010001", "Y": "110010000",
    "Z": "011010000", "-": "010000101", ".": "110000100", " ": "011000100", "*": "010010100",
}


def code39(page: Page, x: int, y: int, text: str, height: int, narrow: int = 2, fill: RGB = (10, 10, 10)) -> int:
    for ch in f"*{text.upper()}*":
        for i, wide in enumerate(_C39[ch]):
            width = narrow * (3 if wide == "1" else 1)
            if i % 2 == 0:
                page.rect((x, y, x + width - 1, y + height), fill=fill)
            x += width
        x += narrow
    return x


_EAN_L = ["0001101", "0011001", "0010011", "0111101", "0100011", "0110001", "0101111", "0111011", "0110111",
          "0001011"]
_EAN_PARITY = ["LLLLLL", "LLGLGG", "LLGGLG", "LLGGGL", "LGLLGG", "LGGLLG", "LGGGLL", "LGLGLG", "LGLGGL", "LGGLGL"]


def ean13(page: Page, x: int, y: int, code: str, height: int, module: int = 3) -> None:
    r_codes = ["".join("1" if b == "0" else "0" for b in c) for c in _EAN_L]
    bits = "101"
    for digit, parity in zip(code[1:7], _EAN_PARITY[int(code[0])], strict=True):
        bits += _EAN_L[int(digit)] if parity == "L" else r_codes[int(digit)][::-1]
    bits += "01010" + "".join(r_codes[int(d)] for d in code[7:]) + "101"
    guards = {0, 1, 2, 45, 46, 47, 48, 49, 92, 93, 94}
    for i, b in enumerate(bits):
        if b == "1":
            extra = module * 5 if i in guards else 0
            page.rect((x + i * module, y, x + (i + 1) * module - 1, y + height + extra), fill=(10, 10, 10))
    size = module * 7
    page.text(x - module * 8, y + height + module, code[0], size, "mono")
    page.text(x + module * 4, y + height + module, code[1:7], size, "mono")
    page.text(x + module * 50, y + height + module, code[7:], size, "mono")


def matrix_code(page: Page, x: int, y: int, cells: int, cell: int, rng: random.Random, wide: int = 1) -> None:
    """A 2-D barcode (Aztec / PDF417 look): random modules inside finder patterns."""
    cols = cells * wide
    for i in range(cols):
        for j in range(cells):
            if rng.random() < 0.5:
                page.rect((x + i * cell, y + j * cell, x + (i + 1) * cell - 1, y + (j + 1) * cell - 1),
                          fill=(12, 12, 12))
    if wide == 1:
        c = cells // 2
        for r, colour in ((3, (12, 12, 12)), (2, (255, 255, 255)), (1, (12, 12, 12))):
            page.rect((x + (c - r) * cell, y + (c - r) * cell, x + (c + r + 1) * cell - 1,
                       y + (c + r + 1) * cell - 1), fill=colour)
    else:
        for side in (0, cols - 3):
            page.rect((x + side * cell, y, x + (side + 1) * cell - 1, y + cells * cell), fill=(12, 12, 12))
            page.rect((x + (side + 2) * cell, y, x + (side + 3) * cell - 1, y + cells * cell), fill=(12, 12, 12))


def portrait(w: int, h: int, rng: random.Random, grey: bool = False) -> Image.Image:
    """The photo box of an ID: a head-and-shoulders silhouette on a plain background (not a real face)."""
    bg = (222, 226, 230) if not grey else (205, 205, 205)
    p = Page(w, h, bg)
    skin = rng.choice([(224, 186, 160), (190, 140, 105), (140, 96, 70), (236, 206, 180)])
    hair = rng.choice([(40, 30, 25), (90, 60, 35), (150, 120, 80), (25, 25, 25)])
    if grey:
        skin, hair = (150, 150, 150), (70, 70, 70)
    p.d.ellipse([w * 0.05, h * 0.68, w * 0.95, h * 1.3], fill=rng.choice([(50, 60, 90), (80, 80, 80), (120, 40, 50)]))
    p.d.rectangle([w * 0.4, h * 0.55, w * 0.6, h * 0.75], fill=skin)
    p.d.ellipse([w * 0.22, h * 0.12, w * 0.78, h * 0.68], fill=hair)
    p.d.ellipse([w * 0.27, h * 0.2, w * 0.73, h * 0.66], fill=skin)
    return p.img.filter(ImageFilter.GaussianBlur(2))


def rounded_mask(size: tuple[int, int], radius: int) -> Image.Image:
    m = Image.new("L", size, 0)
    ImageDraw.Draw(m).rounded_rectangle([0, 0, size[0] - 1, size[1] - 1], radius, fill=255)
    return m


def screen_photo(screen: Image.Image, rng: random.Random, size: tuple[int, int], *, tilt: float = 0.08,
                 skew: float = 0.05, rot: float = 2.0, width: float = 0.86, ground: str = "dark",
                 moire: float = 0.1, glare: float = 0.18, quality: int = 72) -> Image.Image:
    """A phone photo of a monitor or laptop showing `screen`: bezel, moiré, glare, perspective."""
    sw, sh = screen.size
    bez = max(sw // 40, 12)
    mon = Image.new("RGB", (sw + 2 * bez, sh + 2 * bez + bez), (18, 18, 20))
    if moire:
        period = rng.uniform(2.6, 3.4)
        row = Image.new("L", (1, sh))
        for y in range(sh):
            row.putpixel((0, y), int(255 * (1 - moire * (0.5 + 0.5 * math.cos(2 * math.pi * y / period)))))
        pattern = row.resize((sw, sh)).rotate(rng.uniform(-3, 3), resample=Image.Resampling.BILINEAR, fillcolor=255)
        screen = ImageChops.multiply(screen, Image.merge("RGB", (pattern, pattern, pattern)))
    mon.paste(screen, (bez, bez))
    return scene(rng, size, ground, [Item(mon, 0.5 + rng.uniform(-0.04, 0.04), 0.5 + rng.uniform(-0.04, 0.04),
                                          width, rot=rot, tilt=tilt, skew=skew, shadow=0.2)],
                 light=0.25, cast=(235, 240, 255), blur=0.9, grain=0.1, quality=quality, glare=glare)


# =========================================================================== building blocks

CARD = (1012, 638)  # ISO/IEC 7810 ID-1, 85.6 x 54 mm


def _card_base(c1: RGB, c2: RGB, rng: random.Random, waves: RGB | None = None) -> Page:
    p = Page(*CARD)
    p.gradient((0, 0, CARD[0], CARD[1]), c1, c2, horizontal=True)
    tint = waves or _lerp(c1, (255, 255, 255), 0.25)
    for k in range(14):
        amp, ph, y0, period = rng.uniform(10, 40), rng.uniform(0, 6.28), rng.uniform(0, CARD[1]), rng.uniform(60, 140)
        pts = [(x, y0 + amp * math.sin(x / period + ph)) for x in range(0, CARD[0] + 8, 8)]
        p.d.line(pts, fill=tint, width=1 + k % 2)
    return p


def _emboss(p: Page, x: float, y: float, s: str, size: int, style: str = "mono-b") -> None:
    p.text(x + 2, y + 2, s, size, style, (40, 40, 45))
    p.text(x - 1, y - 1, s, size, style, (250, 250, 245))
    p.text(x, y, s, size, style, (214, 214, 210))


def _chip(p: Page, x: int, y: int) -> None:
    p.rect((x, y, x + 128, y + 98), fill=(214, 182, 104), outline=(150, 120, 60), width=2, radius=14)
    for dy in (33, 66):
        p.hline(y + dy, x + 4, x + 124, (160, 128, 64), 2)
    p.vline(x + 64, y + 4, y + 94, (160, 128, 64), 2)
    p.rect((x + 44, y + 26, x + 84, y + 72), outline=(160, 128, 64), width=2, radius=6)


def _contactless(p: Page, x: int, y: int, colour: RGB = (240, 240, 240)) -> None:
    for r in (14, 26, 38):
        p.d.arc([x - r, y - r, x + r, y + r], -50, 50, fill=colour, width=5)


def _grouped(number: str, groups: Sequence[int] = (4, 4, 4, 4)) -> str:
    out, i = [], 0
    for g in groups:
        out.append(number[i : i + g])
        i += g
    return " ".join(out)


def _status_bar(p: Page, time_: str, dark: bool, h: int = 44, size: int = 22) -> None:
    fg = (240, 240, 240) if dark else (20, 20, 20)
    p.text(30, h // 2, time_, size, "sans-b", fg, anchor="lm")
    x = p.w - 40
    p.rect((x - 44, h // 2 - 10, x, h // 2 + 10), outline=fg, width=2, radius=4)
    p.rect((x - 40, h // 2 - 6, x - 12, h // 2 + 6), fill=fg)
    for i in range(4):
        p.rect((x - 110 + i * 12, h // 2 + 8 - 6 * (i + 1), x - 104 + i * 12, h // 2 + 8), fill=fg)


def _bubbles(p: Page, y: float, msgs: Sequence[tuple[bool, str, str]], *, size: int, out_bg: RGB, in_bg: RGB,
             out_fg: RGB, in_fg: RGB, meta: RGB, margin: int = 24, maxw: float = 0.72, style: str = "sans",
             radius: int = 18, gap: int = 14) -> float:
    """Chat bubbles: (outgoing?, text, time) each; returns the y below the last one."""
    f = font(style, size)
    tf = font("sans", int(size * 0.62))
    limit = p.w * maxw
    for out, text, when in msgs:
        rows: list[str] = []
        for para in text.split("\n"):
            line = ""
            for word in para.split(" "):
                cand = f"{line} {word}".strip()
                if line and p.d.textlength(cand, font=f) > limit - 2 * 18:
                    rows.append(line)
                    line = word
                else:
                    line = cand
            rows.append(line)
        tw = p.d.textlength(when, font=tf) + 14 if when else 0
        widths = [p.d.textlength(r, font=f) + 36 for r in rows]
        bw = max(widths)
        bh = len(rows) * size * 1.32 + 22
        if when and widths[-1] + tw > bw:
            if widths[-1] + tw <= limit:
                bw = widths[-1] + tw
            else:
                bh += size * 0.8
        x = p.w - margin - bw if out else margin
        p.rect((x, y, x + bw, y + bh), fill=out_bg if out else in_bg, radius=radius)
        ty = y + 11
        for r in rows:
            p.d.text((x + 18, ty), r, font=f, fill=out_fg if out else in_fg)
            ty += size * 1.32
        if when:
            p.d.text((x + bw - 14, y + bh - 8), when, font=tf, fill=meta, anchor="rs")
        y += bh + gap
    return y


def _window(p: Page, box: Sequence[int], title: str, dark: bool = False) -> None:
    """A desktop window's title bar with the three traffic lights."""
    x0, y0, x1, _ = box
    p.rect((x0, y0, x1, y0 + 34), fill=(54, 54, 58) if dark else (232, 232, 232))
    for i, c in enumerate(((255, 95, 87), (254, 188, 46), (40, 200, 64))):
        p.d.ellipse([x0 + 14 + i * 22, y0 + 11, x0 + 27 + i * 22, y0 + 24], fill=c)
    p.text((x0 + x1) / 2, y0 + 17, title, 15, "sans", (200, 200, 200) if dark else (70, 70, 70), anchor="mm")


def _creases(img: Image.Image, ys: Sequence[float], vertical: bool = False) -> Image.Image:
    """Fold lines: a bright edge and a soft dark band, as on a letter that was folded for an envelope."""
    shade = Image.new("L", img.size, 255)
    d = ImageDraw.Draw(shade)
    w, h = img.size
    for f in ys:
        if vertical:
            x = int(w * f)
            d.rectangle([x, 0, x + 14, h], fill=222)
            d.line([(x, 0), (x, h)], fill=196, width=2)
        else:
            y = int(h * f)
            d.rectangle([0, y, w, y + 16], fill=222)
            d.line([(0, y), (w, y)], fill=194, width=2)
    shade = shade.filter(ImageFilter.GaussianBlur(3))
    return ImageChops.multiply(img, Image.merge("RGB", (shade, shade, shade)))


def _scribble(p: Page, x: float, y: float, w: float, rng: random.Random, fill: RGB = (20, 30, 90)) -> None:
    """A signature: a loopy pen stroke."""
    pts = []
    for i in range(80):
        t = i / 79
        pts.append((x + w * t + 14 * math.sin(t * 25 + rng.uniform(0, 0.3)),
                    y + 16 * math.sin(t * 13) * (1 - t) + 8 * math.cos(t * 31)))
    p.d.line(pts, fill=fill, width=3, joint="curve")


def _labelled(p: Page, x: float, y: float, label: str, value: str, *, lsize: int = 14, vsize: int = 26,
              lstyle: str = "sans", vstyle: str = "sans-b", lfill: RGB = (70, 80, 100),
              vfill: RGB = (20, 20, 26)) -> float:
    p.text(x, y, label, lsize, lstyle, lfill)
    p.text(x, y + lsize + 4, value, vsize, vstyle, vfill)
    return y + lsize + vsize + 16


def _micr(p: Page, x: float, y: float, parts: Sequence[str], size: int = 34) -> None:
    """An E-13B line: digits plus the transit (T) and on-us (U) symbols drawn by hand (no font has them)."""
    f = font("mono-b", size)
    for part in parts:
        if part == "T":
            p.rect((x, y + 4, x + 6, y + size * 0.8), fill=(15, 15, 15))
            p.rect((x + 12, y + 4, x + 20, y + 14), fill=(15, 15, 15))
            p.rect((x + 12, y + size * 0.8 - 10, x + 20, y + size * 0.8), fill=(15, 15, 15))
            x += 30
        elif part == "U":
            p.rect((x, y + 4, x + 5, y + 18), fill=(15, 15, 15))
            p.rect((x + 9, y + 4, x + 14, y + 18), fill=(15, 15, 15))
            p.rect((x, y + size * 0.8 - 9, x + 14, y + size * 0.8), fill=(15, 15, 15))
            x += 26
        else:
            p.d.text((x, y), part, font=f, fill=(15, 15, 15))
            x += p.d.textlength(part, font=f) + 6


def _rand_aws(rng: random.Random) -> tuple[str, str]:
    return ("AKIA" + _chars(rng, 16, string.ascii_uppercase + "234567"),
            _chars(rng, 40, string.ascii_letters + string.digits + "+/"))


# =========================================================================== sensitive pictures


def s_card_front(rng: random.Random) -> tuple[Image.Image, Truth]:
    number = luhn_complete("4" + _digits(rng, 14))
    name, expiry = "TOMASZ WIECZOREK", "08/29"
    p = _card_base((16, 46, 92), (28, 116, 136), rng)
    p.text(70, 60, "Halden Sparbank", 40, "serif-b", (245, 245, 245))
    p.text(CARD[0] - 70, 72, "debit", 30, "sans-i", (225, 235, 240), anchor="ra")
    _chip(p, 92, 210)
    _contactless(p, 290, 260)
    _emboss(p, 80, 370, _grouped(number), 62)
    p.text(400, 468, "VALID\nTHRU", 13, "sans-b", (230, 230, 230))
    _emboss(p, 470, 460, expiry, 38)
    _emboss(p, 80, 540, name, 38)
    p.text(CARD[0] - 60, 560, "VISA", 84, "sans-bi", (250, 250, 250), anchor="rm")
    item = Item(p.img, 0.47, 0.53, 0.56, rot=rng.uniform(-12, -7), tilt=0.1, skew=0.04, mask=rounded_mask(CARD, 40))
    img = scene(rng, (1280, 960), "walnut", [item], light=0.35, blur=0.8, quality=74, blob=0.3)
    return img, (("card_number", number), ("expiry", expiry), ("name", name))


def s_card_back(rng: random.Random) -> tuple[Image.Image, Truth]:
    number = luhn_complete("5" + str(rng.randint(1, 5)) + _digits(rng, 13))
    cvc, expiry, name = _digits(rng, 3), "04/28", "NADIA EL-KHOURY"
    p = Page(*CARD, (232, 86, 40))
    p.gradient((0, 0, CARD[0], CARD[1]), (236, 98, 52), (196, 50, 44), horizontal=True)
    p.rect((0, 50, CARD[0], 160), fill=(22, 22, 22))
    p.rect((60, 200, 700, 272), fill=(246, 246, 240))
    for x in range(60, 700, 14):
        p.d.line([(x, 200), (x + 30, 272)], fill=(226, 226, 220), width=3)
    p.text(64, 184, "AUTHORISED SIGNATURE - NOT VALID UNLESS SIGNED", 12, "sans", (255, 235, 225))
    p.rect((720, 206, 850, 266), fill=(255, 255, 255))
    p.text(785, 236, cvc, 36, "sans-i", (20, 20, 20), anchor="mm")
    p.text(70, 310, _grouped(number), 40, "mono-b", (255, 250, 245))
    p.text(70, 372, f"VALID THRU {expiry}", 26, "mono", (255, 240, 230))
    p.text(70, 416, name, 30, "mono-b", (255, 250, 245))
    p.wrap(70, 476, "This card is issued by Caldera Bank plc and remains its property. If found please return to "
           "any branch or call +44 20 7946 0321. Use of this card is subject to the cardholder agreement.",
           620, 14, "sans", (255, 235, 225), gap=1.3)
    p.d.ellipse([790, 470, 890, 570], fill=(235, 0, 27))
    p.d.ellipse([850, 470, 950, 570], fill=(247, 158, 27))
    item = Item(p.img, 0.5, 0.5, 0.72, rot=rng.uniform(3, 8), tilt=0.05, skew=-0.03, mask=rounded_mask(CARD, 40))
    img = scene(rng, (800, 600), "felt", [item], light=0.3, blur=0.7, quality=70)
    return img, (("card_number", number), ("cvc", cvc), ("expiry", expiry), ("name", name))


def s_chat_card(rng: random.Random) -> tuple[Image.Image, Truth]:
    number = luhn_complete("4929" + _digits(rng, 11))
    cvv = _digits(rng, 3)
    p = Page(828, 1792, (11, 20, 26))
    _status_bar(p, "21:47", True, 60, 26)
    p.rect((0, 60, 828, 170), fill=(31, 44, 52))
    p.text(30, 115, "<", 40, "sans", (220, 220, 220), anchor="lm")
    p.d.ellipse([70, 80, 140, 150], fill=(108, 122, 140))
    p.text(105, 115, "M", 32, "sans-b", (240, 240, 240), anchor="mm")
    p.text(160, 92, "Mum", 32, "sans-b", (233, 237, 239))
    p.text(160, 132, "online", 20, "sans", (140, 155, 165))
    p.rect((340, 196, 488, 232), fill=(24, 34, 40), radius=10)
    p.text(414, 214, "TODAY", 18, "sans-b", (140, 155, 165), anchor="mm")
    msgs = [
        (False, "Can you book the ferry tickets for Saturday love? My laptop is playing up again", "21:38"),
        (True, "Yes no problem, send me your card details and I'll do it now", "21:39 ✓✓"),
        (False, "Its the debit one, not the credit card", "21:41"),
        (False, _grouped(number), "21:42"),
        (False, "Exp 11/27", "21:42"),
        (False, f"The 3 numbers on the back are {cvv}", "21:43"),
        (True, "Got it. Two adults and the car, the 10:15 sailing?", "21:44 ✓✓"),
        (False, "Yes please. Thank you darling xx", "21:45"),
        (True, "Booked! Confirmation going to your email", "21:47 ✓✓"),
    ]
    _bubbles(p, 260, msgs, size=30, out_bg=(0, 92, 75), in_bg=(32, 44, 51), out_fg=(233, 237, 239),
             in_fg=(233, 237, 239), meta=(160, 180, 175))
    p.rect((0, 1680, 828, 1792), fill=(11, 20, 26))
    p.rect((20, 1692, 700, 1772), fill=(32, 44, 51), radius=40)
    p.text(70, 1732, "Message", 28, "sans", (130, 145, 155), anchor="lm")
    p.d.ellipse([716, 1692, 806, 1782], fill=(0, 168, 132))
    img = finish(p.img, rng, quality=80)
    return img, (("card_number", number), ("expiry", "11/27"), ("cvv", cvv))


def s_chat_password(rng: random.Random) -> tuple[Image.Image, Truth]:
    email, pw, router = "j.okafor.home@gmail.com", "Marigold!Basin72", "K7#vQ2mp9Lz"
    p = Page(750, 1334, (255, 255, 255))
    _status_bar(p, "19:06", False, 40, 22)
    p.rect((0, 40, 750, 190), fill=(246, 246, 248))
    p.text(30, 90, "<", 44, "sans", (10, 132, 255), anchor="lm")
    p.d.ellipse([335, 52, 415, 132], fill=(160, 166, 178))
    p.text(375, 92, "JO", 30, "sans-b", (255, 255, 255), anchor="mm")
    p.text(375, 160, "Jordan >", 22, "sans", (20, 20, 20), anchor="mm")
    p.hline(190, 0, 750, (220, 220, 224))
    p.text(375, 226, "iMessage\nToday 19:02", 17, "sans", (140, 140, 146), anchor="ma")
    msgs = [
        (False, "hey what's the login for the netflix again? it logged me out on the tv", ""),
        (True, f"email is {email}", ""),
        (True, f"password {pw}", ""),
        (False, "thanks!! and the router admin page? want to set up the printer", ""),
        (True, f"admin / {router}  don't change it pls", ""),
        (False, "won't, promise", ""),
    ]
    y = _bubbles(p, 290, msgs, size=28, out_bg=(10, 132, 255), in_bg=(233, 233, 235), out_fg=(255, 255, 255),
                 in_fg=(10, 10, 10), meta=(140, 140, 146), radius=26, gap=10)
    p.text(726, y - 2, "Read 19:05", 17, "sans", (140, 140, 146), anchor="ra")
    p.rect((0, 1230, 750, 1334), fill=(250, 250, 250))
    p.rect((90, 1246, 720, 1306), outline=(205, 205, 210), width=2, radius=30)
    p.text(120, 1276, "iMessage", 24, "sans", (180, 180, 186), anchor="lm")
    return p.img, (("email", email), ("password", pw), ("password", router))


def s_passport(rng: random.Random) -> tuple[Image.Image, Truth]:
    doc = rng.choice("GHKLM") + rng.choice("ABJKTX") + _digits(rng, 6)
    surname, given, dob, exp = "MARCHETTI-ROY", "JULIEN ANDRÉ", "880314", "320602"
    l1 = "P<CAN" + mrz_name(surname, "JULIEN ANDRE", 39)
    l2 = mrz_td3(doc, "CAN", dob, "M", exp)
    w, h = 1250, 880
    book = Page(w, 2 * h + 20, (120, 24, 34))
    top = Page(w, h, (236, 232, 238))
    for k in range(40):
        ph = rng.uniform(0, 6.3)
        top.d.line([(x, 40 + k * 20 + 12 * math.sin(x / 70 + ph)) for x in range(0, w, 10)], fill=(214, 206, 224))
    top.text(w / 2, h / 2, "VISAS", 60, "serif-b", (200, 190, 210), anchor="mm")
    top.text(w - 40, h - 40, "5", 26, "serif", (120, 110, 130), anchor="rs")
    page = Page(w, h, (234, 240, 236))
    for k in range(36):
        ph = rng.uniform(0, 6.3)
        page.d.line([(x, k * 24 + 10 * math.sin(x / 55 + ph)) for x in range(0, w, 10)], fill=(214, 226, 220))
    page.text(40, 30, "CANADA", 34, "serif-b", (150, 30, 40))
    page.text(w - 40, 36, "PASSPORT  PASSEPORT", 26, "sans-b", (60, 60, 70), anchor="ra")
    page.paste(portrait(300, 380, rng), 40, 110)
    x, x2 = 380, 820
    lab = {"lsize": 15, "vsize": 28, "vstyle": "sans", "lfill": (90, 90, 100)}
    _labelled(page, x, 100, "Type/Type", "P", **lab)
    _labelled(page, 520, 100, "Issuing Country/Pays émetteur", "CAN", **lab)
    _labelled(page, x2, 100, "Passport No./N° de passeport", doc, **lab)
    _labelled(page, x, 170, "Surname/Nom", surname, **lab)
    _labelled(page, x, 240, "Given names/Prénoms", given, **lab)
    _labelled(page, x, 310, "Nationality/Nationalité", "CANADIAN/CANADIENNE", **lab)
    _labelled(page, x, 380, "Date of birth/Date de naissance", "14 MAR/MARS 88", **lab)
    _labelled(page, x2, 380, "Sex/Sexe", "M", **lab)
    _labelled(page, x, 450, "Place of birth/Lieu de naissance", "MONTRÉAL CAN", **lab)
    _labelled(page, x, 520, "Date of issue/Date de délivrance", "02 JUN/JUIN 22", **lab)
    _labelled(page, x2, 520, "Issuing Authority/Autorité", "GATINEAU", **lab)
    _labelled(page, x, 590, "Date of expiry/Date d'expiration", "02 JUN/JUIN 32", **lab)
    page.rect((0, h - 190, w, h), fill=(244, 246, 244))
    page.text(60, h - 170, l1, 40, "mono", (20, 20, 20))
    page.text(60, h - 100, l2, 40, "mono", (20, 20, 20))
    book.paste(top.img, 0, 0)
    book.paste(page.img, 0, h + 20)
    img = scene(rng, (1200, 1600), "laminate", [Item(book.img, 0.5, 0.5, 0.86, rot=rng.uniform(-4, 4), tilt=0.06)],
                light=0.3, blur=0.7, quality=76)
    return img, (("passport_number", doc), ("name", f"{given} {surname}"), ("date_of_birth", "14 MAR 1988"),
                 ("mrz", l1), ("mrz", l2))


def s_german_id(rng: random.Random) -> tuple[Image.Image, Truth]:
    doc = rng.choice("LMNPRTVWXYZ") + _chars(rng, 8, "0123456789CFGHJKLMNPRTVWXYZ")
    can = _digits(rng, 6)
    mrz = mrz_td1("D<<", doc, "910903", "<", "330511", "D", "BRANDSTÄTTER", "LENA MARIE")
    front = _card_base((214, 226, 214), (236, 214, 220), rng, waves=(200, 206, 216))
    front.text(40, 30, "BUNDESREPUBLIK DEUTSCHLAND", 32, "sans-b", (30, 30, 30))
    front.text(40, 74, "PERSONALAUSWEIS  IDENTITY CARD  CARTE D'IDENTITÉ", 17, "sans", (60, 60, 60))
    front.text(CARD[0] - 40, 36, doc, 30, "mono-b", (180, 30, 40), anchor="ra")
    front.paste(portrait(260, 340, rng, grey=True), 40, 130)
    lab = {"lsize": 14, "vsize": 28, "vstyle": "cond-b", "lfill": (80, 80, 90)}
    y = _labelled(front, 330, 120, "Name / Surname / Nom", "BRANDSTÄTTER", **lab)
    y = _labelled(front, 330, y, "Vornamen / Given names / Prénoms", "LENA MARIE", **lab)
    _labelled(front, 330, y, "Geburtstag / Date of birth", "03.09.1991", **lab)
    y = _labelled(front, 640, y, "Staatsangehörigkeit / Nationality", "DEUTSCH", **lab)
    _labelled(front, 330, y, "Geburtsort / Place of birth", "KASSEL", **lab)
    y = _labelled(front, 640, y, "Gültig bis / Date of expiry", "11.05.2033", **lab)
    _scribble(front, 360, y + 40, 220, rng)
    front.text(CARD[0] - 40, CARD[1] - 30, can, 30, "mono-b", (30, 30, 30), anchor="rs")
    back = _card_base((226, 232, 226), (230, 222, 230), rng, waves=(210, 214, 222))
    y = _labelled(back, 40, 30, "Anschrift / Address / Adresse", "34117 KASSEL", **lab)
    back.text(40, y - 10, "FRIEDRICH-EBERT-STR. 112", 28, "cond-b", (20, 20, 26))
    _labelled(back, 40, y + 40, "Augenfarbe / Colour of eyes", "GRAU", **lab)
    _labelled(back, 380, y + 40, "Größe / Height", "168 cm", **lab)
    _labelled(back, 620, 30, "Behörde / Authority", "STADT KASSEL", **lab)
    _labelled(back, 620, 100, "Datum / Date", "12.05.2023", **lab)
    back.rect((0, 400, CARD[0], CARD[1]), fill=(246, 246, 244))
    for i, line in enumerate(mrz):
        back.text(60, 414 + i * 72, line, 44, "mono", (18, 18, 18))
    items = [Item(front.img, 0.27, 0.5, 0.42, rot=rng.uniform(-5, -1), tilt=0.05, mask=rounded_mask(CARD, 34)),
             Item(back.img, 0.73, 0.52, 0.42, rot=rng.uniform(2, 6), tilt=0.05, mask=rounded_mask(CARD, 34))]
    img = scene(rng, (1600, 1000), "oak", items, light=0.3, blur=0.7, quality=77)
    return img, (("id_number", doc), ("name", "LENA MARIE BRANDSTÄTTER"), ("date_of_birth", "03.09.1991"),
                 ("address", "FRIEDRICH-EBERT-STR. 112, 34117 KASSEL"), *(("mrz", m) for m in mrz))


def s_dni(rng: random.Random) -> tuple[Image.Image, Truth]:
    n = rng.randint(10_000_000, 79_999_999)
    dni = f"{n}{dni_letter(n)}"
    p = _card_base((238, 222, 214), (214, 226, 238), rng, waves=(226, 206, 200))
    p.rect((40, 36, 130, 50), fill=(198, 11, 30))
    p.rect((40, 50, 130, 72), fill=(255, 196, 0))
    p.rect((40, 72, 130, 86), fill=(198, 11, 30))
    p.text(150, 30, "ESPAÑA", 30, "sans-b", (40, 40, 40))
    p.text(150, 68, "DOCUMENTO NACIONAL DE IDENTIDAD", 22, "sans", (60, 60, 60))
    p.text(40, 120, "DNI", 24, "sans-b", (150, 40, 40))
    p.text(110, 114, dni, 38, "mono-b", (20, 20, 20))
    p.paste(portrait(250, 320, rng), 40, 180)
    lab = {"lsize": 14, "vsize": 26, "vstyle": "sans-b", "lfill": (100, 70, 70)}
    _labelled(p, 330, 120, "APELLIDOS", "GARCÍA-NÚÑEZ", **lab)
    p.text(330, 184, "SOLER", 26, "sans-b", (20, 20, 26))
    y = _labelled(p, 330, 226, "NOMBRE", "INÉS", **lab)
    _labelled(p, 330, y, "SEXO", "F", **lab)
    y = _labelled(p, 480, y, "NACIONALIDAD", "ESP", **lab)
    _labelled(p, 330, y, "FECHA DE NACIMIENTO", "27 04 1986", **lab)
    y = _labelled(p, 660, y, "NUM SOPORT", "BHV" + _digits(rng, 6), **lab)
    _labelled(p, 330, y, "VALIDEZ", "12 02 2031", **lab)
    p.text(CARD[0] - 40, CARD[1] - 34, "CAN " + _digits(rng, 6), 24, "mono-b", (30, 30, 30), anchor="rs")
    _scribble(p, 60, 560, 200, rng, (30, 30, 40))
    item = Item(p.img, 0.5, 0.48, 0.74, rot=rng.uniform(-3, 3), tilt=0.08, skew=0.05, mask=rounded_mask(CARD, 36))
    img = scene(rng, (1024, 768), "granite", [item], light=0.35, blur=0.8, quality=72, blob=0.2)
    return img, (("dni", dni), ("name", "INÉS GARCÍA-NÚÑEZ SOLER"), ("date_of_birth", "27 04 1986"))


def s_payslip_fr(rng: random.Random) -> tuple[Image.Image, Truth]:
    nir13 = "2" + "93" + "11" + "67" + "482" + f"{rng.randint(1, 999):03d}"
    nir = f"{nir13[0]} {nir13[1:3]} {nir13[3:5]} {nir13[5:7]} {nir13[7:10]} {nir13[10:13]} {nir_key(nir13)}"
    siret = luhn_complete("4821357090002")
    p = Page(1240, 1754, (252, 252, 250))
    p.text(70, 70, "BOULANGERIE-PÂTISSERIE LEROUX SARL", 26, "sans-b")
    p.lines(70, 110, ["14 rue des Tanneurs", "67000 Strasbourg", f"SIRET : {siret}", "Code NAF : 1071C",
                      "URSSAF d'Alsace"], 19)
    p.text(1170, 70, "BULLETIN DE PAIE", 34, "serif-b", anchor="ra")
    p.text(1170, 122, "Période du 01/10/2026 au 31/10/2026", 19, anchor="ra")
    p.text(1170, 150, "Paiement le 31/10/2026 par virement", 19, anchor="ra")
    p.rect((640, 200, 1170, 400), outline=(120, 120, 120), width=2)
    p.lines(664, 218, ["Mme Camille ROUSSEL-DIALLO", "5 allée des Peupliers", "67200 Strasbourg"], 22, "sans-b")
    p.lines(664, 320, ["Emploi : Vendeuse qualifiée — Coefficient 170", f"N° de sécurité sociale : {nir}"], 18)
    p.lines(70, 300, ["Convention collective : Boulangerie-pâtisserie", "artisanale (IDCC 843)",
                      "Entrée le 03/02/2021 — Statut : Employé", "Matricule : 0042"], 18)
    cols = [70, 560, 680, 800, 920, 1060]
    y = 440
    p.rect((60, y, 1180, y + 40), fill=(226, 230, 236))
    for i, (x, head) in enumerate(zip(cols, ["Rubrique", "Base", "Taux", "Part salarié", "Taux", "Part employeur"],
                                      strict=True)):
        p.text(x if i == 0 else x + 100, y + 10, head, 17, "sans-b", anchor="la" if i == 0 else "ra")
    rows = [
        ("Salaire de base", "151,67", "12,4500", "1 888,29", "", ""),
        ("Heures supplémentaires 25 %", "8,00", "15,5625", "124,50", "", ""),
        ("Prime d'ancienneté 3 %", "1 888,29", "3,00", "56,65", "", ""),
        ("SALAIRE BRUT", "", "", "2 069,44", "", ""),
        ("Santé - Sécurité sociale maladie", "2 069,44", "", "", "7,00", "144,86"),
        ("Complémentaire santé", "2 069,44", "", "18,40", "", "27,60"),
        ("Retraite Sécurité sociale plafonnée", "2 069,44", "6,90", "142,79", "8,55", "176,94"),
        ("Retraite Sécurité sociale déplafonnée", "2 069,44", "0,40", "8,28", "2,02", "41,80"),
        ("Retraite complémentaire Tranche 1", "2 069,44", "4,01", "82,98", "6,01", "124,37"),
        ("Famille", "2 069,44", "", "", "3,45", "71,40"),
        ("Assurance chômage", "2 069,44", "", "", "4,05", "83,81"),
        ("CSG déductible de l'impôt sur le revenu", "2 033,42", "6,80", "138,27", "", ""),
        ("CSG/CRDS non déductible", "2 033,42", "2,90", "58,97", "", ""),
        ("Exonération heures supplémentaires", "124,50", "", "-14,03", "", ""),
        ("TOTAL DES COTISATIONS ET CONTRIBUTIONS", "", "", "435,66", "", "670,78"),
    ]
    y += 52
    for i, row in enumerate(rows):
        bold = row[0].isupper()
        if i % 2:
            p.rect((60, y - 6, 1180, y + 26), fill=(246, 247, 249))
        for j, (x, cell) in enumerate(zip(cols, row, strict=True)):
            if j == 0:
                p.text(x, y, cell, 17, "sans-b" if bold else "sans")
            else:
                p.text(x + 100, y, cell, 17, "mono-b" if bold else "mono", anchor="ra")
        y += 34
    y += 30
    p.hline(y, 60, 1180, width=2)
    p.text(70, y + 20, "NET À PAYER AVANT IMPÔT SUR LE REVENU", 20, "sans-b")
    p.text(1170, y + 20, "1 633,78 €", 22, "mono-b", anchor="ra")
    p.text(70, y + 60, "Impôt sur le revenu prélevé à la source — taux personnalisé 2,10 %", 18)
    p.text(1170, y + 60, "-34,31 €", 20, "mono", anchor="ra")
    p.rect((640, y + 110, 1180, y + 170), fill=(230, 236, 244), outline=(100, 110, 130), width=2)
    p.text(660, y + 126, "NET PAYÉ", 26, "sans-b")
    p.text(1160, y + 124, "1 599,47 €", 28, "mono-b", anchor="ra")
    p.lines(70, y + 120, ["Congés payés : acquis 25,0 — pris 10,0 — solde 15,0",
                          "Coût total employeur : 2 740,22 €"], 17)
    p.wrap(70, 1640, "Dans votre intérêt et pour vous aider à faire valoir vos droits, conservez ce bulletin de "
           "paie sans limitation de durée.", 1100, 15, "sans-i", (90, 90, 90))
    img = page_curl(p.img, 0.006, rng)
    img = scene(rng, (1200, 1600), "walnut", [Item(img, 0.5, 0.51, 0.84, rot=rng.uniform(-2.5, 2.5), tilt=0.04)],
                light=0.35, blur=0.7, quality=75)
    return img, (("nir", nir.replace(" ", "")), ("name", "Camille ROUSSEL-DIALLO"), ("siret", siret))


def s_tessera(rng: random.Random) -> tuple[Image.Image, Truth]:
    cf = codice_fiscale("Ferrante", "Giulia", 1990, 7, 22, True, "L219")
    p = _card_base((226, 236, 246), (196, 216, 238), rng, waves=(210, 224, 240))
    p.rect((40, 34, 150, 110), fill=(0, 51, 153))
    for k in range(12):
        a = k * math.pi / 6
        p.d.ellipse([95 + 26 * math.cos(a) - 4, 72 + 26 * math.sin(a) - 4, 95 + 26 * math.cos(a) + 4,
                     72 + 26 * math.sin(a) + 4], fill=(255, 204, 0))
    p.text(180, 36, "TESSERA SANITARIA", 34, "sans-b", (20, 50, 110))
    p.text(180, 80, "Ministero dell'Economia e delle Finanze", 18, "sans-i", (40, 60, 100))
    p.text(CARD[0] - 40, 44, "I", 36, "serif-b", (20, 50, 110), anchor="ra")
    lab = {"lsize": 15, "vsize": 28, "vstyle": "sans-b", "lfill": (60, 80, 120)}
    _labelled(p, 40, 140, "Codice fiscale", cf, **{**lab, "vsize": 34, "vstyle": "mono-b"})
    y = _labelled(p, 40, 220, "Cognome", "FERRANTE", **lab)
    y = _labelled(p, 40, y, "Nome", "GIULIA", **lab)
    _labelled(p, 40, y, "Luogo di nascita", "TORINO", **lab)
    _labelled(p, 400, y, "Provincia", "TO", **lab)
    _labelled(p, 560, 220, "Sesso", "F", **lab)
    _labelled(p, 560, 286, "Data di nascita", "22/07/1990", **lab)
    _labelled(p, 560, 352, "Data di scadenza", "15/03/2030", **lab)
    code39(p, 40, 500, cf, 90, narrow=2)
    item = Item(p.img, 0.5, 0.5, 0.74, rot=rng.uniform(-6, 6), tilt=0.07, skew=-0.04, mask=rounded_mask(CARD, 36))
    img = scene(rng, (900, 700), "wood", [item], light=0.35, blur=0.7, quality=73)
    return img, (("codice_fiscale", cf), ("name", "GIULIA FERRANTE"), ("date_of_birth", "22/07/1990"))


def s_nl_letter(rng: random.Random) -> tuple[Image.Image, Truth]:
    while True:
        acct = "0" + _digits(rng, 9)
        if elfproef_ok(acct):
            break
    nl = iban("NL", "RIJN" + acct)
    p = Page(1240, 1754, (253, 253, 251))
    p.rect((90, 80, 150, 140), fill=(0, 96, 160))
    p.d.polygon([(98, 132), (120, 92), (142, 132)], fill=(255, 255, 255))
    p.text(170, 84, "Rijnmond Bank", 40, "sans-b", (0, 70, 130))
    p.lines(860, 90, ["Rijnmond Bank N.V.", "Postbus 12047", "3004 GA Rotterdam", "www.rijnmondbank.nl"], 17,
            fill=(90, 90, 100))
    p.text(90, 250, "Rijnmond Bank, Postbus 12047, 3004 GA Rotterdam", 13, fill=(110, 110, 110))
    p.lines(90, 280, ["De heer M.J. van den Broek", "Koningsweg 28 bis", "3582 GE  UTRECHT"], 24)
    p.lines(90, 470, ["Datum", "Ons kenmerk", "Betreft"], 18, "sans-b", (80, 80, 90), gap=1.7)
    p.lines(300, 470, ["29 oktober 2026", "RB/KL/2026-448120", "Wijziging van uw betaalpakket"], 18, gap=1.7)
    body = [
        "Geachte heer Van den Broek,",
        "",
        "Per 1 januari 2027 verandert de samenstelling van het betaalpakket Basis. Wij informeren u hierover omdat "
        "u dit pakket gebruikt voor uw betaalrekening:",
        "",
        f"IBAN {iban_spaced(nl)}  ten name van M.J. van den Broek",
        "",
        "Vanaf die datum zijn een tweede betaalpas en papieren rekeningoverzichten niet langer inbegrepen. De "
        "maandelijkse kosten blijven € 3,95. Gebruikt u een tweede betaalpas, dan betaalt u daarvoor voortaan "
        "€ 0,95 per maand.",
        "",
        "Wilt u niets veranderen? Dan hoeft u niets te doen. Wilt u overstappen naar het pakket Plus, dan kunt u "
        "dat regelen in de app of in Internet Bankieren onder Mijn producten.",
        "",
        "Heeft u nog vragen? Bel ons op 010 799 40 00 (lokaal tarief), op werkdagen van 8.00 tot 20.00 uur.",
        "",
        "Met vriendelijke groet,",
        "",
        "",
        "",
        "Petra Schouten",
        "Manager Klantenservice",
    ]
    y = 610
    for para in body:
        if not para:
            y += 14
            continue
        y = p.wrap(90, y, para, 1020, 21, "serif" if not para.startswith("IBAN") else "mono-b", gap=1.5)
        if para.startswith("Met vriendelijke"):
            _scribble(p, 100, y + 36, 200, rng)
    p.hline(1640, 90, 1150, (180, 180, 190))
    p.text(90, 1656, "Rijnmond Bank N.V. · KvK 24312908 · Statutair gevestigd te Rotterdam · BIC RIJNNL2R", 14,
           fill=(120, 120, 130))
    img = _creases(p.img, (0.335, 0.668))
    img = scene(rng, (1080, 1440), "laminate", [Item(img, 0.5, 0.5, 0.88, rot=rng.uniform(-3, 3), tilt=0.05,
                                                     skew=0.03)], light=0.4, blur=0.8, quality=70, blob=0.25)
    return img, (("iban", nl), ("name", "M.J. van den Broek"), ("address", "Koningsweg 28 bis, 3582 GE Utrecht"))


def s_uk_licence(rng: random.Random) -> tuple[Image.Image, Truth]:
    number = "HALLO856145SE9" + _chars(rng, 2, string.ascii_uppercase)
    p = _card_base((246, 214, 222), (222, 238, 222), rng, waves=(236, 200, 212))
    p.text(330, 24, "DRIVING LICENCE", 40, "sans-b", (40, 40, 60))
    p.rect((40, 24, 170, 100), fill=(20, 40, 110))
    p.text(105, 62, "UK", 40, "sans-b", (255, 255, 255), anchor="mm")
    p.paste(portrait(250, 320, rng), 40, 130)
    rows = [("1.", "HALLORAN"), ("2.", "SIOBHAN ELIZABETH"), ("3.", "14.06.1985  UNITED KINGDOM"),
            ("4a.", "22.01.2019     4c. DVLA"), ("4b.", "21.01.2029"), ("5.", f"{number}   12"),
            ("8.", "27 WESTBURY ROAD, BRISTOL"), ("", "BS9 3AA")]
    y = 120
    for k, v in rows:
        p.text(320, y, k, 22, "sans-b", (90, 60, 80))
        p.text(380, y, v, 27, "cond-b", (20, 20, 30))
        y += 48
    p.text(320, y + 10, "9. AM/A/B1/B/f/k/l/n/p/q", 22, "cond", (40, 40, 50))
    _scribble(p, 60, 520, 200, rng, (20, 20, 20))
    p.text(40, 590, "7.", 18, "sans-b", (90, 60, 80))
    item = Item(p.img, 0.5, 0.52, 0.78, rot=rng.uniform(-4, 4), tilt=0.09, skew=0.04, mask=rounded_mask(CARD, 36))
    img = scene(rng, (960, 720), "dark", [item], light=0.4, blur=0.9, quality=70)
    return img, (("driver_number", number), ("name", "SIOBHAN ELIZABETH HALLORAN"), ("date_of_birth", "14.06.1985"),
                 ("address", "27 WESTBURY ROAD, BRISTOL BS9 3AA"))


def s_us_licence(rng: random.Random) -> tuple[Image.Image, Truth]:
    dl = _digits(rng, 7)
    p = _card_base((226, 236, 244), (244, 236, 214), rng, waves=(214, 226, 236))
    p.rect((0, 0, CARD[0], 90), fill=(28, 64, 110))
    p.text(40, 45, "OREGON", 48, "serif-b", (255, 255, 255), anchor="lm")
    p.text(CARD[0] - 40, 30, "DRIVER LICENSE", 28, "sans-b", (255, 255, 255), anchor="ra")
    p.text(CARD[0] - 40, 64, "USA", 18, "sans", (220, 230, 240), anchor="ra")
    p.paste(portrait(260, 330, rng), 40, 120)
    p.text(330, 110, f"DL  {dl}", 32, "sans-b", (170, 30, 30))
    p.text(720, 116, "CLASS C", 24, "sans-b", (30, 30, 30))
    p.text(330, 160, "EXP 09/17/2030", 24, "sans-b", (170, 30, 30))
    p.lines(330, 206, ["RAMIREZ-COLE", "DANIEL ISAAC"], 32, "cond-b", (20, 20, 20), gap=1.2)
    p.lines(330, 290, ["1840 SE HAWTHORNE BLVD APT 3", "PORTLAND, OR 97214"], 22, "cond", (20, 20, 20), gap=1.3)
    p.text(330, 366, "DOB 09/17/1994", 30, "sans-b", (170, 30, 30))
    p.lines(330, 414, ["SEX M   HGT 5-11   WGT 172 lb   EYES BRO", "END NONE   RESTR NONE", "ISS 08/02/2022"],
            20, "cond", (30, 30, 30), gap=1.35)
    p.text(330, 520, "DD 48213077591XY2201", 17, "mono", (60, 60, 60))
    _scribble(p, 60, 520, 200, rng, (20, 20, 20))
    p.text(CARD[0] - 40, CARD[1] - 30, "09/17/94", 22, "sans-b", (120, 120, 130), anchor="rs")
    item = Item(p.img, 0.5, 0.52, 0.8, rot=rng.uniform(-3, 3), tilt=0.06, skew=-0.05, mask=rounded_mask(CARD, 36))
    img = scene(rng, (800, 600), "dashboard", [item], light=0.4, blur=0.8, quality=68, glare=0.12)
    return img, (("driver_license", dl), ("name", "DANIEL ISAAC RAMIREZ-COLE"), ("date_of_birth", "09/17/1994"),
                 ("address", "1840 SE HAWTHORNE BLVD APT 3, PORTLAND, OR 97214"))


def _lab_table(p: Page, y: float, title: str, rows: Sequence[tuple[str, str, str, str, str]], cols: Sequence[int],
               size: int = 19) -> float:
    p.rect((60, y, p.w - 60, y + 34), fill=(232, 236, 240))
    p.text(70, y + 7, title, size, "sans-b")
    y += 46
    for test, value, flag, unit, ref in rows:
        p.text(cols[0], y, test, size)
        p.text(cols[1], y, value, size, "mono-b" if flag else "mono", anchor="ra")
        p.text(cols[2], y, flag, size, "sans-b", (180, 20, 20))
        p.text(cols[3], y, unit, size)
        p.text(cols[4], y, ref, size, "mono")
        y += size * 1.6
    return y + 14


def s_lab_report(rng: random.Random) -> tuple[Image.Image, Truth]:
    mrn = f"{rng.randint(1000, 9999)}-{_digits(rng, 5)}"
    p = Page(1240, 1754, (255, 255, 255))
    p.text(70, 60, "Riverside Clinical Laboratories", 36, "serif-b", (20, 60, 100))
    p.lines(70, 110, ["Department of Pathology & Laboratory Medicine", "4400 River Park Dr, Sacramento, CA 95815",
                      "CLIA 05D2083947 · Lab Director: K. Abernathy, MD"], 17, fill=(70, 70, 80))
    p.text(1170, 66, "FINAL REPORT", 26, "sans-b", (20, 60, 100), anchor="ra")
    p.rect((60, 200, 1180, 380), outline=(100, 110, 130), width=2)
    left = [("Patient", "HOLLOWAY, MARGARET E"), ("DOB / Age / Sex", "02/19/1957  69 Y  F"), ("MRN", mrn),
            ("Ordering physician", "Anil Mehta, MD")]
    right = [("Accession", "L26-3071145"), ("Collected", "11/03/2026 07:42"), ("Received", "11/03/2026 09:15"),
             ("Reported", "11/03/2026 14:08")]
    for i, ((a, b), (c, d)) in enumerate(zip(left, right, strict=True)):
        p.text(80, 216 + i * 40, a, 18, fill=(90, 90, 100))
        p.text(300, 214 + i * 40, b, 21, "sans-b")
        p.text(680, 216 + i * 40, c, 18, fill=(90, 90, 100))
        p.text(830, 214 + i * 40, d, 21, "mono")
    cols = [80, 560, 580, 640, 860]
    p.text(80, 400, "Test", 17, "sans-b", (90, 90, 100))
    for x, h in zip(cols[1:], ["Result", "", "Units", "Reference"], strict=True):
        p.text(x, 400, h, 17, "sans-b", (90, 90, 100), anchor="ra" if h == "Result" else "la")
    y = _lab_table(p, 430, "COMPLETE BLOOD COUNT", [
        ("WBC", "11.8", "H", "x10^3/uL", "4.0 - 10.5"), ("RBC", "3.91", "L", "x10^6/uL", "4.00 - 5.20"),
        ("Hemoglobin", "11.2", "L", "g/dL", "12.0 - 15.5"), ("Hematocrit", "34.6", "L", "%", "36.0 - 46.0"),
        ("MCV", "88.5", "", "fL", "80 - 100"), ("Platelets", "412", "H", "x10^3/uL", "150 - 400"),
        ("Neutrophils", "78", "H", "%", "40 - 70")], cols)
    y = _lab_table(p, y, "COMPREHENSIVE METABOLIC PANEL", [
        ("Glucose, fasting", "142", "H", "mg/dL", "70 - 99"), ("BUN", "31", "H", "mg/dL", "7 - 20"),
        ("Creatinine", "1.38", "H", "mg/dL", "0.50 - 1.10"), ("eGFR (CKD-EPI 2021)", "41", "L", "mL/min/1.73m2",
                                                                   "> 60"),
        ("Sodium", "137", "", "mmol/L", "135 - 145"), ("Potassium", "5.3", "H", "mmol/L", "3.5 - 5.1"),
        ("ALT", "22", "", "U/L", "7 - 35")], cols)
    y = _lab_table(p, y, "DIABETES MONITORING", [("Hemoglobin A1c", "7.9", "H", "%", "< 5.7"),
                                                 ("Urine albumin/creatinine", "212", "H", "mg/g", "< 30")], cols)
    p.wrap(80, y + 10, "Comment: Results consistent with stage 3b chronic kidney disease and poorly controlled type 2 "
           "diabetes; mild normocytic anemia. Critical value policy not triggered. Please correlate clinically.",
           1080, 18, "serif-i")
    p.text(80, 1680, "Page 1 of 2", 15, fill=(110, 110, 110))
    p.text(1170, 1680, "Printed 11/03/2026 14:12", 15, fill=(110, 110, 110), anchor="ra")
    img = page_curl(p.img, 0.008, rng)
    img = scene(rng, (1200, 1600), "laminate", [Item(img, 0.52, 0.5, 0.8, rot=rng.uniform(2, 5), tilt=0.07,
                                                     skew=-0.04)], light=0.35, blur=0.8, quality=72, blob=0.35)
    return img, (("name", "HOLLOWAY, MARGARET E"), ("date_of_birth", "02/19/1957"), ("mrn", mrn))


def kvnr_check(letter: str, digits8: str) -> str:
    """German Krankenversichertennummer: the letter's number (A=01), the 8 digits, weights 1,2,1,2..."""
    s = f"{ord(letter) - 64:02d}" + digits8
    total = 0
    for i, c in enumerate(s):
        v = int(c) * (1 if i % 2 == 0 else 2)
        total += v // 10 + v % 10
    return str(total % 10)


def s_laborbefund(rng: random.Random) -> tuple[Image.Image, Truth]:
    letter, body = rng.choice(string.ascii_uppercase), _digits(rng, 8)
    kvnr = letter + body + kvnr_check(letter, body)
    p = Page(1440, 900, (82, 82, 86))
    _window(p, (0, 0, 1440, 900), "Befund_Kowalczyk_2026-11-03.pdf — Seite 1 von 2", dark=True)
    p.rect((0, 34, 1440, 80), fill=(64, 64, 68))
    p.text(20, 57, "Seite 1 / 2     –   125 %   +", 16, "sans", (220, 220, 220), anchor="lm")
    p.rect((0, 80, 190, 900), fill=(58, 58, 62))
    for i in range(2):
        p.rect((40, 110 + i * 200, 150, 265 + i * 200), fill=(250, 250, 250), outline=(90, 140, 240) if i == 0
               else None, width=3)
    x0 = 260
    doc = Page(1100, 1200, (255, 255, 255))
    doc.text(60, 50, "Labor Dr. Wessel & Kollegen", 30, "sans-b", (30, 80, 60))
    doc.text(60, 90, "Fachärzte für Laboratoriumsmedizin · Kaiser-Joseph-Str. 201 · 79098 Freiburg", 15,
             fill=(90, 90, 90))
    doc.text(1040, 56, "LABORBEFUND", 26, "sans-b", anchor="ra")
    doc.rect((60, 130, 1040, 250), outline=(150, 150, 150))
    doc.lines(80, 145, ["Patient: Kowalczyk, Jürgen", "geb. 17.06.1958   männlich",
                        f"Versichertennr.: {kvnr}"], 20, "sans-b")
    doc.lines(600, 145, ["Auftrag: 2611030417", "Eingang: 03.11.2026 08:52", "Einsender: Praxis Dr. Haug"], 19)
    cols = [80, 560, 600, 680, 860]
    rows = [("HbA1c", "8,1", "+", "%", "< 5,7"), ("Glukose nüchtern", "148", "+", "mg/dl", "70 – 99"),
            ("Kreatinin", "1,42", "+", "mg/dl", "0,67 – 1,17"), ("eGFR (CKD-EPI)", "49", "–", "ml/min", "> 60"),
            ("Kalium", "4,6", "", "mmol/l", "3,5 – 5,1"), ("LDL-Cholesterin", "162", "+", "mg/dl", "< 116"),
            ("TSH basal", "2,10", "", "mU/l", "0,27 – 4,20"), ("CRP", "3,2", "", "mg/l", "< 5,0")]
    y = _lab_table(doc, 280, "Klinische Chemie", rows, cols, size=19)
    doc.wrap(80, y + 10, "Beurteilung: Diabetes mellitus Typ 2, unzureichend eingestellt (HbA1c 8,1 %). "
             "Eingeschränkte Nierenfunktion (CKD G3a). Kontrolle in 3 Monaten empfohlen.", 940, 19, "sans-i")
    p.paste(doc.img.crop((0, 0, 1100, 820)), x0, 80)
    return p.img, (("name", "Kowalczyk, Jürgen"), ("date_of_birth", "17.06.1958"), ("insurance_number", kvnr))


def npi_complete(first9: str) -> str:
    return first9 + luhn_complete("80840" + first9)[-1]


def s_prescription(rng: random.Random) -> tuple[Image.Image, Truth]:
    six = _digits(rng, 6)
    dea = "BV" + six + dea_check(six)
    npi = npi_complete("1" + _digits(rng, 8))
    p = Page(900, 1240, (250, 250, 244))
    p.text(450, 40, "Eleanor Vasquez, MD", 34, "serif-b", (20, 40, 90), anchor="ma")
    p.text(450, 86, "Family Medicine · Lakeside Medical Group", 18, "serif", (40, 50, 90), anchor="ma")
    p.text(450, 112, "2150 Shoreline Dr, Suite 204 · Madison, WI 53703 · (608) 555-0142", 15, "sans",
           (60, 60, 90), anchor="ma")
    p.text(450, 138, f"DEA {dea}     NPI {npi}", 15, "mono", (60, 60, 90), anchor="ma")
    p.hline(170, 40, 860, (20, 40, 90), 3)
    ink = (25, 35, 110)
    for label, y in (("Name", 220), ("Address", 290), ("DOB", 360), ("Date", 360)):
        x = 40 if label != "Date" else 480
        p.text(x, y, label, 20, "sans-b", (40, 50, 90))
        p.hline(y + 28, x + 90 if label != "Address" else x + 100, 860 if label in ("Name", "Address", "Date")
                else 440, (120, 120, 150))
    handwrite(p, 150, 212, "Marcus T. Delgado", 34, rng, fill=ink)
    handwrite(p, 160, 282, "611 Willow St, Madison WI", 30, rng, fill=ink)
    handwrite(p, 150, 352, "04/11/1979", 30, rng, fill=ink)
    handwrite(p, 580, 352, "11/03/2026", 30, rng, fill=ink)
    p.text(40, 430, "Rx", 80, "serif-bi", (20, 40, 90))
    handwrite(p, 160, 470, "Sertraline 50 mg tabs", 40, rng, fill=ink)
    handwrite(p, 160, 550, "Sig: 1 tab PO qd", 38, rng, fill=ink)
    handwrite(p, 160, 630, "Disp: #30 (thirty)", 38, rng, fill=ink)
    handwrite(p, 160, 710, "Refills: 2", 38, rng, fill=ink)
    p.rect((40, 880, 64, 904), outline=(40, 50, 90), width=2)
    p.text(76, 880, "Dispense as written", 18, "sans", (40, 50, 90))
    p.rect((40, 930, 64, 954), outline=(40, 50, 90), width=2)
    p.d.line([(44, 940), (52, 950), (66, 924)], fill=ink, width=4)
    p.text(76, 930, "Substitution permitted", 18, "sans", (40, 50, 90))
    _scribble(p, 520, 1000, 300, rng, ink)
    p.hline(1050, 480, 860, (120, 120, 150))
    p.text(480, 1060, "Prescriber signature", 16, "sans", (40, 50, 90))
    p.text(450, 1190, "Void if altered · Security features listed on back", 14, "sans-i", (90, 90, 120), anchor="ma")
    img = scene(rng, (900, 1200), "oak", [Item(p.img, 0.5, 0.5, 0.78, rot=rng.uniform(-6, -2), tilt=0.06)],
                light=0.35, blur=0.8, quality=72, cast=(255, 244, 226))
    return img, (("name", "Marcus T. Delgado"), ("date_of_birth", "04/11/1979"), ("medication", "Sertraline 50 mg"),
                 ("dea", dea), ("npi", npi))


def s_rx_bottle(rng: random.Random) -> tuple[Image.Image, Truth]:
    rx = _digits(rng, 7)
    lw, lh = 1800, 620
    label = Page(lw, lh, (252, 252, 250))
    x = 470
    label.rect((0, 0, lw, 70), fill=(0, 94, 140))
    label.text(lw / 2, 35, "WALDEN PHARMACY #0412", 30, "sans-b", (255, 255, 255), anchor="mm")
    label.text(lw / 2, 86, "1290 Grand Ave, St Paul MN 55105 · (651) 555-0188", 18, "sans", anchor="ma")
    label.text(x, 130, f"RX# {rx}", 30, "mono-b")
    label.text(lw - x, 134, "DR. R. OYELARAN", 22, "sans", anchor="ra")
    label.text(x, 180, "LAURA BENNETT-OKOYE", 36, "sans-b")
    label.text(x, 232, "TAKE 1 TABLET BY MOUTH", 30, "sans-b")
    label.text(x, 272, "TWICE DAILY", 30, "sans-b")
    label.text(x, 330, "LAMOTRIGINE 100MG TABLET", 27, "cond-b")
    label.lines(x, 374, ["QTY: 60        REFILLS: 2 BEFORE 10/02/27", "FILLED: 11/02/2026   DISCARD AFTER: 11/02/2027",
                         "MFG: UNICHEM   WHITE ROUND TAB  IMPRINT L 100"], 20, "cond", gap=1.35)
    label.rect((x - 20, 470, lw - x + 20, 530), fill=(255, 220, 0))
    label.text(lw / 2, 500, "MAY CAUSE DROWSINESS. DO NOT DRINK ALCOHOL.", 20, "sans-b", anchor="mm")
    code39(label, 150, 140, rx, 300, narrow=2)
    wrapped = cylinder(label.img, arc=0.8)
    bw, bh = wrapped.width + 40, 1500
    bottle = Page(bw, bh, (0, 0, 0))
    bottle.gradient((20, 240, bw - 20, bh - 30), (190, 88, 10), (238, 142, 42), horizontal=True)
    bottle.rect((0, 20, bw, 250), fill=(246, 246, 244), radius=30)
    for k in range(20, bw - 20, 24):
        bottle.vline(k, 30, 240, (214, 214, 212), 6)
    bottle.paste(wrapped, 20, 520)
    mask = Image.new("L", (bw, bh), 0)
    md = ImageDraw.Draw(mask)
    md.rounded_rectangle([20, 230, bw - 20, bh - 30], 50, fill=255)
    md.rounded_rectangle([0, 20, bw - 1, 250], 30, fill=255)
    shade = Image.new("L", (bw, 1))
    for i in range(bw):
        u = (i - bw / 2) / (bw / 2)
        shade.putpixel((i, 0), int(255 * (0.6 + 0.4 * math.sqrt(max(0.0, 1 - u * u)))))
    shade = shade.resize((bw, bh))
    img = ImageChops.multiply(bottle.img, Image.merge("RGB", (shade, shade, shade)))
    out = scene(rng, (900, 1200), "granite", [Item(img, 0.5, 0.52, 0.7, rot=rng.uniform(-3, 3), tilt=0.02,
                                                   mask=mask, shadow=0.3)],
                light=0.3, blur=0.9, quality=70, cast=(255, 246, 232))
    return out, (("name", "LAURA BENNETT-OKOYE"), ("rx_number", rx), ("medication", "LAMOTRIGINE 100MG"))


def _chest_xray(w: int, h: int, rng: random.Random) -> Image.Image:
    g = Image.new("L", (w, h), 8)
    d = ImageDraw.Draw(g)
    cx = w // 2
    d.ellipse([cx - w * 0.36, h * 0.08, cx + w * 0.36, h * 1.2], fill=92)
    d.ellipse([cx - w * 0.31, h * 0.2, cx - w * 0.04, h * 0.82], fill=34)
    d.ellipse([cx + w * 0.04, h * 0.2, cx + w * 0.31, h * 0.84], fill=36)
    d.rectangle([cx - w * 0.035, 0, cx + w * 0.035, h], fill=150)
    d.ellipse([cx - w * 0.08, h * 0.45, cx + w * 0.16, h * 0.8], fill=118)
    for k in range(9):
        y = h * (0.22 + k * 0.065)
        for side in (-1, 1):
            x0 = cx + side * w * 0.04
            x1 = cx + side * w * 0.33
            d.arc([min(x0, x1), y - h * 0.05, max(x0, x1), y + h * 0.1], 180 if side < 0 else 270,
                  270 if side < 0 else 360, fill=140, width=max(w // 120, 3))
    for side in (-1, 1):
        d.line([(cx + side * w * 0.04, h * 0.17), (cx + side * w * 0.3, h * 0.12)], fill=170, width=max(w // 80, 4))
    g = g.filter(ImageFilter.GaussianBlur(w / 90))
    g = ImageChops.add(g, _noise(rng, w // 4, h // 4, (w, h)).point(lambda v: v // 10))
    return Image.merge("RGB", (g, g, g))


def s_xray(rng: random.Random) -> tuple[Image.Image, Truth]:
    pid = _digits(rng, 8)
    screen = Page(1280, 1024, (0, 0, 0))
    screen.paste(_chest_xray(860, 1000, rng), 210, 12)
    c = (236, 236, 210)
    screen.lines(16, 16, ["PETROVIC^DRAGAN^M", f"ID: {pid}", "DOB: 1952-03-11  M  074Y", "ACC: RA2611040117"], 20,
                 "mono", c, gap=1.3)
    for i, t in enumerate(["ST BRIDGET GENERAL HOSP", "CR  CHEST PA", "2026-11-04  08:14:37", "Se: 1  Im: 1/1"]):
        screen.text(1264, 16 + i * 26, t, 20, "mono", c, anchor="ra")
    screen.lines(16, 950, ["W: 4095  L: 2047", "Zoom: 62%"], 20, "mono", c, gap=1.3)
    screen.lines(1100, 950, ["kVp: 110", "mAs: 2.5"], 20, "mono", c, gap=1.3)
    screen.text(250, 200, "R", 44, "sans-b", (255, 255, 255))
    img = screen_photo(screen.img, rng, (1280, 960), tilt=0.07, skew=-0.06, rot=-2.5, width=0.8, moire=0.12)
    return img, (("name", "PETROVIC^DRAGAN^M"), ("patient_id", pid), ("date_of_birth", "1952-03-11"))


def s_wristband(rng: random.Random) -> tuple[Image.Image, Truth]:
    mrn = "00" + _digits(rng, 6)
    band = Page(1800, 230, (250, 250, 250))
    band.rect((0, 0, 200, 230), fill=(236, 236, 236))
    for y in (60, 170):
        band.d.ellipse([70, y - 16, 102, y + 16], fill=(180, 180, 180))
    band.text(230, 20, "OKONKWO, CHIDINMA A", 40, "sans-b")
    band.text(230, 78, "DOB: 07/22/1979   F   47Y", 30, "mono-b")
    band.text(230, 122, f"MRN: {mrn}   FIN: 2611040093", 30, "mono")
    band.text(230, 166, "ADM: 11/02/2026   DR HALVORSEN, P", 26, "mono")
    code39(band, 1010, 30, mrn, 170, narrow=3)
    band.rect((1640, 0, 1800, 230), fill=(220, 40, 40))
    band.text(1720, 115, "ALLERGY\nPCN", 24, "sans-b", (255, 255, 255), anchor="mm")

    def wave(x: float, y: float) -> tuple[float, float]:
        return x, y + 26 * math.sin(x / 260)

    tall = Page(1800, 300, (0, 0, 0))
    tall.paste(band.img, 0, 35)
    mask = Image.new("L", (1800, 300), 0)
    mask.paste(255, (0, 35, 1800, 265))
    img, mask = mesh_warp(tall.img, wave, 36, 4), mesh_warp(mask, wave, 36, 4)
    out = scene(rng, (1200, 900), "linen", [Item(img, 0.5, 0.5, 0.92, rot=rng.uniform(6, 10), tilt=0.05, mask=mask,
                                                 shadow=0.3)], light=0.3, blur=0.9, quality=70, cast=(240, 246, 255))
    return out, (("name", "OKONKWO, CHIDINMA A"), ("date_of_birth", "07/22/1979"), ("mrn", mrn))


def s_boarding_pass(rng: random.Random) -> tuple[Image.Image, Truth]:
    pnr = _chars(rng, 6, "ABCDEFGHJKLMNPQRSTUVWXYZ23456789")
    etkt = "117" + _digits(rng, 10)
    p = Page(1600, 640, (252, 252, 252))
    p.rect((0, 0, 1600, 90), fill=(16, 40, 80))
    p.text(40, 45, "NORDAVIA", 42, "sans-bi", (255, 255, 255), anchor="lm")
    p.text(1160, 45, "BOARDING PASS / BOARDINGKORT", 24, "sans-b", (255, 255, 255), anchor="rm")
    p.vline(1200, 0, 640, (140, 140, 140), 2)
    for y in range(0, 640, 18):
        p.vline(1200, y, y + 9, (252, 252, 252), 3)
    lab = {"lsize": 15, "vsize": 30, "vstyle": "sans-b", "lfill": (90, 100, 120)}
    _labelled(p, 40, 120, "NAME OF PASSENGER", "LINDQVIST/ASTRID MS", **lab)
    _labelled(p, 40, 200, "FROM", "COPENHAGEN CPH", **lab)
    _labelled(p, 440, 200, "TO", "LISBON LIS", **lab)
    _labelled(p, 40, 280, "FLIGHT", "NV 1473", **lab)
    _labelled(p, 240, 280, "DATE", "04NOV", **lab)
    _labelled(p, 400, 280, "CLASS", "Y", **lab)
    _labelled(p, 520, 280, "SEAT", "17C", **lab)
    _labelled(p, 40, 360, "BOARDING TIME", "09:35", **lab)
    _labelled(p, 300, 360, "GATE", "B8", **lab)
    _labelled(p, 440, 360, "SEQ", "087", **lab)
    _labelled(p, 40, 440, "BOOKING REFERENCE", pnr, **lab)
    _labelled(p, 440, 440, "E-TICKET", etkt, **{**lab, "vstyle": "mono-b", "vsize": 26})
    p.text(40, 560, "Gate closes 20 minutes before departure. Liquids over 100 ml are not allowed in hand luggage.",
           16, "sans-i", (100, 100, 110))
    matrix_code(p, 820, 130, 17, 8, rng, wide=2)
    p.text(1230, 120, "LINDQVIST/ASTRID MS", 22, "sans-b")
    p.lines(1230, 170, ["NV 1473   04NOV", "CPH → LIS", "SEAT 17C", "GATE B8  09:35", f"REF {pnr}"], 24, "cond-b",
            gap=1.5)
    cup = Page(420, 420, (245, 245, 245))
    cup.d.ellipse([0, 0, 419, 419], fill=(240, 240, 238))
    cup.d.ellipse([40, 40, 380, 380], fill=(86, 52, 30))
    cup.d.ellipse([120, 100, 240, 170], fill=(150, 110, 80))
    cup_mask = Image.new("L", (420, 420), 0)
    ImageDraw.Draw(cup_mask).ellipse([0, 0, 419, 419], fill=255)
    items = [Item(p.img, 0.46, 0.5, 0.8, rot=rng.uniform(-5, -2), tilt=0.1, skew=0.02),
             Item(cup.img, 0.88, 0.2, 0.22, mask=cup_mask, shadow=0.6)]
    img = scene(rng, (1440, 1080), "laminate", items, light=0.3, blur=0.8, quality=74)
    return img, (("name", "LINDQVIST/ASTRID"), ("booking_reference", pnr), ("e_ticket", etkt))


def _gh_bar(p: Page) -> None:
    p.rect((0, 0, p.w, 62), fill=(36, 41, 47))
    p.d.ellipse([24, 15, 56, 47], fill=(240, 240, 240))
    p.rect((80, 16, 400, 46), outline=(90, 96, 104), radius=6)
    p.text(96, 31, "Type / to search", 15, "sans", (150, 156, 164), anchor="lm")
    p.d.ellipse([p.w - 56, 17, p.w - 28, 45], fill=(120, 150, 110))


def s_github_token(rng: random.Random) -> tuple[Image.Image, Truth]:
    token = github_token(rng)
    p = Page(1440, 900, (255, 255, 255))
    _gh_bar(p)
    p.text(300, 90, "Settings / Developer Settings", 20, "sans")
    y = 150
    for item, active in (("GitHub Apps", False), ("OAuth Apps", False), ("Personal access tokens", False),
                         ("    Fine-grained tokens", False), ("    Tokens (classic)", True)):
        if active:
            p.rect((288, y - 6, 540, y + 26), fill=(243, 244, 246), radius=6)
            p.rect((288, y - 6, 292, y + 26), fill=(9, 105, 218))
        p.text(300, y, item, 16, "sans-b" if active else "sans", (31, 35, 40))
        y += 40
    x = 600
    p.text(x, 150, "Personal access tokens (classic)", 26, "sans")
    p.rect((1050, 146, 1230, 180), fill=(246, 248, 250), outline=(208, 215, 222), radius=6)
    p.text(1140, 163, "Generate new token", 15, "sans-b", (31, 35, 40), anchor="mm")
    p.hline(196, x, 1360, (216, 222, 228))
    p.text(x, 214, "Tokens you have generated that can be used to access the GitHub API.", 16, "sans",
           (89, 99, 110))
    p.rect((x, 256, 1360, 300), fill=(218, 251, 225), outline=(74, 194, 107), radius=6)
    p.text(x + 16, 278, "Make sure to copy your personal access token now. You won't be able to see it again!", 16,
           "sans", (26, 127, 55), anchor="lm")
    p.rect((x, 316, 1360, 380), fill=(240, 255, 244), outline=(216, 222, 228))
    p.text(x + 20, 348, "✓", 20, "sans-b", (26, 127, 55), anchor="lm")
    p.text(x + 52, 348, token, 17, "mono", (31, 35, 40), anchor="lm")
    p.rect((x + 560, 336, x + 584, 360), outline=(120, 130, 140), radius=4)
    p.rect((1270, 334, 1346, 362), fill=(255, 255, 255), outline=(207, 34, 46), radius=6)
    p.text(1308, 348, "Delete", 14, "sans-b", (207, 34, 46), anchor="mm")
    rows = [("laptop-cli — repo, workflow, read:org", "Last used within the last week", "Expires on Sat, Jan 2 2027"),
            ("homelab-backup — repo", "Last used within the last 2 months", "Expires on Thu, Dec 10 2026"),
            ("old-ci — admin:repo_hook, repo", "Never used", "This token has expired.")]
    y = 400
    for name, used, exp in rows:
        p.hline(y, x, 1360, (216, 222, 228))
        p.text(x + 20, y + 18, name, 16, "sans-b", (9, 105, 218))
        p.text(1040, y + 20, used, 14, "sans", (89, 99, 110))
        p.text(x + 20, y + 46, exp, 14, "sans-i", (154, 103, 0) if "expired" in exp else (89, 99, 110))
        p.rect((1270, y + 20, 1346, y + 48), outline=(207, 34, 46), radius=6)
        p.text(1308, y + 34, "Delete", 14, "sans-b", (207, 34, 46), anchor="mm")
        y += 84
    p.wrap(x, y + 30, "Personal access tokens (classic) function like ordinary OAuth access tokens. They can be used "
           "instead of a password for Git over HTTPS, or can be used to authenticate to the API over Basic "
           "Authentication.", 760, 15, "sans", (89, 99, 110))
    return p.img, (("github_token", token),)


def s_gitlab_token(rng: random.Random) -> tuple[Image.Image, Truth]:
    token = "glpat-" + _chars(rng, 20, string.ascii_letters + string.digits + "-_")
    p = Page(1366, 768, (24, 24, 27))
    p.rect((0, 0, 250, 768), fill=(33, 33, 38))
    p.text(24, 24, "User settings", 17, "sans-b", (236, 236, 239))
    for i, item in enumerate(["Profile", "Account", "Applications", "Chat", "Access tokens", "Emails", "Password",
                              "Notifications", "SSH Keys", "GPG Keys", "Preferences"]):
        if item == "Access tokens":
            p.rect((10, 66 + i * 38, 240, 98 + i * 38), fill=(52, 52, 60), radius=6)
        p.text(30, 72 + i * 38, item, 15, "sans", (200, 200, 206))
    x = 290
    p.text(x, 24, "User Settings  >  Access tokens", 14, "sans", (160, 160, 170))
    p.text(x, 64, "Personal access tokens", 26, "sans-b", (236, 236, 239))
    p.rect((x, 114, 1326, 160), fill=(20, 60, 40), outline=(60, 140, 90), radius=6)
    p.text(x + 16, 137, "Your new personal access token has been created.", 15, "sans", (170, 230, 190),
           anchor="lm")
    p.text(x, 182, "Your new personal access token", 15, "sans-b", (236, 236, 239))
    p.rect((x, 210, x + 560, 250), fill=(16, 16, 18), outline=(90, 90, 100), radius=4)
    p.text(x + 12, 230, token, 16, "mono", (236, 236, 239), anchor="lm")
    for k in range(2):
        p.rect((x + 570 + k * 46, 210, x + 610 + k * 46, 250), outline=(90, 90, 100), radius=4)
    p.text(x, 262, "Make sure you save it - you won't be able to access it again.", 14, "sans", (170, 170, 180))
    p.text(x, 320, "Active personal access tokens (3)", 19, "sans-b", (236, 236, 239))
    heads = ["Token name", "Scopes", "Created", "Last used", "Expires", ""]
    xs = [x, x + 220, x + 500, x + 640, x + 790, x + 930]
    p.rect((x, 356, 1326, 390), fill=(36, 36, 42))
    for hx, hd in zip(xs, heads, strict=True):
        p.text(hx + 10, 366, hd, 14, "sans-b", (200, 200, 206))
    rows = [("renovate-bot", "api, read_repository", "Nov 04, 2026", "Just now", "in 1 year"),
            ("local-dev", "read_api, read_registry", "Sep 12, 2026", "2 days ago", "in 10 months"),
            ("terraform-state", "api", "Mar 03, 2026", "3 weeks ago", "in 4 months")]
    for r, row in enumerate(rows):
        y = 404 + r * 44
        for hx, cell in zip(xs, row, strict=False):
            p.text(hx + 10, y, cell, 14, "sans", (200, 200, 206))
        p.text(xs[-1] + 10, y, "Revoke", 14, "sans-b", (230, 100, 100))
        p.hline(y + 32, x, 1326, (50, 50, 56))
    return p.img, (("gitlab_token", token),)


def _code_view(p: Page, x: int, y: int, lines: Sequence[Sequence[tuple[str, RGB]]], size: int = 18,
               gutter: RGB = (110, 118, 129), lh: float = 1.55, start: int = 1) -> None:
    f = font("mono", size)
    for i, parts in enumerate(lines):
        yy = y + i * size * lh
        p.text(x - 16, yy, str(start + i), size, "mono", gutter, anchor="ra")
        cx = x + 14
        for text, colour in parts:
            p.d.text((cx, yy), text, font=f, fill=colour)
            cx += p.d.textlength(text, font=f)


def s_dotenv(rng: random.Random) -> tuple[Image.Image, Truth]:
    stripe = "sk_live_51" + _chars(rng, 22) + _chars(rng, 60)
    akid, secret = _rand_aws(rng)
    dbpw = "Wq9!xLm2#Tv7"
    jwt = _chars(rng, 64, "0123456789abcdef")
    sg = "SG." + _chars(rng, 22, _B62 + "-_") + "." + _chars(rng, 43, _B62 + "-_")
    p = Page(1600, 1000, (30, 30, 30))
    p.rect((0, 0, 1600, 34), fill=(50, 50, 52))
    p.text(800, 17, ".env — orders-service — Visual Studio Code", 14, "sans", (200, 200, 200), anchor="mm")
    p.rect((0, 34, 48, 970), fill=(44, 44, 46))
    p.rect((48, 34, 330, 970), fill=(37, 37, 38))
    p.text(64, 46, "EXPLORER", 13, "sans-b", (190, 190, 190))
    files = ["> .github", "> node_modules", "> src", "> test", ".dockerignore", ".env", ".env.example", ".gitignore",
             "docker-compose.yml", "Dockerfile", "package.json", "README.md", "tsconfig.json"]
    for i, fname in enumerate(files):
        if fname == ".env":
            p.rect((48, 78 + i * 26, 330, 102 + i * 26), fill=(4, 57, 94))
        p.text(76, 82 + i * 26, fname, 15, "sans", (204, 204, 204))
    p.rect((330, 34, 1600, 70), fill=(37, 37, 38))
    p.rect((330, 34, 470, 70), fill=(30, 30, 30))
    p.text(350, 52, ".env", 15, "sans", (255, 255, 255), anchor="lm")
    p.text(450, 52, "×", 16, "sans", (200, 200, 200), anchor="mm")
    p.text(490, 52, "docker-compose.yml", 15, "sans", (150, 150, 150), anchor="lm")
    key, eq, val, com = (156, 220, 254), (212, 212, 212), (206, 145, 120), (106, 153, 85)
    env = [
        [("# --- local dev against the shared staging DB; DO NOT COMMIT ---", com)],
        [("NODE_ENV", key), ("=", eq), ("development", val)],
        [("PORT", key), ("=", eq), ("8080", val)],
        [("DATABASE_URL", key), ("=", eq), (f"postgres://orders_svc:{dbpw}@db-stg-1.internal:5432/orders", val)],
        [("REDIS_URL", key), ("=", eq), ("redis://cache.internal:6379/0", val)],
        [],
        [("STRIPE_SECRET_KEY", key), ("=", eq), (stripe, val)],
        [("AWS_ACCESS_KEY_ID", key), ("=", eq), (akid, val)],
        [("AWS_SECRET_ACCESS_KEY", key), ("=", eq), (secret, val)],
        [("AWS_REGION", key), ("=", eq), ("eu-central-1", val)],
        [("SENDGRID_API_KEY", key), ("=", eq), (sg, val)],
        [("JWT_SECRET", key), ("=", eq), (jwt, val)],
        [],
        [("FEATURE_FLAGS", key), ("=", eq), ("checkout_v2,new_search", val)],
        [("LOG_LEVEL", key), ("=", eq), ("debug", val)],
    ]
    _code_view(p, 400, 90, env, size=17)
    p.rect((0, 970, 1600, 1000), fill=(0, 122, 204))
    p.text(16, 985, "main*   ⊗ 0  ⚠ 0", 14, "sans", (255, 255, 255), anchor="lm")
    p.text(1584, 985, "Ln 8, Col 41   Spaces: 2   UTF-8   LF   Properties", 14, "sans", (255, 255, 255),
           anchor="rm")
    return p.img, (("password", dbpw), ("stripe_key", stripe), ("aws_access_key_id", akid),
                   ("aws_secret_access_key", secret), ("sendgrid_key", sg), ("jwt_secret", jwt))


def s_terminal_aws(rng: random.Random) -> tuple[Image.Image, Truth]:
    k1, s1 = _rand_aws(rng)
    k2, s2 = _rand_aws(rng)
    acct = _digits(rng, 12)
    p = Page(1280, 800, (48, 10, 36))
    p.rect((0, 0, 1280, 34), fill=(60, 60, 60))
    p.text(640, 17, "dev@build-07: ~", 15, "sans-b", (230, 230, 230), anchor="mm")
    green, white, blue = (138, 226, 52), (238, 238, 236), (114, 159, 207)
    rows: list[list[tuple[str, RGB]]] = [
        [("dev@build-07", green), (":", white), ("~", blue), ("$ cat ~/.aws/credentials", white)],
        [("[default]", white)], [(f"aws_access_key_id = {k1}", white)], [(f"aws_secret_access_key = {s1}", white)],
        [("region = eu-west-1", white)], [], [("[prod-admin]", white)], [(f"aws_access_key_id = {k2}", white)],
        [(f"aws_secret_access_key = {s2}", white)], [],
        [("dev@build-07", green), (":", white), ("~", blue), ("$ aws sts get-caller-identity --profile prod-admin",
                                                                white)],
        [("{", white)], [('    "UserId": "AIDA' + _chars(rng, 17, string.ascii_uppercase + "234567") + '",', white)],
        [(f'    "Account": "{acct}",', white)], [(f'    "Arn": "arn:aws:iam::{acct}:user/ci-admin"', white)],
        [("}", white)], [("dev@build-07", green), (":", white), ("~", blue), ("$ ", white)],
    ]
    f = font("mono", 20)
    for i, parts in enumerate(rows):
        cx = 14
        for text, colour in parts:
            p.d.text((cx, 50 + i * 29), text, font=f, fill=colour)
            cx += p.d.textlength(text, font=f)
    p.rect((cx, 50 + 16 * 29, cx + 11, 50 + 16 * 29 + 22), fill=white)
    img = screen_photo(p.img, rng, (1280, 960), tilt=0.06, skew=0.07, rot=1.5, width=0.84, ground="walnut")
    return img, (("aws_access_key_id", k1), ("aws_secret_access_key", s1), ("aws_access_key_id", k2),
                 ("aws_secret_access_key", s2))


def _ssh_string(b: bytes) -> bytes:
    return len(b).to_bytes(4, "big") + b


def s_private_key(rng: random.Random) -> tuple[Image.Image, Truth]:
    import base64

    pub = rng.randbytes(32)
    pub_blob = _ssh_string(b"ssh-ed25519") + _ssh_string(pub)
    check = rng.randbytes(4)
    priv = (check + check + pub_blob + _ssh_string(rng.randbytes(32) + pub) + _ssh_string(b"rita@studio-mbp")
            + b"\x01\x02\x03\x04\x05")
    blob = (b"openssh-key-v1\x00" + _ssh_string(b"none") + _ssh_string(b"none") + _ssh_string(b"")
            + (1).to_bytes(4, "big") + _ssh_string(pub_blob) + _ssh_string(priv))
    b64 = base64.b64encode(blob).decode()
    key_lines = [b64[i : i + 70] for i in range(0, len(b64), 70)]
    p = Page(1260, 820, (206, 212, 222))
    win = (30, 24, 1230, 796)
    p.rect((win[0] + 6, win[1] + 10, win[2] + 6, win[3] + 12), fill=(160, 164, 172), radius=12)
    p.rect(win, fill=(255, 255, 255), radius=10)
    _window(p, win, "rita — -zsh — 100×32")
    prompt = "rita@studio-mbp ~ % "
    lines = [prompt + "ls ~/.ssh", "config          id_ed25519      id_ed25519.pub  known_hosts",
             prompt + "cat ~/.ssh/id_ed25519", "-----BEGIN OPENSSH PRIVATE KEY-----", *key_lines,
             "-----END OPENSSH PRIVATE KEY-----", prompt + "pbcopy < ~/.ssh/id_ed25519", prompt]
    y = 74
    for line in lines:
        p.text(48, y, line, 19, "mono", (20, 20, 20))
        y += 27
    return p.img, (("private_key", "-----BEGIN OPENSSH PRIVATE KEY-----"), ("private_key_body", key_lines[1]))


def s_wifi_note(rng: random.Random) -> tuple[Image.Image, Truth]:
    wifi, admin = "girasole!Lago2019", "Lq83!mzPa"
    note = Page(640, 640, (252, 236, 122))
    note.gradient((0, 0, 640, 640), (254, 240, 130), (240, 220, 100))
    ink = (24, 34, 120)
    handwrite(note, 60, 60, "WiFi", 54, rng, fill=ink, stroke=1)
    handwrite(note, 60, 150, "CasaMoretti_5G", 44, rng, fill=ink, stroke=1)
    handwrite(note, 60, 250, f"pw: {wifi}", 44, rng, fill=ink, stroke=1)
    handwrite(note, 60, 380, "router admin", 40, rng, fill=ink, stroke=1)
    handwrite(note, 60, 460, f"admin / {admin}", 42, rng, fill=ink, stroke=1)
    note.d.line([(60, 330), (520, 322)], fill=ink, width=3)
    lap = Page(1400, 900, (46, 48, 52))
    lap.rect((0, 0, 1400, 120), fill=(24, 24, 26))
    for r in range(3):
        for k in range(13):
            lap.rect((60 + k * 98 + r * 20, 150 + r * 96, 140 + k * 98 + r * 20, 230 + r * 96), fill=(28, 28, 30),
                     radius=8)
    lap.rect((480, 520, 920, 820), fill=(56, 58, 62), radius=14)
    items = [Item(lap.img, 0.5, 0.45, 1.15, tilt=0.12, shadow=0.0),
             Item(note.img, 0.72, 0.66, 0.34, rot=rng.uniform(6, 11), tilt=0.08, shadow=0.35)]
    img = scene(rng, (1024, 768), "oak", items, light=0.4, blur=0.9, quality=70, cast=(255, 242, 220))
    return img, (("wifi_password", wifi), ("password", admin))


def s_notes_app(rng: random.Random) -> tuple[Image.Image, Truth]:
    p = Page(720, 1600, (255, 255, 255))
    _status_bar(p, "22:15", False, 50, 22)
    p.text(28, 90, "←", 34, "sans", (60, 60, 60))
    p.text(690, 96, "⋮", 34, "sans-b", (60, 60, 60), anchor="ra")
    p.text(36, 170, "Logins", 44, "sans-b", (20, 20, 20))
    p.text(36, 236, "3 Nov 2026 22:14  |  412 characters", 18, "sans", (130, 130, 130))
    rows = ["gmail  r.haddad.87@gmail.com", "pw Qamar#2018beirut", "", "amazon - same as gmail", "",
            "bank app  user 88214730", "pin 4471", "", "netflix (family)", "haddadfamily / sunset-Cedar-44", "",
            "school portal (Lina)", "lina.haddad / Lina2016!", "", "car insurance policy LV-5520918"]
    p.lines(36, 300, rows, 28, "sans", (30, 30, 30), gap=1.6)
    p.rect((0, 1490, 720, 1600), fill=(248, 248, 248))
    for i, ic in enumerate(["✓", "☰", "A", "✎", "⊕"]):
        p.text(72 + i * 144, 1545, ic, 32, "sans", (90, 90, 90), anchor="mm")
    return p.img, (("email", "r.haddad.87@gmail.com"), ("password", "Qamar#2018beirut"), ("pin", "4471"),
                   ("password", "sunset-Cedar-44"), ("password", "Lina2016!"))


def s_insurance_card(rng: random.Random) -> tuple[Image.Image, Truth]:
    member = "XQB" + _digits(rng, 9)
    p = Page(*CARD, (255, 255, 255))
    p.gradient((0, 0, CARD[0], 120), (0, 84, 150), (0, 140, 170), horizontal=True)
    p.text(40, 60, "Cascadia Health Plan", 40, "serif-b", (255, 255, 255), anchor="lm")
    p.text(CARD[0] - 40, 60, "PPO", 44, "sans-b", (255, 255, 255), anchor="rm")
    lab = {"lsize": 15, "vsize": 28, "vstyle": "sans-b", "lfill": (0, 84, 150)}
    _labelled(p, 40, 150, "Member Name", "PRIYA VENKATARAMAN", **lab)
    _labelled(p, 40, 224, "Member ID", member, **{**lab, "vstyle": "mono-b"})
    _labelled(p, 40, 298, "Group No.", "0047821", **lab)
    _labelled(p, 330, 298, "Effective", "01/01/2026", **lab)
    p.lines(40, 384, ["Dependents:", "01 ARJUN VENKATARAMAN", "02 MEERA VENKATARAMAN"], 18, "sans", (40, 40, 40),
            gap=1.35)
    p.rect((620, 150, 970, 380), outline=(0, 84, 150), width=2, radius=10)
    p.lines(640, 166, ["PCP          $25", "Specialist   $50", "Urgent Care  $75", "ER          $250",
                       "Rx   $10/$35/$70"], 20, "mono", (20, 20, 20), gap=1.45)
    p.lines(620, 400, ["RxBIN  610014", "RxPCN  CHPRX", "RxGRP  CHP4781"], 18, "mono", (20, 20, 20), gap=1.35)
    p.rect((0, CARD[1] - 60, CARD[0], CARD[1]), fill=(230, 240, 246))
    p.text(40, CARD[1] - 30, "Member services 1-800-555-0147 · cascadiahealth.example", 17, "sans", (0, 60, 110),
           anchor="lm")
    item = Item(p.img, 0.5, 0.5, 0.72, rot=rng.uniform(-8, -3), tilt=0.06, skew=0.03, mask=rounded_mask(CARD, 36))
    img = scene(rng, (1024, 768), "laminate", [item], light=0.35, blur=0.8, quality=72, blob=0.2)
    return img, (("member_id", member), ("name", "PRIYA VENKATARAMAN"))


def s_cheque(rng: random.Random) -> tuple[Image.Image, Truth]:
    routing = aba_complete("0213" + _digits(rng, 4))
    account = _digits(rng, 10)
    p = Page(1500, 660, (226, 240, 228))
    for k in range(0, 1500, 6):
        p.vline(k, 0, 660, (220, 236, 222))
    ink = (20, 30, 100)
    p.lines(40, 30, ["DANIEL R. FEINSTEIN", "MAYA L. FEINSTEIN", "48 Orchard Ln", "Ithaca, NY 14850"], 20,
            "sans-b", (30, 30, 30), gap=1.3)
    p.text(1440, 30, "1047", 28, "mono-b", (30, 30, 30), anchor="ra")
    p.text(1080, 110, "DATE", 18, "sans-b", (30, 30, 30))
    p.hline(140, 1150, 1440, (60, 60, 60))
    handwrite(p, 1180, 100, "Nov 4, 2026", 32, rng, fill=ink, slant=0.2)
    p.text(40, 200, "PAY TO THE\nORDER OF", 18, "sans-b", (30, 30, 30))
    p.hline(240, 170, 1160, (60, 60, 60))
    handwrite(p, 200, 196, "Cornell Heights Landscaping", 38, rng, fill=ink, slant=0.2)
    p.rect((1190, 196, 1440, 246), outline=(60, 60, 60), width=2)
    p.text(1200, 221, "$", 26, "sans-b", (30, 30, 30), anchor="lm")
    handwrite(p, 1240, 204, "1,240.00", 34, rng, fill=ink, slant=0.15)
    p.hline(320, 40, 1300, (60, 60, 60))
    handwrite(p, 60, 276, "One thousand two hundred forty and 00/100 ~~~~", 34, rng, fill=ink, slant=0.2)
    p.text(1310, 300, "DOLLARS", 18, "sans-b", (30, 30, 30))
    p.text(40, 360, "Finger Lakes Community Bank", 24, "serif-b", (20, 60, 40))
    p.text(40, 394, "Ithaca, New York", 16, "serif", (20, 60, 40))
    p.text(40, 490, "MEMO", 18, "sans-b", (30, 30, 30))
    p.hline(516, 110, 600, (60, 60, 60))
    handwrite(p, 130, 470, "fall cleanup", 32, rng, fill=ink, slant=0.2)
    p.hline(516, 820, 1440, (60, 60, 60))
    _scribble(p, 860, 470, 420, rng, ink)
    _micr(p, 120, 585, ["T", routing, "T", " ", account, "U", " ", "1047"])
    img = scene(rng, (1400, 900), "walnut", [Item(p.img, 0.5, 0.5, 0.88, rot=rng.uniform(-3, 3), tilt=0.05)],
                light=0.35, blur=0.8, quality=74)
    return img, (("routing_number", routing), ("account_number", account),
                 ("name", "DANIEL R. FEINSTEIN, MAYA L. FEINSTEIN"), ("address", "48 Orchard Ln, Ithaca, NY 14850"))


def s_statement_uk(rng: random.Random) -> tuple[Image.Image, Truth]:
    sort, acct = "802260", _digits(rng, 8)
    gb = iban("GB", "TFBK" + sort + acct)
    p = Page(1100, 1556, (255, 255, 255))
    p.rect((60, 50, 110, 100), fill=(110, 40, 120))
    p.text(125, 52, "Thistle & Forth Bank", 32, "serif-b", (110, 40, 120))
    p.text(1040, 60, "Statement of account", 24, "sans", anchor="ra")
    p.lines(60, 170, ["Mr Callum J Fraser", "Flat 2/1, 64 Hyndland Road", "Glasgow", "G12 9UX"], 21)
    p.rect((600, 160, 1040, 360), fill=(246, 242, 248))
    sort_dashed = f"{sort[:2]}-{sort[2:4]}-{sort[4:]}"
    p.lines(620, 176, ["Classic Current Account", "Account name  MR CALLUM J FRASER", f"Sort code  {sort_dashed}",
                       f"Account number  {acct}", f"IBAN  {iban_spaced(gb)}", "BIC  TFBKGB2E"], 17, gap=1.6)
    p.text(60, 400, "1 October 2026 to 31 October 2026", 20, "sans-b")
    summary = [("Opening balance", "£2,184.22"), ("Money in", "£3,412.50"), ("Money out", "£3,077.91"),
               ("Closing balance", "£2,518.81")]
    for i, (k, v) in enumerate(summary):
        p.text(60 + i * 250, 440, k, 16, fill=(90, 90, 90))
        p.text(60 + i * 250, 464, v, 22, "sans-b")
    cols = [60, 170, 700, 840, 1040]
    y = 530
    p.rect((50, y, 1050, y + 36), fill=(110, 40, 120))
    for x, h in zip(cols, ["Date", "Description", "Money out", "Money in", "Balance"], strict=True):
        p.text(x if x < 600 else x + (100 if x < 1000 else 0), y + 9, h, 16, "sans-b", (255, 255, 255),
               anchor="la" if x < 600 else "ra")
    tx = [("01 Oct", "DD COUNCIL TAX GLASGOW CC", 142.00, 0), ("02 Oct", "CARD TESCO STORES 2341", 38.64, 0),
          ("03 Oct", "FPI ACME ROBOTICS LTD SALARY", 0, 2810.50), ("03 Oct", "SO RENT - J MACLEOD", 875.00, 0),
          ("06 Oct", "CARD SCOTRAIL GLASGOW QS", 24.90, 0), ("08 Oct", "DD SCOTTISH POWER", 96.00, 0),
          ("10 Oct", "CARD PRET A MANGER BYRES RD", 7.85, 0), ("13 Oct", "FPI K FRASER THANKS FOR DINNER", 0, 42.00),
          ("15 Oct", "DD VIRGIN MEDIA", 48.50, 0), ("17 Oct", "CARD ASDA SUPERSTORE", 81.27, 0),
          ("21 Oct", "FPO MONZO SAVINGS POT", 400.00, 0), ("24 Oct", "CARD BOOTS 1120", 12.49, 0),
          ("27 Oct", "FPI HMRC TAX REFUND", 0, 560.00), ("30 Oct", "DD GYM GROUP LTD", 24.99, 0)]
    bal = 2184.22
    y += 50
    for i, (d, desc, out, inn) in enumerate(tx):
        bal += inn - out
        if i % 2:
            p.rect((50, y - 6, 1050, y + 26), fill=(248, 246, 250))
        p.text(60, y, d, 17)
        p.text(170, y, desc, 17, "cond")
        p.text(800, y, f"{out:,.2f}" if out else "", 17, "mono", anchor="ra")
        p.text(940, y, f"{inn:,.2f}" if inn else "", 17, "mono", anchor="ra")
        p.text(1040, y, f"{bal:,.2f}", 17, "mono", anchor="ra")
        y += 36
    p.wrap(60, 1420, "Thistle & Forth Bank plc is authorised by the Prudential Regulation Authority. Your eligible "
           "deposits are protected up to £85,000 by the Financial Services Compensation Scheme.", 980, 14,
           "sans", (110, 110, 110))
    p.text(1040, 1500, "Page 1 of 1", 14, fill=(110, 110, 110), anchor="ra")
    img = scene(rng, (1120, 1580), "glass", [Item(p.img, 0.5, 0.5, 0.97, rot=0.6, shadow=0.1)], light=0.08,
                blur=0.5, grain=0.06, quality=82, cast=(255, 255, 252))
    return img, (("iban", gb), ("sort_code", sort), ("account_number", acct), ("name", "Callum J Fraser"),
                 ("address", "Flat 2/1, 64 Hyndland Road, Glasgow G12 9UX"))


def _browser(p: Page, url: str, tab: str) -> None:
    p.rect((0, 0, p.w, 84), fill=(222, 225, 230))
    p.rect((70, 8, 360, 40), fill=(255, 255, 255), radius=8)
    p.text(90, 24, tab, 14, "sans", (40, 40, 40), anchor="lm")
    p.rect((110, 46, p.w - 120, 78), fill=(255, 255, 255), radius=16)
    p.text(136, 62, url, 15, "sans", (60, 60, 60), anchor="lm")
    p.text(30, 62, "←  →  ⟳", 16, "sans", (90, 90, 90), anchor="lm")


def s_kontoauszug(rng: random.Random) -> tuple[Image.Image, Truth]:
    de = iban("DE", "68050101" + _digits(rng, 10))
    p = Page(1280, 800, (245, 246, 248))
    _browser(p, "https://banking.hanse-direkt.de/konto/umsaetze", "Umsätze – Hanse Direktbank")
    p.rect((0, 84, 1280, 140), fill=(0, 60, 110))
    p.text(40, 112, "Hanse Direktbank", 26, "sans-b", (255, 255, 255), anchor="lm")
    p.text(1240, 112, "Abmelden  |  Postfach (2)", 16, "sans", (220, 230, 240), anchor="rm")
    p.rect((40, 170, 1240, 300), fill=(255, 255, 255), outline=(220, 222, 226), radius=8)
    p.text(64, 188, "Girokonto", 24, "sans-b")
    p.text(64, 226, "Sabine Wöhrle", 19)
    p.text(64, 256, f"IBAN {iban_spaced(de)}", 19, "mono")
    p.text(1216, 190, "Kontostand", 16, "sans", (90, 90, 90), anchor="ra")
    p.text(1216, 214, "1.842,17 EUR", 30, "sans-b", (0, 110, 60), anchor="ra")
    p.text(1216, 258, "Verfügbar 3.842,17 EUR", 16, "sans", (90, 90, 90), anchor="ra")
    y = 330
    p.text(40, y, "Umsätze der letzten 30 Tage", 20, "sans-b")
    y += 40
    p.rect((40, y, 1240, y + 34), fill=(232, 236, 242))
    for x, h in ((60, "Buchungstag"), (220, "Empfänger / Auftraggeber"), (560, "Verwendungszweck")):
        p.text(x, y + 8, h, 15, "sans-b")
    p.text(1220, y + 8, "Betrag", 15, "sans-b", anchor="ra")
    rows = [("03.11.2026", "Hausverwaltung Kerner GmbH", "Miete November Whg 3. OG li", "-940,00"),
            ("02.11.2026", "REWE Markt GmbH", "Kartenzahlung 31.10. Freiburg", "-63,42"),
            ("31.10.2026", "Stadtwerke Freiburg", "Abschlag Strom 10/2026 Vertr. 40028817", "-78,00"),
            ("30.10.2026", "Lehmann Logistik AG", "Gehalt Oktober 2026", "+2.684,35"),
            ("29.10.2026", "PayPal Europe", "Bestellung 1047-2219 Zalando", "-54,95"),
            ("28.10.2026", "Dr. med. dent. Ilse Marquardt", "Rechnung 26-1187 Zahnreinigung", "-120,00"),
            ("27.10.2026", "Techniker Krankenkasse", "Erstattung Osteopathie", "+80,00"),
            ("26.10.2026", "DB Vertrieb GmbH", "Deutschlandticket November", "-58,00")]
    y += 46
    for i, (d, who, why, amt) in enumerate(rows):
        if i % 2:
            p.rect((40, y - 8, 1240, y + 26), fill=(250, 251, 252))
        p.text(60, y, d, 15)
        p.text(220, y, who, 15)
        p.text(560, y, why, 15, "sans", (80, 80, 80))
        p.text(1220, y, amt, 15, "mono-b", (0, 120, 60) if amt.startswith("+") else (170, 30, 30), anchor="ra")
        y += 38
    return p.img, (("iban", de), ("name", "Sabine Wöhrle"))


def s_email_personal(rng: random.Random) -> tuple[Image.Image, Truth]:
    p = Page(1440, 900, (246, 248, 252))
    p.rect((0, 0, 1440, 64), fill=(246, 248, 252))
    p.text(70, 32, "Mail", 24, "sans", (80, 80, 80), anchor="lm")
    p.rect((240, 12, 960, 52), fill=(234, 238, 244), radius=20)
    p.text(280, 32, "Search mail", 17, "sans", (100, 100, 100), anchor="lm")
    p.rect((16, 80, 196, 136), fill=(194, 231, 255), radius=16)
    p.text(106, 108, "Compose", 17, "sans-b", (20, 20, 20), anchor="mm")
    for i, (item, n) in enumerate((("Inbox", "12"), ("Starred", ""), ("Snoozed", ""), ("Sent", ""), ("Drafts", "2"),
                                   ("More", ""))):
        if i == 0:
            p.rect((0, 154, 220, 186), fill=(211, 227, 253), radius=16)
        p.text(40, 170 + i * 36, item, 16, "sans-b" if i == 0 else "sans", (30, 30, 30), anchor="lm")
        p.text(200, 170 + i * 36, n, 14, "sans", (30, 30, 30), anchor="rm")
    p.rect((230, 70, 1430, 890), fill=(255, 255, 255), radius=16)
    p.text(300, 100, "Re: Flat viewing on Saturday", 26, "sans")
    p.d.ellipse([270, 160, 320, 210], fill=(120, 90, 200))
    p.text(295, 185, "A", 24, "sans-b", (255, 255, 255), anchor="mm")
    p.text(340, 162, "Aisha Rahman", 17, "sans-b")
    p.text(470, 163, "<aisha.rahman.91@outlook.com>", 15, "sans", (90, 90, 90))
    p.text(340, 188, "to me", 14, "sans", (90, 90, 90))
    p.text(1400, 164, "08:41 (16 minutes ago)", 14, "sans", (90, 90, 90), anchor="ra")
    body = ["Hi Tom,", "",
            "Saturday at 11 works for us. We've moved since the advert went up, so the new address is "
            "17 Kestrel Close, Heaton, Bradford BD9 4QR. It's the house with the green door at the end of the "
            "cul-de-sac; there's parking on the drive.", "",
            "If you get lost my mobile is 07700 914382, or ring Imran on 07911 248605.", "",
            "Thanks,", "Aisha"]
    y = 240
    for para in body:
        y = y + 14 if not para else p.wrap(340, y, para, 1000, 18, "sans", (32, 32, 32), gap=1.55)
    y += 20
    p.text(340, y, "On Thu, 3 Nov 2026 at 20:14, Tom Whitfield <tom.whitfield@gmail.com> wrote:", 15, "sans",
           (90, 90, 90))
    p.vline(344, y + 30, y + 100, (200, 200, 200), 3)
    p.lines(360, y + 32, ["Hi Aisha, is the room still available? Would Saturday morning suit you for a viewing?",
                          "Best, Tom"], 15, "sans", (110, 110, 110), gap=1.6)
    for i, b in enumerate(("Reply", "Forward")):
        p.rect((340 + i * 150, 800, 470 + i * 150, 840), outline=(120, 120, 120), radius=20)
        p.text(405 + i * 150, 820, b, 15, "sans-b", (60, 60, 60), anchor="mm")
    return p.img, (("address", "17 Kestrel Close, Heaton, Bradford BD9 4QR"), ("phone", "07700 914382"),
                   ("phone", "07911 248605"), ("email", "aisha.rahman.91@outlook.com"),
                   ("email", "tom.whitfield@gmail.com"))


def s_w2(rng: random.Random) -> tuple[Image.Image, Truth]:
    ssn = f"{rng.randint(100, 665)}-{rng.randint(10, 99)}-{rng.randint(1000, 9999)}"
    p = Page(1240, 900, (255, 255, 255))
    red = (190, 30, 40)
    ink = (30, 30, 30)

    def box(x0: int, y0: int, x1: int, y1: int, label: str, value: str = "", mono: bool = True) -> None:
        p.rect((x0, y0, x1, y1), outline=red, width=2)
        p.text(x0 + 6, y0 + 4, label, 13, "cond", red)
        if value:
            p.lines(x0 + 12, y0 + 24, value.split("\n"), 21, "mono" if mono else "sans", ink, gap=1.25)

    box(40, 40, 520, 100, "a  Employee's social security number", ssn)
    p.text(540, 50, "OMB No. 1545-0008", 14, "sans", red)
    p.text(540, 74, "Safe, accurate, FAST! Use", 14, "sans-b", red)
    box(40, 100, 620, 160, "b  Employer identification number (EIN)", "84-2917365")
    box(40, 160, 620, 330, "c  Employer's name, address, and ZIP code",
        "SUMMIT RIDGE OUTFITTERS LLC\n2201 BLAKE ST\nDENVER CO 80205")
    box(40, 330, 620, 390, "d  Control number", "0004127")
    box(40, 390, 620, 450, "e  Employee's first name and initial    Last name", "JESSICA M      TRAN")
    box(40, 450, 620, 580, "f  Employee's address and ZIP code", "3390 W 38TH AVE APT 12\nDENVER CO 80211")
    right = [("1  Wages, tips, other compensation", "58412.77"), ("2  Federal income tax withheld", "6104.18"),
             ("3  Social security wages", "61212.77"), ("4  Social security tax withheld", "3795.19"),
             ("5  Medicare wages and tips", "61212.77"), ("6  Medicare tax withheld", "887.59"),
             ("7  Social security tips", ""), ("8  Allocated tips", ""), ("10  Dependent care benefits", ""),
             ("12a  See instructions for box 12", "D  2800.00")]
    for i, (lab, val) in enumerate(right):
        x0 = 620 if i % 2 == 0 else 920
        y0 = 100 + (i // 2) * 96
        box(x0, y0, x0 + 300, y0 + 96, lab, val)
    box(40, 600, 200, 680, "15  State", "CO")
    box(200, 600, 520, 680, "Employer's state ID number", "48213-0917")
    box(520, 600, 820, 680, "16  State wages, tips, etc.", "58412.77")
    box(820, 600, 1200, 680, "17  State income tax", "2570.16")
    p.text(40, 710, "Form W-2  Wage and Tax Statement", 30, "sans-b", ink)
    p.text(700, 710, "2025", 44, "sans-b", ink)
    p.text(1200, 790, "Department of the Treasury—Internal Revenue Service", 15, "sans", ink, anchor="ra")
    p.text(40, 770, "Copy B—To Be Filed With Employee's FEDERAL Tax Return.", 17, "sans-b", ink)
    p.text(40, 800, "This information is being furnished to the Internal Revenue Service.", 15, "sans", ink)
    img = page_curl(p.img, 0.01, rng)
    img = scene(rng, (1280, 960), "oak", [Item(img, 0.5, 0.5, 0.88, rot=rng.uniform(-4, -1), tilt=0.08, skew=0.03)],
                light=0.35, blur=0.8, quality=72, cast=(255, 246, 232))
    return img, (("ssn", ssn), ("name", "JESSICA M TRAN"), ("address", "3390 W 38TH AVE APT 12, DENVER CO 80211"))


def s_payslip_uk(rng: random.Random) -> tuple[Image.Image, Truth]:
    nino = "JT" + _digits(rng, 6) + rng.choice("ABCD")
    nino_spaced = f"{nino[:2]} {nino[2:4]} {nino[4:6]} {nino[6:8]} {nino[8]}"
    p = Page(1400, 900, (250, 250, 247))
    p.text(40, 36, "Harbourside Care Ltd", 30, "serif-b", (20, 60, 90))
    p.text(1360, 40, "PAY ADVICE", 30, "sans-b", (20, 60, 90), anchor="ra")
    p.hline(90, 40, 1360, (20, 60, 90), 3)
    info = [("Employee", "Ms Joanne Pryce"), ("Employee No", "00482"), ("NI Number", nino_spaced),
            ("Tax code", "1257L"), ("NI category", "A"), ("Pay date", "31/10/2026"), ("Tax period", "7 (monthly)"),
            ("Department", "Night care team")]
    for i, (k, v) in enumerate(info):
        x = 40 + (i % 2) * 680
        y = 112 + (i // 2) * 38
        p.text(x, y, k, 18, "sans", (90, 90, 90))
        p.text(x + 190, y - 2, v, 21, "mono-b")
    y0 = 290
    for x, title in ((40, "Payments"), (720, "Deductions")):
        p.rect((x, y0, x + 640, y0 + 36), fill=(214, 226, 236))
        p.text(x + 12, y0 + 8, title, 18, "sans-b")
    pays = [("Basic pay  160.00 hrs @ 12.60", "2,016.00"), ("Overtime  12.00 hrs @ 18.90", "226.80"),
            ("Sleep-in allowance  3 x 55.00", "165.00"), ("Holiday pay  7.50 hrs", "94.50")]
    deds = [("PAYE tax", "251.40"), ("National Insurance", "111.06"), ("Pension (NEST) 5%", "100.12"),
            ("Union subs UNISON", "14.20")]
    for i, ((a, b), (c, d)) in enumerate(zip(pays, deds, strict=True)):
        y = y0 + 52 + i * 36
        p.text(52, y, a, 18)
        p.text(670, y, b, 18, "mono", anchor="ra")
        p.text(732, y, c, 18)
        p.text(1350, y, d, 18, "mono", anchor="ra")
    y = y0 + 52 + 4 * 36 + 20
    p.hline(y, 40, 1360, (120, 120, 120))
    p.text(52, y + 14, "Total payments", 19, "sans-b")
    p.text(670, y + 14, "2,502.30", 19, "mono-b", anchor="ra")
    p.text(732, y + 14, "Total deductions", 19, "sans-b")
    p.text(1350, y + 14, "476.78", 19, "mono-b", anchor="ra")
    p.rect((900, y + 70, 1360, y + 130), fill=(230, 240, 230), outline=(60, 120, 60), width=2)
    p.text(920, y + 100, "NET PAY", 24, "sans-b", anchor="lm")
    p.text(1340, y + 100, "£2,025.52", 26, "mono-b", anchor="rm")
    p.lines(40, y + 70, ["Year to date:  Taxable pay 16,842.10   Tax 1,702.80   NI 742.35",
                         "Paid by BACS to account ending 4417"], 17, "sans", (70, 70, 70), gap=1.6)
    img = _creases(p.img, (0.5,), vertical=True)
    img = scene(rng, (1200, 900), "cork", [Item(img, 0.5, 0.5, 0.84, rot=rng.uniform(-5, 5), tilt=0.07, skew=-0.04)],
                light=0.4, blur=0.8, quality=70)
    return img, (("ni_number", nino), ("name", "Ms Joanne Pryce"))


def s_informe_alta(rng: random.Random) -> tuple[Image.Image, Truth]:
    nhc = _digits(rng, 7)
    p = Page(1240, 1754, (255, 255, 255))
    p.rect((70, 60, 150, 140), fill=(0, 110, 90), radius=10)
    p.text(110, 100, "+", 70, "sans-b", (255, 255, 255), anchor="mm")
    p.lines(170, 62, ["HOSPITAL UNIVERSITARIO VIRGEN DEL PILAR", "Servicio de Medicina Interna",
                      "Avda. de la Ilustración 14 · 50012 Zaragoza"], 20, "sans-b", (0, 90, 75), gap=1.35)
    p.text(620, 200, "INFORME DE ALTA HOSPITALARIA", 32, "serif-b", anchor="ma")
    p.rect((70, 260, 1170, 420), outline=(0, 90, 75), width=2)
    p.lines(90, 276, ["Paciente: MARTÍNEZ ROBLES, ANTONIO", "Fecha de nacimiento: 11/02/1949 (77 años)",
                      f"NHC: {nhc}     Cama: 412-B"], 22, "sans-b", gap=1.55)
    p.lines(700, 276, ["Fecha de ingreso: 28/10/2026", "Fecha de alta: 03/11/2026", "Médico: Dra. L. Saldaña"], 20,
            gap=1.6)
    sections = [
        ("Motivo de ingreso", "Disnea progresiva y fiebre de 38,6 °C de tres días de evolución, con tos productiva."),
        ("Antecedentes personales", "Hipertensión arterial. Diabetes mellitus tipo 2 en tratamiento con "
         "metformina. EPOC GOLD 2. Exfumador desde 2015 (40 paquetes-año). Alergia a penicilina: no conocida."),
        ("Diagnóstico principal", "Neumonía adquirida en la comunidad en lóbulo inferior derecho (CURB-65: 2)."),
        ("Diagnósticos secundarios", "Reagudización de EPOC. Insuficiencia renal aguda prerrenal, resuelta."),
        ("Tratamiento al alta", "Amoxicilina/clavulánico 875/125 mg cada 8 horas durante 5 días más. Metformina "
         "850 mg cada 12 horas. Enalapril 10 mg cada 24 horas. Salbutamol inhalado a demanda."),
        ("Recomendaciones", "Control por su médico de atención primaria en 7 días. Radiografía de tórax de control "
         "en 6 semanas. Acudir a Urgencias si reaparece fiebre o empeora la disnea."),
    ]
    y = 460
    for title, text in sections:
        p.text(70, y, title, 22, "sans-b", (0, 90, 75))
        y = p.wrap(70, y + 36, text, 1100, 21, "serif", gap=1.5) + 22
    p.text(70, y + 40, "Fdo.: Dra. Lucía Saldaña Ferrer — Médico Adjunto", 20, "sans")
    p.text(70, y + 72, "Nº Colegiado 50/4812937", 18, "sans", (80, 80, 80))
    _scribble(p, 760, y + 40, 260, rng)
    p.text(620, 1700, "Página 1 de 1 — Documento confidencial", 15, "sans-i", (110, 110, 110), anchor="ma")
    img = page_curl(p.img, 0.007, rng)
    img = scene(rng, (960, 1280), "laminate", [Item(img, 0.5, 0.5, 0.9, rot=rng.uniform(-2, 2), tilt=0.05)],
                light=0.3, blur=0.7, quality=74, blob=0.3)
    return img, (("name", "MARTÍNEZ ROBLES, ANTONIO"), ("date_of_birth", "11/02/1949"), ("nhc", nhc),
                 ("diagnosis", "Neumonía adquirida en la comunidad"))


def s_slack_key_photo(rng: random.Random) -> tuple[Image.Image, Truth]:
    key = "sk-proj-" + _chars(rng, 40, _B62 + "-_") + "T3BlbkFJ" + _chars(rng, 40, _B62 + "-_")
    p = Page(1440, 900, (255, 255, 255))
    p.rect((0, 0, 260, 900), fill=(63, 14, 64))
    p.text(20, 30, "acme-eng", 22, "sans-b", (255, 255, 255))
    for i, ch in enumerate(["# general", "# backend", "# deploys", "# incidents", "# random"]):
        if ch == "# backend":
            p.rect((0, 86 + i * 34, 260, 116 + i * 34), fill=(18, 100, 163))
        p.text(24, 90 + i * 34, ch, 17, "sans", (230, 220, 230))
    p.text(20, 290, "Direct messages", 15, "sans-b", (200, 190, 200))
    for i, dm in enumerate(["Sofia Lindgren", "Marek Duda", "Priya Shah"]):
        p.text(24, 322 + i * 34, dm, 17, "sans", (230, 220, 230))
    p.text(290, 24, "# backend", 22, "sans-b")
    p.hline(70, 260, 1440, (222, 222, 222))
    msgs = [("Marek Duda", "10:14", ["vault is down again, anyone have the prod OpenAI key?",
                                     "my .env lost it and the nightly summariser is failing"]),
            ("Sofia Lindgren", "10:16", ["here, rotate it after the incident pls"]),
            ("Marek Duda", "10:17", ["thanks! will do"])]
    y = 100
    for who, when, lines in msgs:
        p.rect((290, y, 336, y + 46), fill=(200, 170, 120) if who.startswith("M") else (120, 170, 200), radius=8)
        p.text(352, y, who, 18, "sans-b")
        p.text(352 + p.length(who, 18, "sans-b") + 10, y + 3, when, 14, "sans", (120, 120, 120))
        y = p.lines(352, y + 28, lines, 18, "sans", (29, 28, 29), gap=1.5)
        if who.startswith("S"):
            p.rect((352, y + 4, 1400, y + 52), fill=(247, 247, 247), outline=(222, 222, 222), radius=6)
            p.text(366, y + 28, key, 18, "mono", (200, 30, 90), anchor="lm")
            y += 60
        y += 22
    p.rect((290, 820, 1410, 880), outline=(190, 190, 190), width=2, radius=8)
    p.text(310, 850, "Message #backend", 17, "sans", (150, 150, 150), anchor="lm")
    img = screen_photo(p.img, rng, (1440, 1080), tilt=0.05, skew=0.07, rot=-2, width=0.9, ground="granite",
                       moire=0.08, glare=0.12)
    return img, (("openai_key", key),)


def s_bank_app_transfer(rng: random.Random) -> tuple[Image.Image, Truth]:
    bank, branch, acct = "30004", "02837", "000" + _digits(rng, 8)
    fr = iban("FR", bank + branch + acct + rib_key(bank, branch, acct))
    p = Page(720, 1560, (244, 245, 250))
    _status_bar(p, "09:15", False, 50, 22)
    p.text(40, 110, "✕", 30, "sans", (40, 40, 40))
    p.d.ellipse([300, 180, 420, 300], fill=(0, 170, 110))
    p.d.line([(330, 242), (352, 266), (392, 214)], fill=(255, 255, 255), width=10)
    p.text(360, 340, "Virement envoyé", 36, "sans-b", anchor="ma")
    p.text(360, 400, "850,00 €", 56, "sans-b", (20, 20, 20), anchor="ma")
    p.rect((30, 500, 690, 1150), fill=(255, 255, 255), radius=20)
    rows = [("Bénéficiaire", "Hélène Dufresne-Mercier"), ("IBAN", iban_spaced(fr)),
            ("Motif", "Loyer novembre appt 12"),
            ("Date d'exécution", "04/11/2026"), ("Type", "Virement instantané"), ("Depuis", "Compte courant ••• 7719"),
            ("Référence", "2611-0482-7713")]
    y = 530
    for k, v in rows:
        p.text(60, y, k, 20, "sans", (110, 110, 120))
        if k == "IBAN":
            p.text(60, y + 30, v[:19], 24, "mono-b")
            p.text(60, y + 62, v[19:].strip(), 24, "mono-b")
            y += 124
        else:
            p.text(60, y + 30, v, 24, "sans-b")
            y += 88
    p.rect((30, 1400, 690, 1490), fill=(0, 90, 200), radius=45)
    p.text(360, 1445, "Terminé", 26, "sans-b", (255, 255, 255), anchor="mm")
    return p.img, (("iban", fr), ("name", "Hélène Dufresne-Mercier"))


# =========================================================================== benign pictures


def b_menu(rng: random.Random) -> tuple[Image.Image, Truth]:
    p = Page(1000, 1400, (250, 245, 232))
    p.rect((30, 30, 970, 1370), outline=(120, 40, 30), width=3)
    p.text(500, 70, "Trattoria Il Gabbiano", 56, "serif-bi", (120, 40, 30), anchor="ma")
    p.text(500, 146, "cucina romana dal 1987", 22, "serif-i", (90, 70, 60), anchor="ma")
    menu = [("Antipasti", [("Carciofi alla giudia", "crisp fried artichokes", "9"),
                           ("Supplì al telefono (2)", "rice croquettes, mozzarella", "6"),
                           ("Burrata e alici", "burrata, Cantabrian anchovies", "13")]),
            ("Primi", [("Cacio e pepe", "tonnarelli, pecorino, black pepper", "12"),
                       ("Carbonara", "rigatoni, guanciale, egg yolk", "13"),
                       ("Amatriciana", "bucatini, guanciale, tomato", "12,50")]),
            ("Secondi", [("Saltimbocca alla romana", "veal, sage, prosciutto", "19"),
                         ("Coda alla vaccinara", "oxtail braised in tomato", "21"),
                         ("Carciofi e patate al forno (v)", "", "14")]),
            ("Dolci", [("Tiramisù della casa", "", "7"), ("Maritozzo con la panna", "", "5,50")])]
    y = 220
    for section, items in menu:
        p.text(500, y, section, 32, "serif-b", (120, 40, 30), anchor="ma")
        y += 56
        for name, desc, price in items:
            p.text(90, y, name, 24, "serif")
            p.text(910, y, f"€ {price}", 24, "serif", anchor="ra")
            if desc:
                p.text(110, y + 32, desc, 18, "serif-i", (100, 90, 80))
                y += 30
            y += 44
        y += 16
    p.hline(1250, 90, 910, (120, 40, 30))
    p.text(500, 1266, "Via dei Coronari 41 · 00186 Roma", 19, "serif", anchor="ma")
    p.text(500, 1296, "Tel. +39 06 6880 1423 · www.ilgabbiano-roma.it", 19, "serif", anchor="ma")
    p.text(500, 1326, "Coperto € 2,50 · Servizio non incluso", 16, "serif-i", (100, 90, 80), anchor="ma")
    img = scene(rng, (1080, 1440), "wood", [Item(p.img, 0.5, 0.5, 0.76, rot=rng.uniform(-6, 6), tilt=0.09)],
                light=0.45, blur=0.9, quality=72, cast=(255, 228, 190))
    return img, ()


def b_museum_sign(rng: random.Random) -> tuple[Image.Image, Truth]:
    p = Page(1400, 900, (24, 70, 52))
    p.rect((20, 20, 1380, 880), outline=(220, 210, 170), width=4)
    p.text(700, 60, "STADTMUSEUM WEINHAUS", 62, "serif-b", (240, 236, 220), anchor="ma")
    p.text(700, 150, "Öffnungszeiten · Opening hours", 34, "sans", (220, 210, 170), anchor="ma")
    rows = [("Dienstag – Freitag", "10 – 18 Uhr"), ("Samstag, Sonntag, Feiertage", "11 – 19 Uhr"),
            ("Montag", "geschlossen / closed")]
    for i, (a, b) in enumerate(rows):
        p.text(120, 240 + i * 70, a, 38, "sans", (240, 236, 220))
        p.text(1280, 240 + i * 70, b, 38, "sans-b", (240, 236, 220), anchor="ra")
    p.hline(470, 120, 1280, (220, 210, 170), 2)
    p.text(120, 500, "Eintritt 8 € · ermäßigt 5 € · unter 18 Jahren frei", 32, "sans", (240, 236, 220))
    p.text(120, 560, "Jeden ersten Sonntag im Monat: Eintritt frei", 28, "sans-i", (220, 210, 170))
    p.text(120, 660, "Führungen & Gruppen:", 30, "sans-b", (240, 236, 220))
    p.text(120, 710, "info@stadtmuseum-weinhaus.de · +49 761 201-2501", 30, "sans", (240, 236, 220))
    p.text(120, 760, "www.stadtmuseum-weinhaus.de", 30, "sans", (240, 236, 220))
    img = scene(rng, (1280, 960), "plaster", [Item(p.img, 0.52, 0.48, 0.7, skew=0.22, tilt=0.03, shadow=0.3)],
                light=0.35, blur=0.8, quality=74)
    return img, ()


def b_receipt(rng: random.Random) -> tuple[Image.Image, Truth]:
    p = Page(560, 1500, (248, 248, 244))
    c = 280
    p.text(c, 30, "FRESHWAY SUPERSTORES", 30, "cond-b", anchor="ma")
    p.lines(40, 80, ["    Unit 4, Riverside Retail Park", "         Norwich NR1 2DD", "        Tel 01603 761400",
                     "       VAT No. GB 482 9137 05"], 18, "mono", gap=1.3)
    items = [("SEMI SKIMMED MILK 2L", "1.65"), ("BANANAS LOOSE", ""), (" 0.852 kg @ £0.94/kg", "0.80"),
             ("SOURDOUGH LOAF", "2.20"), ("FREE RANGE EGGS 12", "3.45"), ("CHEDDAR MATURE 400G", "3.90"),
             ("PASTA FUSILLI 500G", "0.95"), ("CHOPPED TOMATOES 4PK", "2.40"), ("COFFEE BEANS 1KG", "11.50"),
             ("KITCHEN ROLL 4PK", "3.25"), ("*MEMBER SAVING", "-1.00")]
    y = 210
    for name, price in items:
        p.text(30, y, name, 20, "mono")
        p.text(530, y, price, 20, "mono", anchor="ra")
        y += 30
    p.text(30, y + 10, "10 ITEMS", 20, "mono")
    p.text(30, y + 46, "BALANCE DUE", 26, "mono-b")
    p.text(530, y + 46, "29.10", 26, "mono-b", anchor="ra")
    y += 100
    p.lines(30, y, ["VISA CONTACTLESS             29.10", "CARD NUMBER  XXXX XXXX XXXX 1234",
                    "AID A0000000031010    PAN SEQ 01", "AUTH CODE 083214", "MERCHANT 4821330711",
                    "TID 48213307", "CARDHOLDER COPY - RETAIN", "", "VAT  RATE   NET    VAT",
                    "A    0%     17.55  0.00", "B    20%     9.63  1.92", "", "04/11/26 09:31 ST:0412 OP:118 TR:5521"],
            19, "mono", gap=1.35)
    y += 13 * 19 * 1.35 + 20
    p.text(c, y, "THANK YOU FOR SHOPPING WITH US", 19, "mono-b", anchor="ma")
    code39(p, 60, int(y + 50), "0412-5521", 80, narrow=2)
    img = page_curl(p.img, 0.012, rng)
    img = scene(rng, (900, 1200), "granite", [Item(img, 0.5, 0.5, 0.5, rot=rng.uniform(-8, 8), tilt=0.05)],
                light=0.35, blur=0.9, quality=70)
    return img, ()


def b_parking_ticket(rng: random.Random) -> tuple[Image.Image, Truth]:
    p = Page(600, 900, (250, 250, 246))
    p.rect((0, 0, 600, 110), fill=(0, 80, 60))
    p.text(300, 30, "ASHBOURNE DISTRICT COUNCIL", 24, "sans-b", (255, 255, 255), anchor="ma")
    p.text(300, 66, "PAY & DISPLAY", 28, "sans-b", (255, 255, 255), anchor="ma")
    p.lines(40, 140, ["Car park: Market Street", "Tariff 3 — up to 2 hours", "Amount paid  £3.40",
                      "Paid by contactless", "Purchased 12:35 04/11/26"], 26, "mono", gap=1.5)
    p.text(300, 380, "EXPIRES", 36, "sans-b", anchor="ma")
    p.text(300, 430, "14:35", 96, "mono-b", anchor="ma")
    p.text(300, 550, "04 NOV 2026", 40, "mono-b", anchor="ma")
    p.lines(40, 640, ["Machine No 0417", "Ticket No 028361"], 24, "mono", gap=1.5)
    p.text(300, 780, "DISPLAY THIS SIDE UP", 26, "sans-b", anchor="ma")
    p.text(300, 820, "CLEARLY ON YOUR DASHBOARD", 26, "sans-b", anchor="ma")
    img = scene(rng, (800, 600), "dashboard", [Item(p.img, 0.45, 0.55, 0.42, rot=rng.uniform(80, 86), tilt=0.12,
                                                    skew=0.04)], light=0.4, blur=0.8, quality=70, glare=0.2)
    return img, ()


def b_departures(rng: random.Random) -> tuple[Image.Image, Truth]:
    p = Page(1280, 720, (8, 22, 56))
    p.rect((0, 0, 1280, 70), fill=(16, 40, 96))
    p.text(30, 35, "DEPARTURES  ·  Abflug", 36, "sans-b", (255, 255, 255), anchor="lm")
    p.text(1250, 35, "09:41", 40, "mono-b", (255, 214, 0), anchor="rm")
    heads = [(30, "Time"), (160, "Flight"), (360, "Destination"), (880, "Gate"), (1000, "Remarks")]
    for x, h in heads:
        p.text(x, 86, h, 20, "sans", (170, 190, 230))
    rows = [("09:50", "LH 2373", "München", "B12", "Boarding"), ("09:55", "EW 7582", "Palma de Mallorca", "C4",
                                                                   "Gate open"),
            ("10:05", "AF 1419", "Paris CDG", "A21", "Go to gate"), ("10:10", "KL 1776", "Amsterdam", "A18", ""),
            ("10:20", "TK 1724", "Istanbul", "D3", "Delayed 10:55"), ("10:25", "U2 4512", "London Gatwick", "C9", ""),
            ("10:40", "LX 1073", "Zürich", "A24", ""), ("10:45", "SK 674", "Copenhagen", "B7", ""),
            ("11:00", "IB 3151", "Madrid", "C11", "Cancelled"), ("11:05", "LH 1206", "Wien", "B14", ""),
            ("11:15", "FR 1868", "Dublin", "D8", "")]
    for i, row in enumerate(rows):
        y = 124 + i * 52
        if i % 2:
            p.rect((0, y - 8, 1280, y + 40), fill=(12, 30, 70))
        for (x, _), cell in zip(heads, row, strict=True):
            colour = (255, 214, 0) if x != 1000 else ((255, 90, 90) if cell.startswith(("Del", "Can"))
                                                      else (120, 230, 140))
            p.text(x, y, cell, 28, "mono-b" if x < 360 else "sans", colour)
    img = screen_photo(p.img, rng, (1280, 720), tilt=-0.1, skew=0.12, rot=3, width=0.8, ground="plaster",
                       moire=0.1, glare=0.1)
    return img, ()


def b_conference_slide(rng: random.Random) -> tuple[Image.Image, Truth]:
    p = Page(1280, 720, (255, 255, 255))
    p.rect((0, 0, 1280, 200), fill=(18, 52, 110))
    p.text(70, 60, "Scaling retrieval for", 52, "sans-b", (255, 255, 255))
    p.text(70, 124, "low-resource languages", 52, "sans-b", (255, 255, 255))
    p.paste(portrait(200, 240, rng), 70, 260)
    p.text(310, 290, "Dr. Amara Nwosu", 40, "sans-b", (18, 52, 110))
    p.text(310, 346, "Principal Research Scientist, Lumen Labs", 28, "sans", (60, 60, 70))
    p.text(310, 396, "@amaranwosu · lumenlabs.ai/research", 24, "sans", (90, 90, 100))
    p.text(70, 620, "PyData Berlin 2026 · 14 October · Track B", 24, "sans", (90, 90, 100))
    p.text(1210, 620, "1 / 38", 22, "sans", (120, 120, 130), anchor="ra")
    frame = scene(rng, (1440, 1080), "dark", [Item(p.img, 0.5, 0.4, 0.78, tilt=0.05, skew=-0.08, rot=-1,
                                                   shadow=0.0)], light=0.5, cast=(255, 250, 235), blur=0.0,
                  grain=0.0, quality=None)
    d = ImageDraw.Draw(frame)
    for _ in range(9):
        x, w = rng.uniform(-50, 1400), rng.uniform(170, 240)
        top = rng.uniform(820, 900)
        d.ellipse([x, top, x + w * 0.75, top + w * 0.95], fill=(14, 14, 16))
        d.ellipse([x - w * 0.4, top + w * 0.75, x + w * 1.15, top + w * 2.2], fill=(10, 10, 12))
    return finish(frame, rng, blur=1.2, grain=0.14, quality=66), ()


def b_bar_chart(rng: random.Random) -> tuple[Image.Image, Truth]:
    p = Page(1200, 800, (255, 255, 255))
    p.text(60, 40, "Quarterly revenue by region (EUR m)", 30, "sans-b")
    p.text(60, 84, "FY2026, unaudited", 18, "sans", (110, 110, 110))
    x0, y0, x1, y1 = 120, 150, 1140, 680
    top = 60
    for v in range(0, top + 1, 10):
        y = y1 - (y1 - y0) * v / top
        p.hline(y, x0, x1, (230, 230, 230))
        p.text(x0 - 12, y, str(v), 17, "sans", (110, 110, 110), anchor="rm")
    data = {"Q1": (38.2, 22.5, 11.9), "Q2": (41.7, 24.1, 13.4), "Q3": (39.9, 27.8, 15.2), "Q4": (47.3, 30.6, 18.8)}
    colours = [(31, 119, 180), (255, 127, 14), (44, 160, 44)]
    gw = (x1 - x0) / 4
    for i, (q, vals) in enumerate(data.items()):
        for j, v in enumerate(vals):
            bx = x0 + i * gw + 40 + j * 62
            by = y1 - (y1 - y0) * v / top
            p.rect((bx, by, bx + 54, y1), fill=colours[j])
            p.text(bx + 27, by - 6, f"{v:.1f}", 15, "sans", (50, 50, 50), anchor="md")
        p.text(x0 + i * gw + gw / 2, y1 + 14, q, 20, "sans-b", anchor="ma")
    for j, name in enumerate(["Europe", "North America", "Asia-Pacific"]):
        p.rect((700 + j * 150, 100, 716 + j * 150, 116), fill=colours[j])
        p.text(722 + j * 150, 108, name, 15, "sans", anchor="lm")
    p.text(60, 750, "Source: internal reporting. Figures rounded; totals may not add up.", 15, "sans-i",
           (120, 120, 120))
    return p.img, ()


def b_dashboard(rng: random.Random) -> tuple[Image.Image, Truth]:
    p = Page(1600, 900, (244, 246, 250))
    p.rect((0, 0, 1600, 60), fill=(255, 255, 255))
    p.text(30, 30, "Analytics  ›  example-shop.com", 20, "sans-b", anchor="lm")
    p.text(1570, 30, "Last 30 days ▾", 17, "sans", (80, 80, 80), anchor="rm")
    kpis = [("Visitors", "48,213", "▲ 6.2%"), ("Sessions", "61,904", "▲ 4.8%"), ("Bounce rate", "41.7%", "▼ 1.3 pt"),
            ("Avg. session", "2m 48s", "▲ 9s")]
    for i, (k, v, dlt) in enumerate(kpis):
        x = 30 + i * 392
        p.rect((x, 80, x + 370, 200), fill=(255, 255, 255), radius=10)
        p.text(x + 20, 96, k, 17, "sans", (100, 100, 110))
        p.text(x + 20, 126, v, 38, "sans-b")
        p.text(x + 360, 170, dlt, 16, "sans-b", (20, 150, 80), anchor="ra")
    p.rect((30, 220, 1010, 870), fill=(255, 255, 255), radius=10)
    p.text(50, 236, "Visitors per day", 18, "sans-b")
    vals = [1500 + 300 * math.sin(i / 4) + rng.uniform(-120, 120) - (350 if i % 7 in (5, 6) else 0)
            for i in range(30)]
    lo, hi = min(vals), max(vals)
    pts = [(70 + i * 31, 820 - (v - lo) / (hi - lo) * 480) for i, v in enumerate(vals)]
    for gy in range(300, 840, 90):
        p.hline(gy, 70, 990, (236, 236, 240))
    p.d.line(pts, fill=(60, 110, 220), width=3)
    p.rect((1030, 220, 1570, 870), fill=(255, 255, 255), radius=10)
    p.text(1050, 236, "Top pages", 18, "sans-b")
    pages = [("/", "18,402"), ("/products/trail-runner-x", "6,918"), ("/blog/how-to-wax-skis", "4,377"),
             ("/checkout", "3,904"), ("/products/alpine-shell-jacket", "3,112"), ("/faq/returns", "2,650"),
             ("/stores/freiburg", "1,208")]
    for i, (path, n) in enumerate(pages):
        p.text(1050, 286 + i * 42, path, 16, "mono")
        p.text(1550, 286 + i * 42, n, 16, "sans-b", anchor="ra")
    p.text(1050, 610, "Countries", 18, "sans-b")
    for i, (c, s) in enumerate([("Germany", "31%"), ("Austria", "14%"), ("Switzerland", "12%"), ("France", "9%")]):
        p.text(1050, 650 + i * 40, c, 16)
        p.rect((1200, 654 + i * 40, 1200 + int(s[:-1]) * 9, 670 + i * 40), fill=(120, 160, 230))
        p.text(1550, 650 + i * 40, s, 16, "sans-b", anchor="ra")
    return p.img, ()


PRIDE = ("IT is a truth universally acknowledged, that a single man in possession of a good fortune, must be in "
         "want of a wife. However little known the feelings or views of such a man may be on his first entering a "
         "neighbourhood, this truth is so well fixed in the minds of the surrounding families, that he is "
         "considered as the rightful property of some one or other of their daughters. “My dear Mr. Bennet,” said "
         "his lady to him one day, “have you heard that Netherfield Park is let at last?” Mr. Bennet replied that "
         "he had not. “But it is,” returned she; “for Mrs. Long has just been here, and she told me all about it.” "
         "Mr. Bennet made no answer. “Do not you want to know who has taken it?” cried his wife impatiently. “You "
         "want to tell me, and I have no objection to hearing it.” This was invitation enough.")


def b_book_page(rng: random.Random) -> tuple[Image.Image, Truth]:
    p = Page(1000, 1500, (246, 240, 226))
    p.text(500, 60, "PRIDE AND PREJUDICE", 20, "serif", (90, 80, 70), anchor="ma")
    p.text(500, 150, "CHAPTER I.", 30, "serif-b", anchor="ma")
    y = p.wrap(110, 230, PRIDE, 780, 27, "serif", (30, 28, 26), gap=1.55, justify=True)
    p.text(500, max(y + 40, 1400), "3", 22, "serif", anchor="ma")
    p.gradient((0, 0, 60, 1500), (200, 190, 172), (246, 240, 226), horizontal=True)
    img = page_curl(p.img, 0.018, rng)
    img = scene(rng, (960, 1280), "oak", [Item(img, 0.5, 0.5, 0.92, rot=rng.uniform(-2, 2), tilt=0.06)],
                light=0.4, blur=0.9, quality=72, cast=(255, 236, 205))
    return img, ()


def b_whiteboard(rng: random.Random) -> tuple[Image.Image, Truth]:
    p = Page(1600, 1000, (246, 247, 248))
    p.rect((0, 0, 1599, 999), outline=(170, 172, 176), width=18)
    black, blue, red = (30, 30, 36), (20, 60, 170), (190, 30, 30)
    handwrite(p, 80, 80, "f(x) = x³ − 3x + 1", 56, rng, style="sans", fill=black, slant=0.12, stroke=1)
    handwrite(p, 80, 190, "f'(x) = 3x² − 3 = 0  ⇒  x = ±1", 52, rng, style="sans", fill=blue, slant=0.12, stroke=1)
    handwrite(p, 80, 300, "f(−1) = 3  (max)     f(1) = −1  (min)", 48, rng, style="sans", fill=black, slant=0.12,
              stroke=1)
    handwrite(p, 80, 430, "∫₀¹ f(x) dx = 1/4 − 3/2 + 1 = −1/4", 50, rng, style="sans", fill=red, slant=0.12,
              stroke=1)
    handwrite(p, 80, 800, "HW: 4.2 # 7, 9, 15 — due Fri", 46, rng, style="sans", fill=blue, slant=0.12, stroke=1)
    ox, oy = 1230, 560
    p.d.line([(1000, oy), (1520, oy)], fill=black, width=4)
    p.d.line([(ox, 280), (ox, 880)], fill=black, width=4)
    pts = [(ox + t * 110, oy - (t ** 3 - 3 * t + 1) * 70) for t in [i / 20 - 2.0 for i in range(81)]]
    p.d.line([q for q in pts if 260 < q[1] < 900], fill=red, width=5)
    img = scene(rng, (1440, 1080), "plaster", [Item(p.img, 0.5, 0.5, 0.9, skew=-0.08, tilt=0.03, shadow=0.2)],
                light=0.3, blur=0.9, quality=72, glare=0.25)
    return img, ()


def b_code_no_secrets(rng: random.Random) -> tuple[Image.Image, Truth]:
    p = Page(1440, 900, (255, 255, 255))
    p.rect((0, 0, 1440, 40), fill=(242, 242, 242))
    p.text(20, 20, "auth_client.py — shopfront [~/src/shopfront]", 15, "sans", (60, 60, 60), anchor="lm")
    p.rect((0, 40, 260, 900), fill=(247, 248, 250))
    for i, f in enumerate(["shopfront", "  api", "    auth_client.py", "    orders.py", "  tests", "    test_auth.py",
                           "  pyproject.toml", "  README.md"]):
        if "auth_client" in f:
            p.rect((0, 56 + i * 28, 260, 82 + i * 28), fill=(214, 228, 250))
        p.text(14, 60 + i * 28, f, 15, "sans", (40, 40, 40))
    kw, fn, st, cm, tx, num = (0, 51, 179), (0, 98, 122), (6, 125, 23), (140, 140, 140), (8, 8, 8), (23, 80, 235)
    code = [
        [("import", kw), (" os", tx)], [("from", kw), (" dataclasses ", tx), ("import", kw), (" dataclass", tx)], [],
        [("import", kw), (" bcrypt", tx)], [("import", kw), (" requests", tx)], [],
        [("API_BASE = os.environ.get(", tx), ('"API_BASE"', st), (", ", tx), ('"https://api.internal.example"', st),
         (")", tx)],
        [("API_TOKEN = os.environ[", tx), ('"API_TOKEN"', st), ("]  ", tx), ("# injected by the deploy pipeline", cm)],
        [], [],
        [("@dataclass", fn)], [("class", kw), (" Credentials:", tx)], [("    username: ", tx), ("str", kw)],
        [("    password: ", tx), ("str", kw)], [], [],
        [("def", kw), (" hash_password", fn), ("(password: ", tx), ("str", kw), (") -> ", tx), ("bytes", kw),
         (":", tx)],
        [("    ", tx), ("return", kw), (" bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=", tx), ("12", num),
         ("))", tx)],
        [], [],
        [("def", kw), (" login", fn), ("(creds: Credentials) -> ", tx), ("str", kw), (":", tx)],
        [("    resp = requests.post(", tx), ('f"{API_BASE}/auth/token"', st), (",", tx)],
        [("                         json={", tx), ('"username"', st), (": creds.username, ", tx), ('"password"', st),
         (": creds.password},", tx)],
        [("                         headers={", tx), ('"Authorization"', st), (": ", tx), ('f"Bearer {API_TOKEN}"', st),
         ("}, timeout=", tx), ("10", num), (")", tx)],
        [("    resp.raise_for_status()", tx)],
        [("    token = resp.json()[", tx), ('"access_token"', st), ("]", tx)],
        [("    ", tx), ("return", kw), (" token", tx)],
    ]
    _code_view(p, 330, 60, code, size=17, lh=1.65, gutter=(160, 160, 160))
    p.rect((0, 876, 1440, 900), fill=(242, 242, 242))
    p.text(1420, 888, "27:17   LF   UTF-8   4 spaces   Python 3.12", 13, "sans", (80, 80, 80), anchor="rm")
    return p.img, ()


def b_bus_timetable(rng: random.Random) -> tuple[Image.Image, Truth]:
    p = Page(1100, 1400, (255, 255, 255))
    p.rect((0, 0, 1100, 150), fill=(255, 204, 0))
    p.rect((40, 30, 160, 120), fill=(200, 0, 40), radius=12)
    p.text(100, 75, "42", 60, "sans-b", (255, 255, 255), anchor="mm")
    p.text(190, 40, "Hauptbahnhof → Waldfriedhof", 40, "sans-b")
    p.text(190, 96, "Haltestelle: Schillerplatz", 26, "sans")
    cols = [("Montag – Freitag", 200), ("Samstag", 560), ("Sonn- und Feiertage", 830)]
    for name, x in cols:
        p.text(x, 180, name, 22, "sans-b")
    p.hline(216, 40, 1060, width=2)
    for i, hour in enumerate(range(5, 24)):
        y = 228 + i * 54
        if i % 2 == 0:
            p.rect((40, y - 6, 1060, y + 40), fill=(246, 246, 246))
        p.text(120, y, f"{hour:02d}", 28, "sans-b", anchor="ra")
        wk = [m for m in range(rng.choice([4, 8, 12]), 60, 10 if 6 <= hour <= 19 else 20)]
        sa = [m for m in range(rng.choice([2, 6]), 60, 20)]
        su = [m for m in range(rng.choice([16, 26]), 60, 30)] if hour >= 7 else []
        for (_, x), mins in zip(cols, (wk, sa, su), strict=True):
            p.text(x, y + 4, "  ".join(f"{m:02d}" for m in mins), 22, "mono")
    p.text(40, 1280, "Fahrplanauskunft: www.vag-freiburg.example · Tel. 0761 4511-500", 20, "sans")
    p.text(40, 1320, "Gültig ab 14.12.2025 · Änderungen vorbehalten", 18, "sans-i", (90, 90, 90))
    img = scene(rng, (1024, 1366), "glass", [Item(p.img, 0.5, 0.5, 0.86, skew=0.14, tilt=0.05, shadow=0.2)],
                light=0.35, blur=0.9, quality=70, glare=0.25)
    return img, ()


def b_product_box(rng: random.Random) -> tuple[Image.Image, Truth]:
    first12 = "50" + _digits(rng, 10)
    ean = first12 + ean13_check(first12)
    back = Page(900, 1200, (236, 226, 200))
    back.text(450, 50, "HIGHGROVE TEA CO.", 40, "serif-b", (60, 40, 30), anchor="ma")
    back.text(450, 110, "Earl Grey · 20 tea bags · 40 g ℮", 28, "serif", (60, 40, 30), anchor="ma")
    back.wrap(60, 200, "Ingredients: black tea (97%), natural bergamot flavouring (3%).", 780, 24, "sans")
    back.wrap(60, 290, "Brew one bag in freshly boiled water for 3–4 minutes. Enjoy with or without milk. "
              "Store in a cool, dry place away from strong odours.", 780, 24, "sans")
    back.lines(60, 470, ["Packed in the UK by", "Highgrove Tea Co., 14 Mill Lane, Bath BA1 2XY",
                         "Customer care: 0800 048 2913", "hello@highgrovetea.co.uk"], 22, "sans", gap=1.4)
    back.rect((60, 660, 420, 760), outline=(60, 40, 30), width=2)
    back.lines(76, 672, ["LOT  L26130427", "BEST BEFORE END  08/2028"], 22, "mono-b", gap=1.6)
    back.rect((480, 640, 840, 900), fill=(255, 255, 255))
    ean13(back, 520, 660, ean, 170, module=3)
    back.text(60, 1080, "♻ Carton: widely recycled · Tea bags: compost", 20, "sans", (60, 90, 50))
    side = Page(420, 1200, (120, 30, 40))
    side.text(210, 600, "EARL GREY", 60, "serif-b", (236, 226, 200), anchor="mm")
    items = [Item(side.img, 0.315, 0.5, 0.2, skew=-0.12, shadow=0.3),
             Item(back.img, 0.62, 0.5, 0.44, skew=0.05, shadow=0.35)]
    img = scene(rng, (1200, 1200), "laminate", items, light=0.35, blur=0.8, quality=72)
    return img, ()


def b_concert_poster(rng: random.Random) -> tuple[Image.Image, Truth]:
    p = Page(900, 1300, (250, 90, 50))
    p.gradient((0, 0, 900, 1300), (250, 110, 60), (120, 20, 90))
    for _ in range(40):
        x, y, r = rng.uniform(0, 900), rng.uniform(0, 700), rng.uniform(3, 14)
        p.d.ellipse([x - r, y - r, x + r, y + r], fill=(255, 220, 160))
    p.text(450, 340, "THE PAPER", 110, "cond-b", (255, 246, 220), anchor="ma")
    p.text(450, 460, "LANTERNS", 130, "cond-b", (255, 246, 220), anchor="ma")
    p.text(450, 640, "+ special guests Marlow Vale", 36, "sans-i", (255, 236, 200), anchor="ma")
    p.text(450, 760, "FRIDAY 20 NOVEMBER 2026", 50, "sans-b", (255, 255, 255), anchor="ma")
    p.text(450, 840, "THE FOUNDRY ROOMS · SHEFFIELD", 38, "sans", (255, 255, 255), anchor="ma")
    p.text(450, 940, "Doors 19:30 · Show 20:15", 34, "sans", (255, 236, 200), anchor="ma")
    p.text(450, 1000, "Tickets £18 adv · £22 door", 34, "sans", (255, 236, 200), anchor="ma")
    p.text(450, 1180, "foundryrooms.co.uk · 14+ (under 16s accompanied)", 24, "sans", (255, 236, 200), anchor="ma")
    wall = brick_wall((960, 1280), rng)
    torn = Page(500, 700, (230, 230, 220))
    torn.text(250, 300, "SALE", 120, "sans-b", (40, 40, 40), anchor="mm")
    items = [Item(torn.img, 0.12, 0.3, 0.4, rot=6, shadow=0.2), Item(p.img, 0.54, 0.52, 0.76, rot=-1.5, tilt=0.05)]
    img = scene(rng, (960, 1280), wall, items, light=0.45, blur=0.9, quality=70, cast=(255, 236, 214))
    return img, ()


def b_street_sign(rng: random.Random) -> tuple[Image.Image, Truth]:
    p = Page(1000, 300, (0, 60, 140))
    p.rect((10, 10, 990, 290), outline=(0, 120, 80), width=10)
    p.rect((30, 30, 970, 270), outline=(255, 255, 255), width=4)
    p.text(500, 60, "11e Arrt", 40, "sans", (255, 255, 255), anchor="ma")
    p.text(500, 124, "RUE DE LA ROQUETTE", 76, "cond-b", (255, 255, 255), anchor="ma")
    arrow = Page(800, 180, (250, 250, 250))
    arrow.text(40, 90, "Place de la Bastille", 56, "sans-b", (20, 20, 20), anchor="lm")
    arrow.d.polygon([(700, 40), (780, 90), (700, 140)], fill=(20, 20, 20))
    items = [Item(p.img, 0.45, 0.35, 0.6, skew=0.1, tilt=0.02), Item(arrow.img, 0.55, 0.72, 0.48, skew=0.1)]
    img = scene(rng, (1024, 768), "plaster", items, light=0.4, blur=0.9, quality=70, cast=(255, 240, 220))
    return img, ()


def b_recipe_card(rng: random.Random) -> tuple[Image.Image, Truth]:
    p = Page(1200, 800, (252, 250, 240))
    p.hline(110, 0, 1200, (220, 80, 80), 2)
    for y in range(170, 800, 62):
        p.hline(y, 0, 1200, (160, 190, 220))
    ink = (70, 40, 20)
    handwrite(p, 60, 40, "Banana bread (Grandma's)", 52, rng, fill=ink, stroke=1)
    lines = ["3 ripe bananas, mashed", "75 g melted butter", "150 g sugar  ·  1 egg",
             "1 tsp bicarb  ·  pinch of salt", "190 g plain flour", "Bake 175°C / 60 min  (check at 50!)"]
    for i, line in enumerate(lines):
        handwrite(p, 70, 124 + i * 62, line, 40, rng, fill=ink)
    img = scene(rng, (1024, 768), "oak", [Item(p.img, 0.5, 0.5, 0.8, rot=rng.uniform(-7, -3), tilt=0.06)],
                light=0.4, blur=0.8, quality=72, cast=(255, 240, 215))
    return img, ()


def b_spreadsheet(rng: random.Random) -> tuple[Image.Image, Truth]:
    p = Page(1600, 900, (255, 255, 255))
    p.rect((0, 0, 1600, 110), fill=(33, 115, 70))
    p.text(20, 20, "Q4-orders-export.xlsx", 18, "sans-b", (255, 255, 255))
    for i, t in enumerate(["File", "Home", "Insert", "Page Layout", "Formulas", "Data", "Review", "View"]):
        p.text(20 + i * 110, 70, t, 16, "sans", (230, 240, 230))
    heads = ["Order ID", "Date", "SKU", "EAN", "Product", "Qty", "Unit price", "Total", "Warehouse"]
    widths = [150, 110, 180, 190, 300, 60, 120, 120, 140]
    xs = [50]
    for w in widths[:-1]:
        xs.append(xs[-1] + w)
    p.rect((0, 110, 1600, 136), fill=(240, 240, 240))
    for i, x in enumerate(xs):
        p.text(x + widths[i] / 2, 123, "ABCDEFGHI"[i], 14, "sans", (90, 90, 90), anchor="mm")
    products = [("Trail Runner X", 129.0), ("Alpine Shell Jacket", 249.0), ("Merino Base Layer", 69.0),
                ("Trekking Pole Pair", 89.5), ("Headlamp 400lm", 39.9), ("Dry Bag 20L", 24.0)]
    y = 136
    for r in range(26):
        p.rect((0, y, 50, y + 28), fill=(240, 240, 240))
        p.text(25, y + 14, str(r + 1), 13, "sans", (90, 90, 90), anchor="mm")
        if r == 0:
            cells = heads
        else:
            prod, price = rng.choice(products)
            qty = rng.randint(1, 12)
            e12 = "40" + _digits(rng, 10)
            cells = [f"SO-2026-{4800 + r:05d}", f"{rng.randint(1, 30):02d}/10/2026",
                     f"{prod[:3].upper()}-{rng.randint(1000, 9999)}-{rng.choice(['BLK', 'RED', 'GRN'])}",
                     e12 + ean13_check(e12), prod, str(qty), f"{price:.2f}", f"{price * qty:.2f}",
                     rng.choice(["FR-1", "HH-2", "WRO-1"])]
        for i, (x, c) in enumerate(zip(xs, cells, strict=True)):
            right = r > 0 and i in (5, 6, 7)
            p.text(x + (widths[i] - 8 if right else 6), y + 6, c, 15, "sans-b" if r == 0 else "sans",
                   anchor="ra" if right else "la")
        p.hline(y + 28, 0, 1600, (218, 218, 218))
        y += 28
    for x in xs:
        p.vline(x, 110, y, (218, 218, 218))
    p.rect((0, 870, 1600, 900), fill=(240, 240, 240))
    p.text(20, 885, "Sheet1   Returns   Pivot", 14, "sans", (60, 60, 60), anchor="lm")
    return p.img, ()


def b_newspaper(rng: random.Random) -> tuple[Image.Image, Truth]:
    p = Page(1300, 1700, (236, 232, 222))
    p.text(650, 40, "The Cambridge Evening Ledger", 64, "serif-b", (20, 20, 20), anchor="ma")
    p.hline(130, 40, 1260, width=3)
    p.text(40, 140, "Wednesday 4 November 2026", 20, "serif")
    p.text(1260, 140, "90p", 20, "serif", anchor="ra")
    p.hline(172, 40, 1260)
    p.text(40, 200, "Council approves new cycle lanes", 58, "serif-b")
    p.text(40, 272, "on Mill Road after two-year row", 58, "serif-b")
    p.text(40, 360, "By Hannah Clarke, Transport Reporter", 22, "sans-b", (70, 70, 70))
    p.rect((40, 410, 820, 900), fill=(150, 150, 146))
    p.text(40, 910, "Cyclists on Mill Road last week. Photo: Ledger archive", 18, "serif-i", (70, 70, 70))
    body = ("Plans for segregated cycle lanes along Mill Road were approved by the city council's planning committee "
            "last night by seven votes to four, ending a dispute that has divided traders and residents since 2024. "
            "The scheme will remove 38 parking spaces between the railway bridge and the junction with Coleridge "
            "Road, replacing them with loading bays that can be used before 10am. Supporters said the change was "
            "overdue on one of the busiest cycling routes in the county, where more than 4,000 bicycle journeys are "
            "counted on a typical weekday. Opponents, including the Mill Road Traders' Association, warned that "
            "deliveries would become harder and that some independent shops could close. Work is expected to "
            "begin in the spring and to last about five months, with the road kept open to buses throughout.")
    words = body.split()
    half = len(words) // 2
    p.wrap(40, 960, " ".join(words[:half]), 380, 19, "serif", gap=1.45, justify=True)
    p.wrap(440, 960, " ".join(words[half:]), 380, 19, "serif", gap=1.45, justify=True)
    p.vline(850, 200, 1650, (120, 120, 120))
    p.text(880, 410, "Library extends", 34, "serif-b")
    p.text(880, 452, "weekend hours", 34, "serif-b")
    p.wrap(880, 510, "The Central Library will open until 8pm on Saturdays from next month, the county council "
           "said, after a consultation in which more than 2,300 people asked for longer hours. Sunday opening "
           "will start at 11am instead of noon. The children's floor will host free coding clubs every second "
           "Saturday.", 380, 19, "serif", gap=1.45, justify=True)
    img = scene(rng, (1200, 1500), "walnut", [Item(p.img, 0.5, 0.5, 0.92, rot=rng.uniform(-3, 3), tilt=0.06)],
                light=0.4, blur=0.8, quality=70)
    return img, ()


def b_wall_calendar(rng: random.Random) -> tuple[Image.Image, Truth]:
    p = Page(1200, 1500, (255, 255, 255))
    p.gradient((0, 0, 1200, 560), (120, 160, 210), (230, 220, 200))
    p.d.polygon([(0, 560), (300, 260), (520, 460), (760, 200), (1200, 560)], fill=(80, 100, 90))
    p.d.polygon([(700, 250), (760, 200), (820, 250)], fill=(250, 250, 250))
    p.text(600, 600, "NOVEMBER 2026", 56, "sans-b", (40, 40, 60), anchor="ma")
    days = ["MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"]
    cw, ch, x0, y0 = 160, 140, 40, 700
    for i, d in enumerate(days):
        p.text(x0 + i * cw + cw / 2, y0, d, 20, "sans-b", (200, 40, 40) if i >= 5 else (60, 60, 70), anchor="ma")
    start = 6  # 1 November 2026 is a Sunday
    for day in range(1, 31):
        k = start + day - 1
        col, row = k % 7, k // 7
        x, y = x0 + col * cw, y0 + 36 + row * ch
        p.rect((x, y, x + cw, y + ch), outline=(200, 200, 200))
        p.text(x + 10, y + 8, str(day), 24, "sans", (200, 40, 40) if col >= 5 else (40, 40, 40))
    notes = {5: "Bins", 12: "Book club 7pm", 19: "Bins", 21: "Parkrun", 26: "Half term"}
    for day, note in notes.items():
        k = start + day - 1
        handwrite(p, x0 + (k % 7) * cw + 16, y0 + 36 + (k // 7) * ch + 70, note, 24, rng, fill=(20, 40, 150))
    img = scene(rng, (1080, 1350), "plaster", [Item(p.img, 0.5, 0.52, 0.78, rot=rng.uniform(-1.5, 1.5),
                                                    tilt=0.03)], light=0.35, blur=0.8, quality=74)
    return img, ()


def b_build_log(rng: random.Random) -> tuple[Image.Image, Truth]:
    sha = _chars(rng, 40, "0123456789abcdef")
    digest = _chars(rng, 64, "0123456789abcdef")
    p = Page(1400, 900, (30, 30, 30))
    p.rect((0, 0, 1400, 34), fill=(50, 50, 50))
    p.text(700, 17, "ci@runner-3: ~/shop-api", 15, "sans-b", (220, 220, 220), anchor="mm")
    lines = [
        ("$ git log --oneline -5", (138, 226, 52)),
        (f"{sha[:7]} Fix flaky retry test on slow CI runners", (238, 238, 236)),
        (f"{_chars(rng, 7, '0123456789abcdef')} Bump httpx to 0.28.1", (238, 238, 236)),
        (f"{_chars(rng, 7, '0123456789abcdef')} Add token bucket to the rate limiter", (238, 238, 236)),
        (f"{_chars(rng, 7, '0123456789abcdef')} Merge pull request #412 from feature/search-facets", (238, 238, 236)),
        (f"{_chars(rng, 7, '0123456789abcdef')} Document the password reset flow", (238, 238, 236)),
        ("$ git rev-parse HEAD", (138, 226, 52)),
        (sha, (238, 238, 236)),
        ("$ docker build -t registry.example.org/shop/api:1.14.2 .", (138, 226, 52)),
        (" => [internal] load build definition from Dockerfile                       0.0s", (180, 180, 180)),
        (" => [2/6] RUN pip install --no-cache-dir -r requirements.txt              21.4s", (180, 180, 180)),
        (" => exporting to image                                                     1.9s", (180, 180, 180)),
        (f" => => writing image sha256:{digest}", (180, 180, 180)),
        ("$ pytest -q", (138, 226, 52)),
        ("........................................................................ [ 61%]", (238, 238, 236)),
        ("............................................s.s                         [100%]", (238, 238, 236)),
        ("116 passed, 2 skipped in 14.82s", (138, 226, 52)),
        ("$ ", (138, 226, 52)),
    ]
    for i, (line, colour) in enumerate(lines):
        p.text(16, 50 + i * 46, line, 19, "mono", colour)
    return p.img, ()


def b_nutrition_label(rng: random.Random) -> tuple[Image.Image, Truth]:
    lab = Page(1400, 1100, (255, 255, 255))
    x0 = 450
    lab.rect((x0, 30, x0 + 500, 1070), outline=(0, 0, 0), width=4)
    lab.text(x0 + 16, 40, "Nutrition Facts", 58, "sans-b")
    lab.text(x0 + 16, 116, "8 servings per container", 22)
    lab.text(x0 + 16, 146, "Serving size", 26, "sans-b")
    lab.text(x0 + 484, 146, "1/2 cup (130g)", 26, "sans-b", anchor="ra")
    lab.rect((x0 + 12, 186, x0 + 488, 200), fill=(0, 0, 0))
    lab.text(x0 + 16, 210, "Calories", 44, "sans-b")
    lab.text(x0 + 484, 200, "140", 56, "sans-b", anchor="ra")
    lab.rect((x0 + 12, 272, x0 + 488, 280), fill=(0, 0, 0))
    rows = [("Total Fat 2g", "3%"), ("  Saturated Fat 0g", "0%"), ("Sodium 430mg", "19%"),
            ("Total Carbohydrate 24g", "9%"), ("  Dietary Fiber 6g", "21%"), ("  Total Sugars 1g", ""),
            ("Protein 8g", ""), ("Vitamin D 0mcg", "0%"), ("Calcium 50mg", "4%"), ("Iron 2mg", "10%"),
            ("Potassium 370mg", "8%")]
    y = 296
    for a, b in rows:
        lab.text(x0 + 16, y, a, 24, "sans-b" if not a.startswith(" ") else "sans")
        lab.text(x0 + 484, y, b, 24, "sans-b", anchor="ra")
        lab.hline(y + 36, x0 + 12, x0 + 488, (0, 0, 0))
        y += 50
    lab.wrap(x0 + 16, y + 10, "The % Daily Value tells you how much a nutrient in a serving of food contributes to a "
             "daily diet. 2,000 calories a day is used for general nutrition advice.", 470, 16)
    lab.text(120, 500, "BLACK\nBEANS", 64, "sans-b", (60, 30, 30))
    lab.text(1020, 480, "Ingredients:\nblack beans,\nwater, salt.\nNet wt 15.5 oz\n(439g)", 26, "sans", (60, 60, 60))
    can = cylinder(lab.img, arc=0.72)
    mask = Image.new("L", can.size, 255)
    img = scene(rng, (800, 1000), "granite", [Item(can, 0.5, 0.5, 0.6, rot=rng.uniform(-2, 2), mask=mask)],
                light=0.3, blur=0.8, quality=72)
    return img, ()


def b_chalkboard(rng: random.Random) -> tuple[Image.Image, Truth]:
    p = Page(1200, 1500, (34, 44, 40))
    p.rect((0, 0, 1199, 1499), outline=(120, 84, 50), width=30)
    chalk, yellow, pink = (236, 236, 230), (250, 226, 120), (250, 170, 190)
    handwrite(p, 300, 80, "Tageskarte", 90, rng, style="sans", fill=yellow, slant=0.1, stroke=1)
    dishes = [("Kürbissuppe mit Kernöl", "6,50"), ("Flammkuchen Elsässer Art", "9,80"),
              ("Käsespätzle mit Röstzwiebeln", "12,90"), ("Zwiebelrostbraten, Bratkartoffeln", "21,50"),
              ("Apfelstrudel & Vanillesoße", "5,90")]
    y = 290
    for name, price in dishes:
        handwrite(p, 90, y, name, 46, rng, style="sans", fill=chalk, slant=0.1)
        handwrite(p, 900, y + 56, price + " €", 46, rng, style="sans", fill=pink, slant=0.1)
        y += 190
    handwrite(p, 90, 1280, "Heute: Federweißer 0,2 l  3,80", 44, rng, style="sans", fill=yellow, slant=0.1)
    board = finish(p.img, rng, blur=0.6, grain=0.2)
    img = scene(rng, (960, 1200), brick_wall((960, 1200), rng), [Item(board, 0.5, 0.5, 0.8, tilt=0.04, skew=0.06)],
                light=0.4, blur=0.8, quality=70, cast=(255, 236, 210))
    return img, ()


def b_cinema_ticket(rng: random.Random) -> tuple[Image.Image, Truth]:
    p = Page(800, 420, (250, 248, 240))
    p.text(30, 24, "Lichtspielhaus Apollo", 30, "serif-b", (120, 20, 30))
    p.text(30, 74, "THE SALT ROAD (OmU)  FSK 12", 28, "sans-b")
    p.lines(30, 126, ["Mi 04.11.2026  20:15", "Saal 3 · Reihe 7 · Platz 12", "Normalpreis 11,50 € inkl. MwSt."],
            26, "mono", gap=1.45)
    p.text(30, 270, "Ticket-Nr. 0048-2213-9917 · Kasse 2 · 19:48", 20, "mono", (80, 80, 80))
    code39(p, 30, 310, "00482213", 70, narrow=2)
    p.vline(620, 0, 420, (160, 160, 160))
    p.lines(640, 60, ["SAAL", "3", "REIHE 7", "PLATZ 12"], 30, "sans-b", gap=1.5)
    img = scene(rng, (800, 600), "dark", [Item(p.img, 0.5, 0.5, 0.78, rot=rng.uniform(-10, -4), tilt=0.08)],
                light=0.35, blur=0.8, quality=68, cast=(255, 236, 210))
    return img, ()


def b_shop_hours(rng: random.Random) -> tuple[Image.Image, Truth]:
    p = Page(900, 1000, (38, 36, 34))
    white = (245, 245, 240)
    p.text(450, 60, "Boulangerie Marchal", 60, "serif-bi", white, anchor="ma")
    p.text(450, 170, "Horaires d'ouverture", 40, "sans", white, anchor="ma")
    rows = [("Lundi", "fermé"), ("Mardi – Vendredi", "6h30 – 19h30"), ("Samedi", "7h – 19h"), ("Dimanche", "7h – 13h")]
    for i, (d, h) in enumerate(rows):
        p.text(100, 280 + i * 80, d, 40, "sans", white)
        p.text(800, 280 + i * 80, h, 40, "sans-b", white, anchor="ra")
    p.text(450, 690, "Tél. 03 88 32 14 57", 36, "sans", white, anchor="ma")
    p.text(450, 750, "Commandes : boulangerie-marchal.fr", 32, "sans", white, anchor="ma")
    p.text(450, 860, "Carte bancaire acceptée dès 1 €", 28, "sans-i", white, anchor="ma")
    img = scene(rng, (1024, 768), "dark", [Item(p.img, 0.5, 0.5, 0.5, skew=-0.1, tilt=0.04, shadow=0.0)],
                light=0.3, blur=0.9, quality=70, glare=0.3)
    return img, ()


def b_textbook(rng: random.Random) -> tuple[Image.Image, Truth]:
    p = Page(1100, 1500, (255, 255, 255))
    p.text(60, 50, "Chapter 4 · Kinematics in two dimensions", 20, "sans-i", (90, 90, 90))
    p.text(1040, 50, "97", 20, "sans", (90, 90, 90), anchor="ra")
    p.text(60, 110, "Exercises", 36, "serif-b", (20, 70, 130))
    problems = [
        ("4.7", "A ball is thrown horizontally from the top of a 45.0 m cliff with a speed of 12.0 m/s. (a) How "
                "long is it in the air? (b) How far from the base of the cliff does it land? (c) What is its speed "
                "just before it hits the ground? Ignore air resistance and take g = 9.81 m/s²."),
        ("4.8", "A car travelling at 72 km/h rounds a bend of radius 120 m. Find its centripetal acceleration and "
                "the minimum coefficient of static friction needed to keep it on the road."),
        ("4.9", "A projectile is launched at 30° above the horizontal with an initial speed of 25 m/s from ground "
                "level. Find (a) the maximum height, (b) the time of flight, and (c) the range."),
        ("4.10", "A river 80 m wide flows at 1.5 m/s. A swimmer who can swim at 2.0 m/s relative to the water "
                 "wants to reach the point directly opposite. In which direction must she head, and how long does "
                 "the crossing take?"),
        ("4.11", "Show that for a projectile launched and landing at the same height the range is greatest when "
                 "the launch angle is 45°, and that angles of 45° ± θ give equal ranges."),
    ]
    y = 180
    for num, text in problems:
        p.text(60, y, num, 22, "sans-b", (20, 70, 130))
        y = p.wrap(130, y, text, 900, 22, "serif", gap=1.5, justify=True) + 24
    p.rect((130, y + 10, 700, y + 330), outline=(20, 70, 130), width=2)
    p.d.line([(170, y + 290), (660, y + 290)], fill=(0, 0, 0), width=2)
    p.d.arc([200, y + 60, 640, y + 520], 200, 340, fill=(200, 40, 40), width=3)
    p.text(420, y + 300, "Figure 4.14  Trajectory for problem 4.9", 16, "sans-i", anchor="ma")
    img = scene(rng, (1120, 1520), "glass", [Item(p.img, 0.5, 0.5, 0.97, rot=-0.7, shadow=0.1)], light=0.08,
                blur=0.5, grain=0.05, quality=84, cast=(255, 255, 250))
    return img, ()


def b_weather_app(rng: random.Random) -> tuple[Image.Image, Truth]:
    p = Page(750, 1334, (60, 90, 130))
    p.gradient((0, 0, 750, 1334), (70, 100, 140), (40, 60, 90))
    white = (255, 255, 255)
    _status_bar(p, "08:02", True, 40, 22)
    p.text(375, 110, "Bergen", 44, "sans", white, anchor="ma")
    p.text(375, 170, "9°", 120, "sans-l", white, anchor="ma")
    p.text(375, 320, "Mostly cloudy", 28, "sans", white, anchor="ma")
    p.text(375, 360, "H:11°  L:6°", 28, "sans", white, anchor="ma")
    p.rect((30, 420, 720, 640), fill=(80, 110, 150), radius=20)
    p.text(50, 436, "Showers expected around 14:00. Wind gusts up to 40 km/h.", 18, "sans", white)
    for i, (t, temp) in enumerate([("Now", "9°"), ("09", "9°"), ("10", "10°"), ("11", "10°"), ("12", "11°"),
                                   ("13", "11°")]):
        x = 80 + i * 115
        p.text(x, 490, t, 22, "sans-b", white, anchor="ma")
        p.d.ellipse([x - 18, 530, x + 18, 566], fill=(220, 220, 230))
        p.text(x, 590, temp, 24, "sans-b", white, anchor="ma")
    p.rect((30, 670, 720, 1250), fill=(80, 110, 150), radius=20)
    p.text(50, 686, "10-DAY FORECAST", 18, "sans-b", (210, 220, 235))
    for i, (d, lo, hi) in enumerate([("Today", 6, 11), ("Thu", 5, 9), ("Fri", 4, 8), ("Sat", 3, 7), ("Sun", 2, 6),
                                     ("Mon", 3, 8), ("Tue", 5, 10), ("Wed", 6, 10), ("Thu", 4, 9), ("Fri", 3, 7)]):
        y = 730 + i * 50
        p.text(50, y, d, 24, "sans-b", white)
        p.text(330, y, f"{lo}°", 24, "sans", (200, 210, 230), anchor="ra")
        p.rect((350, y + 12, 600, y + 18), fill=(60, 80, 110), radius=3)
        p.rect((350 + lo * 15, y + 12, 350 + hi * 22, y + 18), fill=(250, 200, 90), radius=3)
        p.text(690, y, f"{hi}°", 24, "sans-b", white, anchor="ra")
    p.text(375, 1280, "UV index 1 Low · Precipitation 4 mm in next 24 h", 18, "sans", white, anchor="ma")
    return p.img, ()


def b_sudoku(rng: random.Random) -> tuple[Image.Image, Truth]:
    solution = [[(r * 3 + r // 3 + c) % 9 + 1 for c in range(9)] for r in range(9)]
    p = Page(900, 1000, (236, 232, 222))
    p.text(40, 30, "SUDOKU No. 4,812", 36, "serif-b")
    p.text(860, 38, "Medium", 26, "serif-i", anchor="ra")
    x0, y0, cs = 45, 110, 90
    for r in range(9):
        for c in range(9):
            x, y = x0 + c * cs, y0 + r * cs
            if rng.random() < 0.38:
                p.text(x + cs / 2, y + cs / 2, str(solution[r][c]), 46, "serif", anchor="mm")
            elif rng.random() < 0.25:
                handwrite(p, x + 30, y + 20, str(solution[r][c]), 44, rng, fill=(30, 40, 140))
    for i in range(10):
        w = 4 if i % 3 == 0 else 1
        p.hline(y0 + i * cs, x0, x0 + 9 * cs, width=w)
        p.vline(x0 + i * cs, y0, y0 + 9 * cs, width=w)
    p.text(40, 950, "Fill the grid so that every row, column and 3x3 box contains 1-9. Solution tomorrow.", 18,
           "serif-i")
    img = scene(rng, (900, 900), "oak", [Item(p.img, 0.5, 0.5, 0.82, rot=rng.uniform(-5, 5), tilt=0.07)],
                light=0.4, blur=0.8, quality=70, cast=(255, 240, 215))
    return img, ()


MIT = ("Permission is hereby granted, free of charge, to any person obtaining a copy of this software and associated "
       "documentation files (the \"Software\"), to deal in the Software without restriction, including without "
       "limitation the rights to use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies of the "
       "Software, and to permit persons to whom the Software is furnished to do so, subject to the following "
       "conditions: The above copyright notice and this permission notice shall be included in all copies or "
       "substantial portions of the Software.")


def b_license_dialog(rng: random.Random) -> tuple[Image.Image, Truth]:
    p = Page(1100, 800, (0, 90, 160))
    p.rect((100, 60, 1000, 740), fill=(240, 240, 240), outline=(120, 120, 120))
    p.rect((100, 60, 1000, 92), fill=(255, 255, 255))
    p.text(112, 76, "Setup - Orbit Notes 3.2", 15, "sans", (20, 20, 20), anchor="lm")
    p.text(990, 76, "✕", 16, "sans", (20, 20, 20), anchor="rm")
    p.text(130, 110, "License Agreement", 18, "sans-b")
    p.text(130, 140, "Please read the following important information before continuing.", 15)
    p.rect((130, 180, 970, 560), fill=(255, 255, 255), outline=(160, 160, 160))
    y = p.lines(146, 192, ["MIT License", "", "Copyright (c) 2019-2026 Orbit Notes contributors", ""], 15, "sans",
                gap=1.4)
    p.wrap(146, y, MIT, 800, 15, "sans", gap=1.4)
    p.d.ellipse([130, 585, 146, 601], outline=(60, 60, 60), width=2)
    p.d.ellipse([134, 589, 142, 597], fill=(0, 100, 200))
    p.text(156, 584, "I accept the agreement", 15)
    p.d.ellipse([130, 615, 146, 631], outline=(60, 60, 60), width=2)
    p.text(156, 614, "I do not accept the agreement", 15)
    for i, b in enumerate(["< Back", "Next >", "Cancel"]):
        p.rect((700 + i * 95, 690, 785 + i * 95, 720), fill=(225, 225, 225), outline=(0, 100, 200) if i == 1
               else (160, 160, 160))
        p.text(742 + i * 95, 705, b, 14, anchor="mm")
    return p.img, ()


def b_map(rng: random.Random) -> tuple[Image.Image, Truth]:
    p = Page(1280, 800, (242, 239, 233))
    p.d.polygon([(720, 420), (1000, 380), (1060, 620), (760, 660)], fill=(200, 230, 190))
    p.d.line([(0, 720), (300, 650), (600, 700), (900, 760), (1280, 730)], fill=(170, 210, 240), width=36)
    roads = [[(0, 300), (1280, 260)], [(0, 520), (700, 500), (1280, 470)], [(300, 0), (330, 800)],
             [(640, 0), (600, 400), (690, 800)], [(980, 0), (1010, 800)], [(0, 120), (500, 180), (1280, 110)]]
    for r in roads:
        p.d.line(r, fill=(210, 205, 200), width=22)
    for r in roads:
        p.d.line(r, fill=(255, 255, 255), width=16)
    p.d.line([(0, 520), (700, 500), (1280, 470)], fill=(252, 214, 120), width=16)
    labels = [(120, 300, "Mill Road", -2), (820, 472, "Station Road", -1), (330, 600, "Tenison Road", -88),
              (760, 520, "Parker's Piece", 0), (1040, 120, "Hills Road", 0), (150, 700, "River Cam", 0)]
    for x, y, t, ang in labels:
        layer = Image.new("RGBA", (400, 60), (0, 0, 0, 0))
        ImageDraw.Draw(layer).text((200, 30), t, font=font("sans", 18), fill=(80, 80, 90, 255), anchor="mm")
        layer = layer.rotate(ang, expand=True)
        p.img.paste(layer, (int(x - layer.width / 2 + 100), int(y - layer.height / 2)), layer)
    for x, y, c in ((450, 280, (220, 60, 60)), (880, 450, (60, 120, 220)), (1150, 300, (240, 140, 30))):
        p.d.ellipse([x - 14, y - 30, x + 14, y - 2], fill=c)
        p.d.polygon([(x - 10, y - 10), (x + 10, y - 10), (x, y + 8)], fill=c)
    p.text(472, 272, "Café Ruskin", 16, "sans-b", (160, 40, 40))
    p.text(902, 442, "Central Library", 16, "sans-b", (40, 80, 170))
    p.rect((20, 20, 420, 64), fill=(255, 255, 255), radius=22)
    p.text(50, 42, "Search Maps", 18, "sans", (120, 120, 120), anchor="lm")
    p.hline(770, 1120, 1240, (60, 60, 60), 3)
    p.text(1180, 748, "200 m", 15, "sans", (60, 60, 60), anchor="ma")
    return p.img, ()


def b_sci_poster(rng: random.Random) -> tuple[Image.Image, Truth]:
    p = Page(1400, 1000, (255, 255, 255))
    p.rect((0, 0, 1400, 170), fill=(30, 80, 60))
    p.text(700, 24, "Soil moisture controls seedling survival", 44, "sans-b", (255, 255, 255), anchor="ma")
    p.text(700, 78, "in restored floodplain meadows", 44, "sans-b", (255, 255, 255), anchor="ma")
    p.text(700, 134, "L. Berger¹, K. Osei², M. Fontaine¹ · ¹University of Freiburg · ²Wageningen University", 20,
           "sans", (220, 240, 220), anchor="ma")
    cols = [(30, "Introduction", "Restored meadows often fail to establish target species. We tested whether "
             "early-season soil moisture explains seedling survival across 48 plots on the upper Rhine."),
            (490, "Methods", "Seeds of 12 meadow species were sown in spring 2024; soil moisture was logged hourly "
             "at 10 cm depth. Survival was modelled with binomial GLMMs (plot as random effect)."),
            (950, "Conclusions", "Survival rose from 18% to 61% across the moisture gradient. Timing sowing to wet "
             "springs, or light irrigation in dry years, could double restoration success.")]
    for x, title, text in cols:
        p.text(x, 200, title, 28, "sans-b", (30, 80, 60))
        p.wrap(x, 246, text, 420, 19, "sans", gap=1.45)
    p.text(490, 520, "Results", 28, "sans-b", (30, 80, 60))
    gx, gy = 520, 900
    p.d.line([(gx, 580), (gx, gy), (1300, gy)], fill=(0, 0, 0), width=2)
    pts = [(gx + 20 + i * 36, gy - 30 - i * 13 - rng.uniform(-20, 20)) for i in range(21)]
    for x, y in pts:
        p.d.ellipse([x - 6, y - 6, x + 6, y + 6], fill=(30, 120, 80))
    p.d.line([(gx + 20, gy - 30), (gx + 740, gy - 300)], fill=(200, 60, 40), width=3)
    p.text(900, 930, "Soil moisture (vol. %)", 18, anchor="ma")
    p.text(30, 540, "Acknowledgements: funded by the\nRegional Biodiversity Programme.", 16, "sans-i", (90, 90, 90))
    img = scene(rng, (1600, 1200), "felt", [Item(p.img, 0.5, 0.48, 0.86, tilt=0.05, skew=0.08)], light=0.35,
                blur=0.9, quality=72)
    return img, ()


def b_hotel_card(rng: random.Random) -> tuple[Image.Image, Truth]:
    p = Page(900, 1200, (250, 248, 242))
    p.text(450, 80, "HOTEL AURORA", 56, "serif-b", (120, 90, 40), anchor="ma")
    p.text(450, 160, "Welcome", 40, "serif-i", (90, 80, 70), anchor="ma")
    rows = ["Breakfast 6:30 – 10:30", "Atrium, ground floor", "", "Check-out until 11:00",
            "Late check-out on request (€15 per hour)", "", "Reception: dial 9", "Room service: dial 7",
            "", "Spa & pool 7:00 – 21:00, level −1", "Taxi: please ask at reception", "", "Emergency: dial 112"]
    y = 260
    for r in rows:
        if r:
            p.text(450, y, r, 30, "serif", anchor="ma")
        y += 56 if r else 26
    img = scene(rng, (1024, 1366), "walnut", [Item(p.img, 0.5, 0.48, 0.68, rot=rng.uniform(-3, 3), tilt=0.12)],
                light=0.45, blur=0.9, quality=72, cast=(255, 228, 190))
    return img, ()


def b_api_docs(rng: random.Random) -> tuple[Image.Image, Truth]:
    p = Page(1440, 900, (255, 255, 255))
    p.rect((0, 0, 1440, 60), fill=(250, 250, 252))
    p.text(30, 30, "Example API  ·  Docs", 20, "sans-b", anchor="lm")
    p.rect((0, 60, 280, 900), fill=(248, 249, 251))
    for i, s in enumerate(["Getting started", "Authentication", "Pagination", "Errors", "Rate limits", "Items",
                           "Orders", "Webhooks", "SDKs"]):
        if s == "Authentication":
            p.rect((12, 86 + i * 38, 268, 116 + i * 38), fill=(230, 238, 255), radius=6)
        p.text(30, 92 + i * 38, s, 16, "sans")
    x = 340
    p.text(x, 100, "Authentication", 40, "sans-b")
    p.wrap(x, 170, "All requests must include an API token in the Authorization header. Create tokens under "
           "Settings → API tokens. Tokens start with ex_live_ for production and ex_test_ for the sandbox.", 980, 18,
           "sans", gap=1.55)
    p.rect((x, 270, 1380, 400), fill=(24, 26, 34), radius=8)
    for i, line in enumerate(["curl https://api.example.com/v1/items \\",
                              '  -H "Authorization: Bearer $EXAMPLE_API_TOKEN" \\',
                              '  -H "Content-Type: application/json"']):
        p.text(x + 24, 290 + i * 34, line, 18, "mono", (220, 226, 240))
    p.wrap(x, 430, "Replace <YOUR_API_TOKEN> with your own token when you use the SDKs. Never commit tokens to "
           "source control; read them from an environment variable or a secrets manager.", 980, 18, "sans", gap=1.55)
    p.text(x, 530, "Errors", 28, "sans-b")
    for i, (code, meaning) in enumerate([("401", "Missing or invalid token"), ("403", "Token lacks the scope"),
                                         ("429", "Too many requests; retry after the Retry-After header")]):
        p.text(x, 580 + i * 40, code, 18, "mono-b")
        p.text(x + 80, 580 + i * 40, meaning, 18)
    return p.img, ()


def b_assembly(rng: random.Random) -> tuple[Image.Image, Truth]:
    p = Page(1100, 1500, (255, 255, 255))
    p.text(60, 40, "HEMNØ", 48, "sans-b")
    p.text(1040, 50, "AA-2183745-2", 18, "mono", anchor="ra")
    parts = [("110789", 8, "dowel"), ("101350", 16, "screw"), ("118331", 2, "bracket"), ("100823", 4, "cam")]
    for i, (num, n, kind) in enumerate(parts):
        x = 60 + i * 250
        p.rect((x, 140, x + 220, 330), outline=(0, 0, 0), width=2)
        if kind == "screw":
            p.rect((x + 100, 170, x + 116, 280), fill=(60, 60, 60))
            p.rect((x + 86, 164, x + 130, 176), fill=(60, 60, 60))
        elif kind == "dowel":
            p.rect((x + 80, 190, x + 140, 210), outline=(0, 0, 0), width=3)
        elif kind == "bracket":
            p.d.line([(x + 70, 180), (x + 70, 260), (x + 150, 260)], fill=(0, 0, 0), width=8)
        else:
            p.d.ellipse([x + 80, 180, x + 140, 240], outline=(0, 0, 0), width=4)
        p.text(x + 110, 290, f"{n}x  {num}", 22, "sans-b", anchor="ma")
    for step in range(3):
        y = 400 + step * 350
        p.text(60, y, str(step + 3), 60, "sans-b")
        p.rect((200, y + 40, 760, y + 90), outline=(0, 0, 0), width=3)
        p.rect((200, y + 90, 240, y + 300), outline=(0, 0, 0), width=3)
        p.d.line([(500, y + 10), (520, y + 40)], fill=(0, 0, 0), width=3)
        p.text(800, y + 60, f"2x  {parts[step][0]}", 24, "sans-b")
        if step == 1:
            p.d.polygon([(860, y + 160), (900, y + 230), (820, y + 230)], outline=(0, 0, 0), width=4)
            p.text(860, y + 200, "!", 36, "sans-b", anchor="mm")
    img = scene(rng, (1080, 1440), "oak", [Item(p.img, 0.5, 0.5, 0.8, rot=rng.uniform(-8, -3), tilt=0.1)],
                light=0.4, blur=0.9, quality=70)
    return img, ()


def b_shelf_labels(rng: random.Random) -> tuple[Image.Image, Truth]:
    shelf = Page(2400, 700, (210, 210, 214))
    colours = [(240, 240, 250), (200, 30, 40), (30, 90, 170), (250, 200, 40), (60, 140, 70)]
    for i in range(16):
        x = 20 + i * 150
        shelf.rect((x, 20, x + 130, 380), fill=rng.choice(colours), radius=16)
    products = [("Vollmilch 3,5 %", "1 l", "1,19", "1 l = 1,19 €"), ("Bio Hafermilch", "1 l", "1,89", "1 l = 1,89 €"),
                ("Skyr Natur", "450 g", "1,69", "1 kg = 3,76 €"), ("Butter mild gesäuert", "250 g", "2,29",
                                                                  "1 kg = 9,16 €")]
    for i, (name, size, price, unit) in enumerate(products):
        x = 40 + i * 590
        shelf.rect((x, 420, x + 560, 660), fill=(255, 255, 255))
        shelf.text(x + 16, 434, name, 34, "sans-b")
        shelf.text(x + 16, 480, size, 26)
        shelf.text(x + 540, 500, price, 90, "sans-b", anchor="ra")
        shelf.text(x + 16, 600, unit, 22)
        shelf.text(x + 16, 630, f"Art.-Nr. {_digits(rng, 6)}", 16, "mono", (90, 90, 90))
    img = scene(rng, (1280, 720), "dark", [Item(shelf.img, 0.5, 0.52, 0.98, skew=0.1, tilt=-0.04, shadow=0.0)],
                light=0.4, blur=0.9, quality=70, cast=(245, 250, 255))
    return img, ()


def b_flu_poster(rng: random.Random) -> tuple[Image.Image, Truth]:
    p = Page(900, 1270, (255, 255, 255))
    p.rect((0, 0, 900, 300), fill=(0, 94, 184))
    p.text(450, 60, "Flu vaccinations", 72, "sans-b", (255, 255, 255), anchor="ma")
    p.text(450, 160, "available now", 72, "sans-b", (255, 255, 255), anchor="ma")
    p.text(450, 340, "Walk in — no appointment needed", 38, "sans-b", (0, 94, 184), anchor="ma")
    p.text(80, 430, "FREE on the NHS for:", 36, "sans-b")
    p.lines(100, 490, ["• people aged 65 and over", "• pregnant women", "• people with long-term health",
                       "   conditions", "• carers and care home staff"], 32, "sans", gap=1.45)
    p.text(80, 800, "£16.99 private service for everyone else", 32, "sans-b")
    p.text(450, 940, "Ask our pharmacist today", 44, "sans-bi", (0, 94, 184), anchor="ma")
    p.rect((0, 1100, 900, 1270), fill=(0, 150, 90))
    p.text(450, 1130, "Kingsway Pharmacy", 44, "sans-b", (255, 255, 255), anchor="ma")
    p.text(450, 1196, "Tel 0161 432 0987", 30, "sans", (255, 255, 255), anchor="ma")
    img = scene(rng, (960, 1280), "glass", [Item(p.img, 0.5, 0.5, 0.8, skew=0.08, tilt=0.03, shadow=0.2)],
                light=0.3, blur=0.9, quality=70, glare=0.3)
    return img, ()


def b_package_leaflet(rng: random.Random) -> tuple[Image.Image, Truth]:
    p = Page(1000, 1400, (252, 252, 250))
    p.text(500, 40, "Package leaflet: Information for the user", 28, "sans-b", anchor="ma")
    p.text(500, 86, "Ibuprofen 200 mg film-coated tablets", 32, "serif-b", anchor="ma")
    sections = [
        ("", "Read all of this leaflet carefully before you start taking this medicine because it contains important "
             "information for you. Always take this medicine exactly as described in this leaflet or as your "
             "pharmacist has told you."),
        ("1. What Ibuprofen is and what it is used for", "Ibuprofen belongs to a group of medicines called "
         "non-steroidal anti-inflammatory drugs (NSAIDs). It is used for the relief of headache, dental pain, period "
         "pain, muscular pain, feverishness and the symptoms of colds and flu."),
        ("2. What you need to know before you take Ibuprofen", "Do not take Ibuprofen if you are allergic to "
         "ibuprofen or any of the other ingredients, if you have ever had a stomach ulcer or bleeding, or if you "
         "are in the last three months of pregnancy."),
        ("3. How to take Ibuprofen", "Adults and children over 12 years: take 1 or 2 tablets with water, up to "
         "three times a day as required. Leave at least 4 hours between doses. Do not take more than 6 tablets in "
         "24 hours. Do not give to children under 12 years."),
        ("4. Possible side effects", "Like all medicines, this medicine can cause side effects, although not "
         "everybody gets them. Stop taking the medicine and tell your doctor if you experience blood in your stools "
         "or black tarry stools, or vomit any blood."),
    ]
    y = 150
    for title, text in sections:
        if title:
            p.text(50, y, title, 22, "sans-b")
            y += 34
        y = p.wrap(50, y, text, 900, 19, "scond", gap=1.4, justify=True) + 18
    img = _creases(p.img, (0.25, 0.5, 0.75))
    img = page_curl(img, 0.01, rng)
    img = scene(rng, (1100, 1466), "laminate", [Item(img, 0.5, 0.5, 0.86, rot=rng.uniform(2, 6), tilt=0.06)],
                light=0.35, blur=0.8, quality=72)
    return img, ()


# =========================================================================== the corpus

Builder = Callable[[random.Random], tuple[Image.Image, Truth]]

#: (file name, kind, one-line description, builder)
SENSITIVE: list[tuple[str, str, str, Builder]] = [
    ("PXL_20261104_093112457.jpg", "payment_card", "Visa debit card, front, embossed number, tilted on a walnut desk",
     s_card_front),
    ("IMG_20261103_181540.jpg", "payment_card", "Mastercard back with printed number, expiry and CVC on green felt",
     s_card_back),
    ("IMG-20261103-WA0014.jpg", "chat_card_number", "WhatsApp-style dark chat: mum sends card number, expiry and CVV",
     s_chat_card),
    ("IMG_5127.PNG", "chat_password", "iMessage-style chat sharing a Netflix e-mail/password and a router password",
     s_chat_password),
    ("DSC_0412.JPG", "passport", "Open Canadian-style passport, data page with valid TD3 MRZ, photographed",
     s_passport),
    ("20261102_104733.jpg", "id_card_de", "German Personalausweis-like card, front and back (address, TD1 MRZ)",
     s_german_id),
    ("IMG_20261029_120418.jpg", "id_card_es", "Spanish DNI-like card front with valid DNI letter, on granite",
     s_dni),
    ("PXL_20261031_174522031.jpg", "payslip_fr", "French bulletin de paie with a valid NIR (n° de sécurité sociale)",
     s_payslip_fr),
    ("WhatsApp Image 2026-11-02 at 19.22.41.jpeg", "health_card_it",
     "Italian tessera sanitaria with a valid codice fiscale and its barcode", s_tessera),
    ("IMG_4878.JPG", "bank_letter_nl", "Dutch bank letter (tri-folded) with a valid NL IBAN and home address",
     s_nl_letter),
    ("PXL_20261101_083015702.jpg", "driving_licence_uk", "UK photocard driving licence: name, DOB, driver number, "
     "address", s_uk_licence),
    ("IMG_4901.JPG", "driving_licence_us", "Oregon-style driver license on a car dashboard (small 0.48 MP photo)",
     s_us_licence),
    ("PXL_20261103_153348871.jpg", "lab_report", "US lab report: patient name, DOB, MRN, CBC/CMP with flags",
     s_lab_report),
    ("Bildschirmfoto 2026-11-04 um 14.22.07.png", "lab_report_de",
     "German Laborbefund open in a PDF viewer: patient, DOB, insurance number, HbA1c", s_laborbefund),
    ("IMG_20261103_102250.jpg", "prescription", "Handwritten Rx pad: patient name, address, DOB, sertraline",
     s_prescription),
    ("IMG_4933.JPG", "prescription_label", "Orange pharmacy bottle, wrapped label: patient name, Rx number, drug",
     s_rx_bottle),
    ("PXL_20261104_081952118.jpg", "xray", "Photo of a monitor showing a chest X-ray with burned-in name/ID/DOB",
     s_xray),
    ("20261102_221409.jpg", "wristband", "Hospital wristband on a bed sheet: name, DOB, MRN, Code 39 barcode",
     s_wristband),
    ("DSCF3310.JPG", "boarding_pass", "Paper boarding pass with passenger name, booking reference, e-ticket number",
     s_boarding_pass),
    ("Screenshot 2026-11-04 at 10.12.48.png", "token_page", "GitHub-like settings page showing a new ghp_ token",
     s_github_token),
    ("Screenshot from 2026-11-04 10-31-07.png", "token_page", "GitLab-like dark page showing a new glpat- token",
     s_gitlab_token),
    ("Screen Shot 2026-11-03 at 5.05.33 PM.png", "dotenv", "VS Code-like editor with a .env: DB password, Stripe, "
     "AWS, SendGrid keys", s_dotenv),
    ("IMG_20261104_101522.jpg", "terminal_credentials", "Phone photo of a laptop terminal: cat ~/.aws/credentials",
     s_terminal_aws),
    ("Screenshot 2026-11-02 at 22.41.19.png", "private_key", "macOS terminal window printing an OpenSSH private key",
     s_private_key),
    ("P1040233.JPG", "password_note", "Hand-lettered sticky note on a laptop: Wi-Fi and router admin passwords",
     s_wifi_note),
    ("Screenshot_20261103-221547.png", "notes_passwords", "Android notes app 'Logins' with e-mails, passwords, PIN",
     s_notes_app),
    ("IMG_4958.JPG", "insurance_card", "US health insurance card: member name and member ID, dependents",
     s_insurance_card),
    ("PXL_20261104_120733640.jpg", "cheque", "Personal cheque: names, address, MICR routing and account numbers",
     s_cheque),
    ("scan0007.jpg", "bank_statement", "Flatbed-scanned UK bank statement: name, address, sort code, account, IBAN",
     s_statement_uk),
    ("Screenshot 2026-11-04 093112.png", "online_banking_de",
     "German online-banking page: account holder, DE IBAN, transactions", s_kontoauszug),
    ("Screenshot 2026-11-04 at 08.57.41.png", "email_contacts",
     "Webmail message giving a home address and two mobile numbers", s_email_personal),
    ("IMG_20261101_164402.jpg", "tax_form", "US W-2 form photographed: SSN, employee name and address", s_w2),
    ("20261031_201157.jpg", "payslip_uk", "UK pay advice (folded) on cork: name and National Insurance number",
     s_payslip_uk),
    ("IMG-20261103-WA0031.jpg", "discharge_report_es",
     "Spanish hospital discharge report: patient, DOB, NHC, diagnoses", s_informe_alta),
    ("PXL_20261104_101644123.jpg", "chat_api_key", "Photo of a monitor: Slack-like channel where an sk-proj- key is "
     "pasted", s_slack_key_photo),
    ("IMG_5140.PNG", "bank_transfer_fr", "French banking app 'Virement envoyé' with beneficiary name and FR IBAN",
     s_bank_app_transfer),
]

BENIGN: list[tuple[str, str, str, Builder]] = [
    ("PXL_20261102_201833914.jpg", "menu", "Roman trattoria menu with address, phone and website, warm light",
     b_menu),
    ("IMG_20261101_143027.jpg", "museum_sign", "German museum sign: opening hours, prices, info@ e-mail and phone",
     b_museum_sign),
    ("IMG_4912.JPG", "receipt", "Supermarket receipt with masked card XXXX XXXX XXXX 1234, auth code, TID, totals",
     b_receipt),
    ("20261104_123810.jpg", "parking_ticket", "Pay & display ticket on a car dashboard", b_parking_ticket),
    ("PXL_20261104_094133208.jpg", "departure_board", "Airport departures screen photographed from below",
     b_departures),
    ("DSC_0388.JPG", "conference_slide", "Projected title slide with speaker name and job title, audience heads",
     b_conference_slide),
    ("Screenshot 2026-11-04 at 11.02.55.png", "chart", "Grouped bar chart of quarterly revenue with values",
     b_bar_chart),
    ("Screenshot_20261104_110512.png", "dashboard", "Web analytics dashboard: KPIs, line chart, top pages",
     b_dashboard),
    ("IMG_4412.JPG", "book_page", "Curled page of Pride and Prejudice, chapter I", b_book_page),
    ("PXL_20261103_104511876.jpg", "whiteboard", "Whiteboard with calculus, a sketched cubic and homework note",
     b_whiteboard),
    ("Screenshot 2026-11-04 at 14.40.03.png", "code", "Python in an IDE with password/token variables, no literal "
     "secrets", b_code_no_secrets),
    ("IMG_20261102_071922.jpg", "timetable", "German bus stop timetable behind glass, line 42", b_bus_timetable),
    ("IMG_4967.JPG", "product_box", "Tea box back: EAN-13 barcode, LOT and best-before, customer care phone",
     b_product_box),
    ("20261101_175208.jpg", "poster", "Concert poster on a brick wall: band, date, venue, prices", b_concert_poster),
    ("DSCF3287.JPG", "street_sign", "Paris street name plate and a direction sign on a wall", b_street_sign),
    ("IMG-20261102-WA0008.jpg", "recipe_card", "Hand-lettered banana bread recipe card", b_recipe_card),
    ("Screenshot 2026-11-04 093455.png", "spreadsheet", "Spreadsheet of orders: order IDs, SKUs, EAN-13s, prices",
     b_spreadsheet),
    ("PXL_20261104_073005512.jpg", "newspaper", "Local newspaper page: headline, byline, two articles",
     b_newspaper),
    ("IMG_4975.JPG", "calendar", "Wall calendar, November 2026, a few hand-written chores", b_wall_calendar),
    ("Screenshot from 2026-11-04 15-02-11.png", "terminal_log", "Terminal: git log, commit SHA, docker digest, pytest",
     b_build_log),
    ("IMG_20261103_190217.jpg", "nutrition_label", "Nutrition Facts label on a can", b_nutrition_label),
    ("P1040219.JPG", "chalkboard_menu", "Chalkboard Tageskarte (German daily menu) on a brick wall", b_chalkboard),
    ("WhatsApp Image 2026-11-04 at 21.03.12.jpeg", "cinema_ticket", "Cinema ticket: film, hall, row, seat, ticket "
     "number", b_cinema_ticket),
    ("IMG_20261031_184455.jpg", "shop_hours", "French bakery opening hours on a glass door, phone and website",
     b_shop_hours),
    ("scan0012.jpg", "textbook", "Scanned physics textbook page with numbered exercises", b_textbook),
    ("IMG_5133.PNG", "weather_app", "Phone weather app screenshot, Bergen", b_weather_app),
    ("20261101_091430.jpg", "sudoku", "Newspaper sudoku partly filled in pen", b_sudoku),
    ("Screenshot (41).png", "license_dialog", "Installer licence dialog with the MIT licence", b_license_dialog),
    ("Bildschirmfoto 2026-11-04 um 16.20.44.png", "map", "Street map screenshot with place names and pins", b_map),
    ("DSC_0401.JPG", "science_poster", "Scientific poster with authors and affiliations, scatter plot",
     b_sci_poster),
    ("PXL_20261030_225417003.jpg", "hotel_card", "Hotel room welcome card: breakfast hours, check-out, extensions",
     b_hotel_card),
    ("Capture d’écran 2026-11-04 à 16.45.10.png", "api_docs", "API docs: Bearer $EXAMPLE_API_TOKEN placeholder, "
     "error codes", b_api_docs),
    ("IMG_20261102_160148.jpg", "assembly_instructions", "Flat-pack assembly instructions with part numbers",
     b_assembly),
    ("IMG_4990.JPG", "shelf_labels", "Supermarket shelf price labels (German), article numbers", b_shelf_labels),
    ("PXL_20261103_091206455.jpg", "health_poster", "Pharmacy window poster: flu vaccinations, who is eligible",
     b_flu_poster),
    ("IMG-20261103-WA0022.jpg", "medicine_leaflet", "Folded ibuprofen package leaflet: uses, dosage, side effects",
     b_package_leaflet),
]


def _build(rows: Sequence[tuple[str, str, str, Builder]]) -> list[Sample]:
    out = []
    for name, kind, description, builder in rows:
        image, truth = builder(random.Random(f"holdout:{name}"))
        out.append(Sample(name, kind, description, image.convert("RGB"), truth))
    return out


def holdout_sensitive() -> list[Sample]:
    """Pictures that must stay on the machine (each carries `truth`: what sensitive data it shows)."""
    return _build(SENSITIVE)


def holdout_benign() -> list[Sample]:
    """Pictures with text that may go to the cloud (hard negatives included)."""
    return _build(BENIGN)


def encode(sample: Sample) -> bytes:
    """The bytes a user would attach: PNG for .png names, JPEG (quality 92) otherwise."""
    buf = io.BytesIO()
    if sample.name.lower().endswith(".png"):
        sample.image.save(buf, "PNG")
    else:
        sample.image.save(buf, "JPEG", quality=92)
    return buf.getvalue()


_CHECKS: dict[str, Callable[[str], bool]] = {
    "card_number": luhn_ok,
    "iban": iban_ok,
    "dni": lambda v: dni_letter(int(v[:8])) == v[8],
    "codice_fiscale": lambda v: cf_check(v[:15]) == v[15],
    "nir": lambda v: nir_key(v[:13]) == v[13:],
    "routing_number": aba_ok,
    "dea": dea_ok,
    "npi": lambda v: luhn_ok("80840" + v),
    "siret": luhn_ok,
    "github_token": github_token_ok,
    "insurance_number": lambda v: kvnr_check(v[0], v[1:9]) == v[9],
}


def verify(samples: Sequence[Sample] | None = None) -> list[str]:
    """Problems with the corpus (an empty list when all is well): checksums, MRZ, sizes, names."""
    samples = list(samples) if samples is not None else holdout_sensitive() + holdout_benign()
    problems = []
    names = [s.name for s in samples]
    if len(set(names)) != len(names):
        problems.append("file names are not unique")
    for s in samples:
        mp = s.image.width * s.image.height
        if not 300_000 <= mp <= 2_000_000:
            problems.append(f"{s.name}: {mp / 1e6:.2f} MP is outside 0.3-2 MP")
        mrz = [v for k, v in s.truth if k == "mrz"]
        if len(mrz) == 3 and not mrz_td1_ok(mrz):
            problems.append(f"{s.name}: TD1 MRZ check digits are wrong")
        if len(mrz) == 2 and not mrz_td3_ok(mrz[1]):
            problems.append(f"{s.name}: TD3 MRZ check digits are wrong")
        for label, value in s.truth:
            check = _CHECKS.get(label)
            if check is not None and not check(value):
                problems.append(f"{s.name}: {label} {value!r} fails its checksum")
            if label == "iban" and value.startswith("NL") and not elfproef_ok(value[8:]):
                problems.append(f"{s.name}: Dutch account fails the 11-test")
    return problems


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python tests/privacy/holdout_corpus.py OUTDIR")
    outdir = Path(sys.argv[1])
    for group, samples in (("sensitive", holdout_sensitive()), ("benign", holdout_benign())):
        (outdir / group).mkdir(parents=True, exist_ok=True)
        for sample in samples:
            (outdir / group / sample.name).write_bytes(encode(sample))
        issues = verify(samples)
        print(f"{group}: {len(samples)} pictures written to {outdir / group}" + (f"; PROBLEMS: {issues}" if issues
                                                                                 else "; checks pass"))
