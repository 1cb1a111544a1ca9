"""Checks on the evaluation corpus itself, so that a gate failure can be trusted to be the gate's fault.

The checksums are re-implemented here on purpose instead of imported from corpus.py: a bug shared by the
generator and its test would otherwise pass unnoticed.
"""

from __future__ import annotations

import re
from collections import Counter

import pytest

try:
    import corpus  # pytest's default import mode puts this folder on sys.path
except ModuleNotFoundError:  # tests/privacy made a package
    from . import corpus  # type: ignore[no-redef]

Sample = corpus.Sample
NAME = re.compile(r"IMG_\d{4}\.(png|jpg)")


@pytest.fixture(scope="module")
def sensitive() -> list[Sample]:
    return corpus.sensitive_pictures()


@pytest.fixture(scope="module")
def benign() -> list[Sample]:
    return corpus.benign_pictures()


@pytest.fixture(scope="module")
def everything(sensitive: list[Sample], benign: list[Sample]) -> list[Sample]:
    return sensitive + benign


# ------------------------------------------------------------------------------ independent checksums

def _luhn(number: str) -> bool:
    digits = [int(c) for c in number if c.isdigit()]
    odd = digits[-1::-2]
    even = [sum(divmod(2 * d, 10)) for d in digits[-2::-2]]
    return (sum(odd) + sum(even)) % 10 == 0


def _mrz_digit(text: str) -> str:
    values = {**{str(i): i for i in range(10)}, **{chr(65 + i): 10 + i for i in range(26)}, "<": 0}
    return str(sum(values[c] * w for c, w in zip(text, [7, 3, 1] * 20, strict=False)) % 10)


def _mod97(iban: str) -> bool:
    s = iban.replace(" ", "")
    moved = s[4:] + s[:4]
    return int("".join(c if c.isdigit() else str(ord(c) - 55) for c in moved)) % 97 == 1


def _gtin_ok(code: str) -> bool:
    """EAN-13 / ISBN-13: weights 1,3 alternating, total divisible by 10."""
    return sum(int(c) * (1 if i % 2 == 0 else 3) for i, c in enumerate(code)) % 10 == 0


# ----------------------------------------------------------------------------------------- the set

def test_counts(sensitive: list[Sample], benign: list[Sample]) -> None:
    assert len(sensitive) >= 44
    assert len(benign) >= 44


def test_every_sensitive_kind_has_three_variants(sensitive: list[Sample]) -> None:
    kinds = Counter(s.kind for s in sensitive)
    assert len(kinds) >= 13
    assert min(kinds.values()) >= 3, kinds


def test_categories(sensitive: list[Sample], benign: list[Sample]) -> None:
    assert {s.expected for s in sensitive} == set(corpus.EXPECTED)
    assert {s.expected for s in benign} == {"none"}


def test_names_unique_and_camera_style(everything: list[Sample]) -> None:
    names = [s.name for s in everything]
    assert len(set(names)) == len(names)
    assert all(NAME.fullmatch(n) for n in names), [n for n in names if not NAME.fullmatch(n)]


def test_images_rgb_and_sized(everything: list[Sample]) -> None:
    sizes = [s.image.width * s.image.height for s in everything]
    assert all(s.image.mode == "RGB" for s in everything)
    assert all(150_000 <= px <= 2_000_000 for px in sizes), min(sizes)
    assert sum(400_000 <= px <= 1_500_000 for px in sizes) >= 0.8 * len(sizes)
    assert any(px < 300_000 for px in sizes), "a few small pictures"


def test_ground_truth(sensitive: list[Sample], benign: list[Sample]) -> None:
    assert all(s.truth and s.secrets == tuple(v for _, v in s.truth) for s in sensitive)
    assert all(not s.truth and not s.secrets for s in benign)
    assert all(s.description and "\n" not in s.description for s in sensitive + benign)


def test_card_numbers_pass_luhn(everything: list[Sample]) -> None:
    cards = [(s.name, n) for s in everything for n in s.values("card_number")]
    assert len(cards) >= 5
    for name, number in cards:
        digits = number.replace(" ", "")
        assert _luhn(digits), (name, number)
        if digits[:2] in ("34", "37"):
            assert [len(g) for g in number.split()] == [4, 6, 5], number
        else:
            assert [len(g) for g in number.split()] == [4, 4, 4, 4], number
    assert any(n.replace(" ", "")[:2] in ("34", "37") for _, n in cards), "some Amex"


def test_td3_mrz_check_digits(everything: list[Sample]) -> None:
    pages = [(s.values("mrz_line1"), s.values("mrz_line2")) for s in everything if s.values("mrz_line2")]
    assert len(pages) >= 3
    for (l1,), (l2,) in pages:
        assert len(l1) == len(l2) == 44
        assert re.fullmatch(r"P[A-Z<][A-Z<]{3}[A-Z<]+", l1) and re.fullmatch(r"[A-Z0-9<]{44}", l2)
        assert _mrz_digit(l2[0:9]) == l2[9]
        assert _mrz_digit(l2[13:19]) == l2[19]
        assert _mrz_digit(l2[21:27]) == l2[27]
        assert _mrz_digit(l2[28:42]) == l2[42]
        assert _mrz_digit(l2[0:10] + l2[13:20] + l2[21:43]) == l2[43]


def test_td1_mrz_check_digits(everything: list[Sample]) -> None:
    cards = [s for s in everything if s.values("mrz_td1_line1")]
    assert cards
    for s in cards:
        (l1,), (l2,), (l3,) = s.values("mrz_td1_line1"), s.values("mrz_td1_line2"), s.values("mrz_td1_line3")
        assert len(l1) == len(l2) == len(l3) == 30
        assert _mrz_digit(l1[5:14]) == l1[14]
        assert _mrz_digit(l2[0:6]) == l2[6]
        assert _mrz_digit(l2[8:14]) == l2[14]
        assert _mrz_digit(l1[5:30] + l2[0:7] + l2[8:15] + l2[18:29]) == l2[29]


def test_ibans_pass_mod97(everything: list[Sample]) -> None:
    ibans = [n for s in everything for n in s.values("iban")]
    assert len(ibans) >= 3
    lengths = {"GB": 22, "DE": 22, "NL": 18}
    for iban in ibans:
        assert _mod97(iban), iban
        assert len(iban.replace(" ", "")) == lengths[iban[:2]], iban


def test_ssn_nino_ein_formats(everything: list[Sample]) -> None:
    ssns = [n for s in everything for n in s.values("ssn")]
    assert len(ssns) >= 4
    for ssn in ssns:
        area, group, serial = (int(x) for x in ssn.split("-"))
        assert 0 < area < 900 and area != 666 and group and serial, ssn
    ninos = [n for s in everything for n in s.values("nino")]
    assert len(ninos) >= 2
    for nino in ninos:
        compact = nino.replace(" ", "")
        assert re.fullmatch(r"[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]\d{6}[A-D]", compact), nino
        assert compact[:2] not in {"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"}
    assert all(re.fullmatch(r"\d{2}-\d{7}", n) for s in everything for n in s.values("ein"))


def test_contact_details_are_fictional(everything: list[Sample]) -> None:
    emails = [n for s in everything for n in s.values("email")]
    phones = [n for s in everything for n in s.values("phone")]
    assert emails and phones
    assert all(e.rsplit("@", 1)[1] in {"example.com", "example.org", "example.net"} for e in emails)
    assert all(re.fullmatch(r"\(\d{3}\) 555-01\d\d|07700 900\d{3}", p) for p in phones), phones


def test_credentials_look_real(everything: list[Sample]) -> None:
    assert all(re.fullmatch(r"AKIA[A-Z2-7]{16}", k) for s in everything for k in s.values("aws_access_key_id"))
    assert all(re.fullmatch(r"ghp_[A-Za-z0-9]{36}", k) for s in everything for k in s.values("github_token"))
    assert all(k.startswith("sk-") for s in everything for k in s.values("openai_api_key"))
    found = {label for s in everything for label, _ in s.truth}
    assert {"aws_access_key_id", "aws_secret_access_key", "github_token", "private_key", "openai_api_key",
            "password"} <= found


def test_benign_near_misses(benign: list[Sample]) -> None:
    decoys = [d for s in benign for d in s.decoys]
    assert len(decoys) >= 8
    for number in decoys:
        assert number.isdigit() and len(number) >= 12
        assert not _luhn(number), number
    gtins = [d for s in benign for d in s.decoys if s.kind in ("product_label", "book_page", "spreadsheet")]
    assert gtins and all(len(g) == 13 and _gtin_ok(g) for g in gtins)


def test_deterministic(everything: list[Sample]) -> None:
    first_per_kind = {s.kind: s for s in reversed(everything)}
    for s in first_per_kind.values():
        again = corpus.regenerate(s.name)
        assert again == s
        assert again.image.size == s.image.size
        assert again.image.tobytes() == s.image.tobytes(), s.name
    assert [s.name for s in corpus.sensitive_pictures()] == [s.name for s in everything if s.expected != "none"]


def test_renders_without_dejavu(monkeypatch: pytest.MonkeyPatch) -> None:
    """CI machines may lack fonts: Pillow's built-in font takes over and nothing breaks."""
    monkeypatch.setattr(corpus, "FONT_DIR", corpus.Path("/nonexistent-fonts"))
    corpus.font.cache_clear()
    try:
        spec = next(spec for spec in corpus._specs() if spec[1] == "passport")
        sample = corpus._render(*spec)
        assert sample.image.mode == "RGB" and sample.values("mrz_line2")
    finally:
        monkeypatch.undo()
        corpus.font.cache_clear()
