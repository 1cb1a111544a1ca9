"""De-identification: basic profile + private tags, text scrubbing, burned-in text check."""

from __future__ import annotations

import numpy as np
import pydicom
from PIL import ImageDraw

from fastvlm_gemini_hybrid.medical import deid
from synth_media import blank

from .conftest import LEAK_STRINGS, PHI, PRIVATE_VALUE, hu_phantom, make_ct_slice


def _slice() -> pydicom.Dataset:
    return make_ct_slice(hu_phantom(32), study_uid="1.2.3.4", series_uid="1.2.3.5", index=0)


def test_deidentify_removes_identifiers_private_tags_and_free_text() -> None:
    original = _slice()
    out = deid.deidentify(original, keep_pixels=False)
    dumped = str(out)
    for needle in LEAK_STRINGS:
        assert needle.lower() not in dumped.lower(), needle
    assert not [e for e in out if e.tag.is_private]
    assert "StudyDescription" not in out and "PixelData" not in out
    assert out.PatientIdentityRemoved == "YES"
    assert out.StudyInstanceUID != original.StudyInstanceUID  # UIDs replaced too
    assert str(original.PatientName) == PHI["PatientName"]  # the source is left untouched


def test_deidentify_keeps_pixels_when_asked() -> None:
    original = _slice()
    out = deid.deidentify(original)
    assert np.array_equal(out.pixel_array, original.pixel_array)


def test_collect_identifiers_includes_name_parts_dates_and_private_values() -> None:
    ids = deid.collect_identifiers(_slice())
    assert {"Quillfeather", "Zebulonia", "MRN-99887766", "1942-03-17", "17/03/1942", PRIVATE_VALUE} <= ids
    assert "FAKEVENDOR 1.0" not in ids  # a private creator names the vendor, not the patient
    assert "Hospital" not in ids  # institution names are kept whole, not split into common words


def test_scrub_text_redacts_whole_words_only() -> None:
    ids = {"Ann", "Quillfeather", "1942-03-17"}
    text = "Ann Quillfeather (born 1942-03-17): annular calcification; MRN: 5551234"
    out = deid.scrub_text(text, ids)
    assert "Quillfeather" not in out and "1942-03-17" not in out and "5551234" not in out
    assert "annular calcification" in out  # "Ann" inside a word is not a name
    assert out.startswith("[removed] [removed]")


def test_scrub_walks_nested_structures() -> None:
    data = {"a": ["Zebulonia said", {"b": "ok"}], "n": 3}
    assert deid.scrub(data, {"Zebulonia"}) == {"a": ["[removed] said", {"b": "ok"}], "n": 3}


def _text_image() -> np.ndarray:
    img = blank(0, (256, 256), "L")
    draw = ImageDraw.Draw(img)
    draw.ellipse((40, 40, 216, 216), fill=110)
    draw.text((4, 2), "QUILLFEATHER Z 1942-03-17", fill=255)
    draw.text((4, 240), "MRN 99887766 ST FAKEINGTON", fill=255)
    return np.asarray(img)


def test_burned_in_text_is_flagged_from_pixels() -> None:
    img = _text_image()
    assert deid.text_like_bands(img)
    blank_bands = img.copy()
    blank_bands[:30], blank_bands[-30:] = 0, 0
    assert not deid.text_like_bands(blank_bands)
    ct = _slice()
    assert deid.burned_in_text(ct, img, "CT").suspected
    assert not deid.burned_in_text(ct, blank_bands, "CT").suspected


def test_burned_in_text_trusts_the_header_and_modality() -> None:
    ds = _slice()
    clean = np.zeros((64, 64), np.uint8)
    assert deid.burned_in_text(ds, clean, "US").suspected  # ultrasound, header silent
    ds.BurnedInAnnotation = "NO"
    assert not deid.burned_in_text(ds, clean, "US").suspected
    ds.BurnedInAnnotation = "YES"
    check = deid.burned_in_text(ds, clean, "CT")
    assert check.suspected and "header" in check.reason
