"""The medical imaging pipeline: DICOM (or PNG/JPEG) in, a de-identified structured draft report out.

Stages, one module each, so each can be tested and benchmarked alone:

- `ingest`   find files, read headers cheaply, group by study/series, pick the series to read
- `render`   pixel data -> 8-bit images a VLM can read (CT windows, VOI LUT, MONOCHROME1, cine frames)
- `deid`     DICOM PS3.15 basic-profile de-identification, PHI scrubbing of text, burned-in text check
- `findings` the strict JSON prompt, parsing the local model's answer, critical-finding rules
- `report`   the report object (`medical --json`), Markdown/HTML/JSON exports
- `sr`       the report as a DICOM Comprehensive SR (highdicom)

Everything here runs on the machine; the agent (`agents.medical`) marks every request sensitive so
the router never lists a cloud backend. pydicom, numpy, dicognito and highdicom come from the
`medical` extra and are imported lazily, so importing this package costs nothing.
"""

from __future__ import annotations

EXTRA = "medical"
