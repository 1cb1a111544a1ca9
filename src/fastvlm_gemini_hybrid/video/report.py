"""Incident reports: `incident.json`, `incident.md` and `incident.html` with thumbnails and a zone map.

Why three files: JSON for tools, Markdown for tickets and chat, HTML for a person opening it in a
browser. Thumbnails are small JPEG crops around each alert (with the box drawn) so the report stays
light; the zone map draws every zone on a still of the scene. The report is written from what was
seen even if the stream dropped, so an outage never loses the evidence.
"""

from __future__ import annotations

import html
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._optional import require
from ..errors import BadInputError
from .events import Event
from .zones import Zone

ZONE_COLOURS = [(0, 0, 255), (0, 200, 255), (255, 128, 0), (0, 255, 0), (255, 0, 255)]


@dataclass
class IncidentRecord:
    """An event with the evidence kept for the report."""

    event: Event
    thumbnail: bytes | None = None
    describe: dict[str, Any] | None = None


@dataclass
class ReportData:
    source: str
    started_at: str
    duration_s: float
    records: list[IncidentRecord] = field(default_factory=list)
    zones: list[Zone] = field(default_factory=list)
    still: Any = None  # BGR image of the scene
    stats: dict[str, Any] = field(default_factory=dict)


def thumbnail(image: Any, bbox: tuple[int, int, int, int], width: int = 240) -> bytes:
    """A JPEG crop around `bbox` (with margin) with the box drawn in red."""
    cv2 = require("cv2", "video", "incident reports")
    h, w = image.shape[:2]
    x, y, bw, bh = bbox
    pad = max(bw, bh, 32)
    x0, y0 = max(0, x - pad), max(0, y - pad)
    x1, y1 = min(w, x + bw + pad), min(h, y + bh + pad)
    crop = image[y0:y1, x0:x1].copy()
    if crop.size == 0:
        crop = image.copy()
        x0 = y0 = 0
    cv2.rectangle(crop, (x - x0, y - y0), (x - x0 + bw, y - y0 + bh), (0, 0, 255), 2)
    scale = width / float(crop.shape[1])
    if scale < 1.0:
        crop = cv2.resize(crop, (width, max(1, int(crop.shape[0] * scale))), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, 80])
    return bytes(buf) if ok else b""


def zone_map(still: Any, zones: list[Zone]) -> bytes:
    """A JPEG of the scene with every zone's polygon and name drawn on it."""
    cv2, np = require("cv2", "video", "incident reports"), require("numpy", "video", "incident reports")
    img = still.copy()
    overlay = img.copy()
    for i, zone in enumerate(zones):
        colour = ZONE_COLOURS[i % len(ZONE_COLOURS)]
        pts = np.array(zone.polygon, np.int32)
        cv2.fillPoly(overlay, [pts], colour)
        cv2.polylines(img, [pts], True, colour, 2)
        label = zone.name + (" (restricted)" if zone.restricted else "")
        cv2.putText(img, label, (int(pts[0][0]) + 4, int(pts[0][1]) + 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1)
    img = cv2.addWeighted(overlay, 0.25, img, 0.75, 0)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 85])
    return bytes(buf) if ok else b""


def write_report(directory: str | Path, data: ReportData) -> dict[str, Path]:
    """Write the report files into `directory` (created); returns their paths by kind."""
    out = Path(directory)
    try:
        (out / "thumbs").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInputError(f"cannot create report directory {out}: {exc.strerror or exc}") from None
    rows: list[dict[str, Any]] = []
    for i, rec in enumerate(data.records, 1):
        row = rec.event.to_dict()
        row["reason"] = rec.event.reason
        if rec.describe:
            row["analysis"] = rec.describe
        if rec.thumbnail:
            name = f"thumbs/alert-{i:04d}.jpg"
            (out / name).write_bytes(rec.thumbnail)
            row["thumbnail"] = name
        rows.append(row)
    map_name = None
    if data.still is not None:
        (out / "zones.jpg").write_bytes(zone_map(data.still, data.zones))
        map_name = "zones.jpg"
    counts = {
        "by_type": dict(Counter(r["type"] for r in rows)),
        "by_priority": dict(Counter(r["priority"] for r in rows)),
        "by_zone": dict(Counter(r["zone"] or "(none)" for r in rows)),
        "total": len(rows),
    }
    doc = {
        "source": data.source,
        "started_at": data.started_at,
        "duration_s": round(data.duration_s, 3),
        "zones": [{"name": z.name, "polygon": [list(p) for p in z.polygon], "restricted": z.restricted,
                   "loiter_s": z.loiter_s} for z in data.zones],
        "counts": counts,
        "stats": data.stats,
        "zone_map": map_name,
        "events": rows,
    }
    paths = {"json": out / "incident.json", "markdown": out / "incident.md", "html": out / "incident.html"}
    paths["json"].write_text(json.dumps(doc, indent=2, default=str), encoding="utf-8")
    paths["markdown"].write_text(_markdown(doc), encoding="utf-8")
    paths["html"].write_text(_html(doc), encoding="utf-8")
    return paths


def _when(row: dict[str, Any]) -> str:
    end = row["end_s"]
    return f"{row['start_s']:.1f}s" + (f"–{end:.1f}s" if end is not None else "")


def _markdown(doc: dict[str, Any]) -> str:
    lines = [f"# Incident report: {doc['source']}", "",
             f"Started {doc['started_at']}, {doc['duration_s']:.1f} s analysed, {doc['counts']['total']} alerts.", ""]
    if doc["zone_map"]:
        lines += [f"![zones]({doc['zone_map']})", ""]
    lines += ["## Counts", ""]
    for key in ("by_type", "by_priority", "by_zone"):
        parts = ", ".join(f"{k}: {v}" for k, v in sorted(doc["counts"][key].items())) or "none"
        lines.append(f"- {key.replace('by_', 'by ')}: {parts}")
    lines += ["", "## Timeline", "", "| time | type | priority | zone | track | description | thumbnail |",
              "|---|---|---|---|---|---|---|"]
    for row in doc["events"]:
        thumb = f"![]({row['thumbnail']})" if row.get("thumbnail") else ""
        desc = (row["description"] or row.get("reason") or "").replace("|", "\\|")
        lines.append(f"| {_when(row)} | {row['type']} | {row['priority']} | {row['zone'] or ''} | "
                     f"{row['track_id'] if row['track_id'] is not None else ''} | {desc} | {thumb} |")
    return "\n".join(lines) + "\n"


def _html(doc: dict[str, Any]) -> str:
    e = html.escape
    rows = []
    for row in doc["events"]:
        thumb = f'<img src="{e(row["thumbnail"])}" alt="alert">' if row.get("thumbnail") else ""
        desc = row["description"] or row.get("reason") or ""
        track = "" if row["track_id"] is None else row["track_id"]
        rows.append(f'<tr class="{e(row["priority"])}"><td>{e(_when(row))}</td><td>{e(row["type"])}</td>'
                    f'<td>{e(row["priority"])}</td><td>{e(row["zone"] or "")}</td>'
                    f'<td>{track}</td><td>{e(desc)}</td><td>{thumb}</td></tr>')
    counts = "".join(f"<li>{e(k.replace('by_', 'by '))}: "
                     f"{e(', '.join(f'{a}: {b}' for a, b in sorted(v.items())) or 'none')}</li>"
                     for k, v in doc["counts"].items() if isinstance(v, dict))
    zmap = f'<img src="{e(doc["zone_map"])}" alt="zones" style="max-width:100%">' if doc["zone_map"] else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Incident report: {e(doc['source'])}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;
padding:4px 8px;vertical-align:top}}tr.high td{{background:#fee}}tr.critical td{{background:#fcc}}</style></head>
<body><h1>Incident report: {e(doc['source'])}</h1>
<p>Started {e(doc['started_at'])}, {doc['duration_s']:.1f} s analysed, {doc['counts']['total']} alerts.</p>
{zmap}<h2>Counts</h2><ul>{counts}</ul>
<h2>Timeline</h2><table><tr><th>time</th><th>type</th><th>priority</th><th>zone</th><th>track</th>
<th>description</th><th>thumbnail</th></tr>
{''.join(rows)}
</table></body></html>
"""
