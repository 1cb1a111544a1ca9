"""Privacy: what may leave this machine, decided by everything that would leave.

    text.py       one detector pipeline for all text (typed or read from a picture)
    picture.py    what a picture shows: OCR (ocr.py), layouts, faces (faces.py)
    inspector.py  the verdict on a request under the policy: allow | redact | refuse (fail closed)
    gate.py       EgressGate: the wrapper every backend off this machine is built inside
    locality.py   which endpoints count as this machine

Nothing here is imported by `import fastvlm_gemini_hybrid`; the router imports `text` only, which
loads no model. See docs/routing.md for the policies and the measured figures.
"""
