"""What an agent's inputs are: files, folders and URLs, each sniffed for its media kind.

Why sniffed, not trusted by suffix: a folder of exports mixes kinds, and an agent must refuse what it
cannot take (a video given to `caption`) with one line naming the file, before any model is asked.
The kinds are `image`, `video`, `dicom`, `youtube` and `url`; an agent may declare others it resolves
itself (`stream` for the surveillance agent's live sources).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import BadInputError
from ..types import Attachment, sniff_mime

MEDIA_SUFFIXES = frozenset({
    ".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".heic",
    ".dcm", ".mp4", ".mov", ".webm", ".mkv", ".avi", ".m4v",
})


@dataclass(frozen=True)
class InputItem:
    """One input, sniffed but not yet read: a file path or a URL, with its media kind."""

    ref: str
    kind: str  # image, video, dicom, youtube, url
    name: str

    def load(self) -> Attachment:
        return Attachment.parse(self.ref)


def _kind_of_file(path: Path) -> str | None:
    try:
        with open(path, "rb") as fh:
            head = fh.read(512)
    except OSError as exc:
        raise BadInputError(f"cannot read {path}: {exc.strerror or exc}") from None
    mime = sniff_mime(head)
    if mime is None:
        return None
    return Attachment(mime=mime).kind if mime.startswith(("image/", "video/", "application/dicom")) else None


def resolve_inputs(refs: list[str], accepts: frozenset[str], agent: str) -> list[InputItem]:
    """Files, folders (expanded, sorted) and URLs, each checked against the kinds `agent` accepts."""
    items: list[InputItem] = []
    for ref in refs:
        if "://" in ref or ref.startswith("data:"):
            att = Attachment.parse(ref)
            kind = att.kind
            if kind not in accepts:
                raise BadInputError(f"{agent} cannot take {ref}: it accepts {_kinds(accepts)}, not {kind} links")
            items.append(InputItem(ref, kind, ref))
            continue
        path = Path(ref)
        if path.is_dir():
            found = [p for p in sorted(path.rglob("*")) if p.is_file() and p.suffix.lower() in MEDIA_SUFFIXES]
            kept = [(p, _kind_of_file(p)) for p in found]
            kept = [(p, k) for p, k in kept if k in accepts]
            if not kept:
                raise BadInputError(f"{ref} holds no {_kinds(accepts)} files for {agent}")
            items.extend(InputItem(str(p), str(k), p.name) for p, k in kept)
            continue
        if not path.exists():
            raise BadInputError(f"no such file: {ref}")
        kind = _kind_of_file(path)
        if kind is None:
            raise BadInputError(f"{ref} is not a supported image, video or DICOM file")
        if kind not in accepts:
            raise BadInputError(f"{agent} cannot take {ref}: it accepts {_kinds(accepts)}, not {kind}")
        items.append(InputItem(str(path), kind, path.name))
    return items


def _kinds(accepts: frozenset[str]) -> str:
    names = {"youtube": "YouTube URL", "dicom": "DICOM"}
    return " or ".join(names.get(k, k) for k in sorted(accepts))


__all__ = ["MEDIA_SUFFIXES", "InputItem", "resolve_inputs"]
