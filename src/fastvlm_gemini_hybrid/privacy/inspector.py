"""The inspection behind the egress gate: everything a request would send, judged against the policy.

    inspector = Inspector(PrivacyPolicy.from_settings(settings))
    inspection = await inspector.ainspect(request)     # or inspector.inspect(request) from sync code
    inspection.verdict   -> "allow" | "redact" | "refuse"
    inspection.request   -> what may leave (pictures redacted), None when refused

What is inspected: every text part (routing/signals.py runs the same detectors the router uses on the
prompt, system instructions, JSON schema and attachment names), every picture (picture.py: OCR,
layouts, faces), sampled frames of every video (the keyframe sampler), and a fail-closed refusal for
what cannot be inspected: a URL this machine has not fetched, a picture that does not decode, a
missing OCR engine. Public YouTube links are exempt: their content is public by definition.

Policies (settings, env `FASTVLM_HYBRID_PRIVACY_*`):
- `image_text`: `local` (default) keeps a picture that shows sensitive text on the machine;
  `redact` blacks out the lines that carry it and sends the rest.
- `faces`: `allow` (default) sends faces; `redact` blurs them; `local` keeps pictures of people here.
A request may ask for a stricter policy than the settings' (the surveillance agent blurs faces), never
a looser one.

Cost: each picture is inspected at most once per process (an LRU keyed by its sha256 and the face
policy; concurrent requests for the same picture share one inspection), on a small thread pool, so
the processor can start it concurrently with local generation and a local answer never waits for it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ..errors import HybridError
from ..types import Attachment, Request
from .findings import Finding, dedupe
from .picture import PictureReport, inspect_image, inspect_picture, open_frames

if TYPE_CHECKING:
    from ..config import Settings

IMAGE_TEXT_POLICIES = ("local", "redact")
FACE_POLICIES = ("allow", "redact", "local")
_FACE_ORDER = {"allow": 0, "redact": 1, "local": 2}


@dataclass(frozen=True)
class PrivacyPolicy:
    image_text: str = "local"
    faces: str = "allow"
    video_frames: int = 8

    def __post_init__(self) -> None:
        if self.image_text not in IMAGE_TEXT_POLICIES:
            raise ValueError(f"image text policy must be one of {', '.join(IMAGE_TEXT_POLICIES)}")
        if self.faces not in FACE_POLICIES:
            raise ValueError(f"face policy must be one of {', '.join(FACE_POLICIES)}")

    @classmethod
    def from_settings(cls, settings: Settings) -> PrivacyPolicy:
        return cls(settings.privacy_image_text, settings.privacy_faces, settings.privacy_video_frames)

    def for_request(self, request: Request) -> PrivacyPolicy:
        """The stricter of this policy and the one the request asks for."""
        wanted = getattr(request, "privacy_faces", None)
        if wanted and _FACE_ORDER.get(wanted, -1) > _FACE_ORDER[self.faces]:
            return replace(self, faces=wanted)
        return self


@dataclass
class Inspection:
    """The verdict on one request, with what was found (categories, never values)."""

    verdict: str
    findings: tuple[Finding, ...] = ()
    refusals: tuple[str, ...] = ()
    redactions: tuple[str, ...] = ()
    request: Request | None = field(default=None, repr=False)
    pictures: int = 0
    ms: float = 0.0

    @property
    def refused(self) -> bool:
        return self.verdict == "refuse"

    @property
    def reason(self) -> str:
        return self.refusals[0] if self.refusals else ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "findings": [f.to_dict() for f in self.findings],
            "kept_local_because": list(self.refusals),
            "redactions": list(self.redactions),
        }

    def categories(self) -> list[str]:
        """'category/kind' pairs for the audit trail: what was found, never where or what it said."""
        return sorted({f"{f.category}/{f.kind}" for f in self.findings})


class Inspector:
    """Inspects requests bound off the machine. One per processor; thread-safe; cheap to share."""

    def __init__(self, policy: PrivacyPolicy | None = None, *, cache_size: int = 2048, workers: int = 2) -> None:
        self.policy = policy or PrivacyPolicy()
        self.cache_size = cache_size
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="privacy", initializer=_lower_priority
        )
        self._lock = threading.Lock()
        self._reports: OrderedDict[tuple[str, bool, int], concurrent.futures.Future[PictureReport]] = OrderedDict()
        self._cleared: OrderedDict[str, None] = OrderedDict()  # sha256 of pictures this inspector redacted
        #: pictures actually read (not served from the cache): tests and metrics use it
        self.pictures_read = 0

    # ------------------------------------------------------------------ pictures (cached, single-flight)
    def _report_future(self, att: Attachment, faces: bool, frames: int) -> concurrent.futures.Future[PictureReport]:
        key = (att.sha256, faces, frames if att.kind == "video" else 0)
        with self._lock:
            # A reading that looked for faces also answers one that did not need them.
            for candidate in ((key[0], True, key[2]), key) if not faces else (key,):
                future = self._reports.get(candidate)
                if future is not None and not future.cancelled() and not (future.done() and future.exception()):
                    self._reports.move_to_end(candidate)
                    return future
            future = self._pool.submit(self._read, att, faces, frames)
            self._reports[key] = future
            while len(self._reports) > self.cache_size:
                self._reports.popitem(last=False)
            return future

    def _read(self, att: Attachment, faces: bool, frames: int) -> PictureReport:
        with self._lock:
            self.pictures_read += 1
        try:
            if att.kind == "video":
                return _inspect_video(att, faces, frames)
            return inspect_picture(att.data or b"", "picture", faces=faces)
        except HybridError as exc:
            return PictureReport(where="picture", error=str(exc))
        except (RuntimeError, ImportError, OSError, ValueError) as exc:
            # OCR or the face detector missing or failing: the picture was not inspected, so it stays here.
            return PictureReport(where="picture", error=str(exc) or type(exc).__name__)

    # ------------------------------------------------------------------ requests
    def start(self, request: Request) -> list[concurrent.futures.Future[PictureReport]]:
        """Begin reading the request's pictures in the background (the processor calls this early)."""
        policy = self.policy.for_request(request)
        faces = policy.faces != "allow"
        return [self._report_future(a, faces, policy.video_frames) for a in request.attachments
                if a.data is not None and a.kind in ("image", "video") and a.sha256 not in self._cleared]

    async def ainspect(self, request: Request, *, explain: bool = False) -> Inspection:
        """The verdict on `request`, awaiting the picture readers without blocking the loop."""
        futures = self.start(request) if not explain else self._explain_futures(request)
        if futures:  # shielded: the readings are shared with other requests, so one caller leaving must not cancel them
            await asyncio.shield(asyncio.gather(*(asyncio.wrap_future(f) for f in futures)))
        return self._judge(request, explain=explain)

    def finished(self, request: Request) -> Inspection | None:
        """The verdict if every picture of `request` has been read already; None while any is still running."""
        futures = self.start(request)
        if not all(f.done() for f in futures):
            return None
        return self._judge(request)

    def inspect(self, request: Request, *, explain: bool = False) -> Inspection:
        """`ainspect` for synchronous callers (the `route` command)."""
        futures = self.start(request) if not explain else self._explain_futures(request)
        concurrent.futures.wait(futures)
        return self._judge(request, explain=explain)

    def _explain_futures(self, request: Request) -> list[concurrent.futures.Future[PictureReport]]:
        # `route` explains everything it can see, faces included, whatever the policy does with them.
        policy = self.policy.for_request(request)
        return [self._report_future(a, True, policy.video_frames) for a in request.attachments
                if a.data is not None and a.kind in ("image", "video") and a.sha256 not in self._cleared]

    def _judge(self, request: Request, *, explain: bool = False) -> Inspection:
        import time

        from ..routing.signals import detect_signals

        start = time.perf_counter()
        policy = self.policy.for_request(request)
        signals = detect_signals(request)
        findings: list[Finding] = list(signals.findings)
        refusals: list[str] = []
        redactions: list[str] = []
        if signals.sensitive:
            reasons = signals.sensitivity_reasons
            refusals.append(reasons[0] if reasons else "the request is sensitive")
        attachments = list(request.attachments)
        pictures = 0
        for index, att in enumerate(request.attachments):
            label = f"{'video' if att.kind == 'video' else 'picture'} {index + 1}"
            if att.kind == "youtube":
                continue  # public by definition
            if att.kind == "dicom":
                refusals.append(f"{label} is a DICOM study: medical imaging never leaves this machine")
                continue
            if att.data is None:
                refusals.append(f"{label} is a URL this machine has not fetched, so it cannot be inspected; "
                                "attach the file instead")
                continue
            if att.sha256 in self._cleared:
                continue  # this inspector produced it by redaction
            faces = policy.faces != "allow" or explain
            report = self._report_future(att, faces, policy.video_frames).result()
            pictures += 1
            if report.error:
                refusals.append(f"{label} could not be inspected ({report.error}); it stays on this machine")
                continue
            found = [f.at(f.where.replace("picture", label, 1) if att.kind == "image" else
                          f.where.replace("video", label, 1)) for f in report.findings]
            findings += found
            text_hits = [f for f in found if f.category != "face"]
            faces_seen = report.faces and policy.faces != "allow"
            if text_hits and (policy.image_text == "local" or att.kind != "image"):
                refusals.append(text_hits[0].reason)
                continue
            if faces_seen and (policy.faces == "local" or att.kind != "image"):
                what = "a face" if len(report.faces) == 1 else f"{len(report.faces)} faces"
                refusals.append(f"{label} shows {what} and the face policy is {policy.faces}"
                                + ("" if att.kind == "image" else " (video cannot be redacted)"))
                continue
            if text_hits or faces_seen:
                redacted = self._redact(att, report, text=bool(text_hits), faces=bool(faces_seen))
                if redacted is None:
                    refusals.append(f"{label} is animated and cannot be redacted frame by frame; it stays here")
                    continue
                attachments[index] = redacted
                done = []
                if text_hits:
                    done.append(f"{len(report.redact_boxes)} text region(s) blacked out")
                if faces_seen:
                    done.append(f"{len(report.faces)} face(s) blurred")
                redactions.append(f"{label}: {' and '.join(done)}")
        verdict = "refuse" if refusals else ("redact" if redactions else "allow")
        outgoing = None
        if verdict == "allow":
            outgoing = request
        elif verdict == "redact":
            outgoing = replace(request, attachments=tuple(attachments))
        return Inspection(
            verdict=verdict, findings=tuple(dedupe(findings)), refusals=tuple(dict.fromkeys(refusals)),
            redactions=tuple(redactions), request=outgoing, pictures=pictures,
            ms=(time.perf_counter() - start) * 1000.0,
        )

    def _redact(self, att: Attachment, report: PictureReport, *, text: bool, faces: bool) -> Attachment | None:
        from .redact import encode_like, redact_image

        frames = open_frames(att.data or b"", att.name or "picture")
        if len(frames) != 1:
            return None
        image = redact_image(frames[0], text_boxes=report.redact_boxes if text else [],
                             face_boxes=report.faces if faces else [])
        data, mime = encode_like(image, att.mime)
        out = Attachment.from_bytes(data, name=att.name, mime=mime)
        with self._lock:
            self._cleared[out.sha256] = None
            while len(self._cleared) > self.cache_size:
                self._cleared.popitem(last=False)
        return out

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _lower_priority() -> None:
    """Inspection threads yield the CPU to local generation (they run beside it in auto mode); the OCR
    engine's own threads, created from here, inherit the lower priority. A no-op where unsupported."""
    import contextlib
    import os

    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)


def _inspect_video(att: Attachment, faces: bool, frames: int) -> PictureReport:
    """Sampled frames of a video, each inspected like a picture; findings name the frame's time."""
    from ..media.keyframes import video_frames

    merged = PictureReport(where="video")
    for t_s, jpeg in video_frames(att, frames):
        image = open_frames(jpeg, "video frame")[0]
        one = inspect_image(image, f"video (frame at {t_s:.1f} s)", faces=faces)
        merged.findings += one.findings
        merged.faces += one.faces
        merged.lines += one.lines
        merged.ocr_ms += one.ocr_ms
        merged.face_ms += one.face_ms
        merged.size = one.size
    merged.findings = dedupe(merged.findings)
    return merged


__all__ = ["FACE_POLICIES", "IMAGE_TEXT_POLICIES", "Inspection", "Inspector", "PrivacyPolicy"]
