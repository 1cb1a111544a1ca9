"""Gemini wire helpers: pure functions between the SDK's objects and ours.

Kept apart from the backend class so they can be tested without a client: quota parsing of a
429's details, the daily reset time, YouTube clip parts, and response -> `Generation`.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from ..errors import BackendRejectedError, InvalidResponseError
from ..types import Generation, Usage
from .gemini_prices import price_of

BLOCK_REASONS = frozenset(
    {"SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "RECITATION", "IMAGE_SAFETY",
     "IMAGE_PROHIBITED_CONTENT", "JAILBREAK", "MODEL_ARMOR"}
)


def file_state(file: Any) -> str:
    state = getattr(file, "state", None)
    return str(getattr(state, "value", state) or "ACTIVE")


def bad_key(message: str, details: list[Any]) -> bool:
    reasons = {d.get("reason") for d in details if isinstance(d, dict)}
    return "API_KEY_INVALID" in reasons or "api key not valid" in message.lower()


def quota_window(details: list[Any]) -> tuple[bool, float | None]:
    """(per_day, retry_after_s) from a 429's QuotaFailure and RetryInfo details."""
    per_day = False
    retry_after: float | None = None
    for detail in details:
        if not isinstance(detail, dict):
            continue
        kind = str(detail.get("@type", ""))
        if kind.endswith("QuotaFailure"):
            for violation in detail.get("violations") or []:
                quota_id = str(violation.get("quotaId") or violation.get("quota_id") or "")
                metric = str(violation.get("quotaMetric") or violation.get("quota_metric") or "")
                if "PerDay" in quota_id or "per_day" in metric.lower():
                    per_day = True
        elif kind.endswith("RetryInfo"):
            delay = str(detail.get("retryDelay") or detail.get("retry_delay") or "")
            try:
                retry_after = float(delay.rstrip("s")) if delay else None
            except ValueError:
                retry_after = None
    return per_day, retry_after


def seconds_until_quota_reset(now: datetime | None = None) -> float:
    """Gemini's daily quotas reset at midnight Pacific time."""
    try:
        from zoneinfo import ZoneInfo

        tz: Any = ZoneInfo("America/Los_Angeles")
    except Exception:  # noqa: BLE001 - no tz database: PST is close enough for a circuit timeout
        tz = timezone(timedelta(hours=-8))
    now = (now or datetime.now(tz)).astimezone(tz)
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(1.0, (midnight - now).total_seconds())


def _offset(value: str | None) -> str | None:
    """'90', '90s', '1m30s', '1h2m3s' -> '90s' (the API's duration format)."""
    if not value:
        return None
    text, total, number = value.strip().lower(), 0.0, ""
    for ch in text:
        if ch.isdigit() or ch == ".":
            number += ch
        elif ch in "hms" and number:
            total += float(number) * {"h": 3600, "m": 60, "s": 1}[ch]
            number = ""
        else:
            return None
    total += float(number) if number else 0.0
    return f"{total:g}s"


def youtube_part(url: str, types: Any) -> Any:
    """A `file_data` part for a YouTube URL. A clip is chosen with the URL's `t`/`start`, `end`
    and (our own) `fps` query parameters, which are moved into `video_metadata`."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    start = _offset((query.pop("start", None) or query.pop("t", None) or [None])[0])
    end = _offset((query.pop("end", None) or [None])[0])
    fps_text = (query.pop("fps", None) or [None])[0]
    query.pop("t", None)
    clean = urlunsplit(parts._replace(query=urlencode(query, doseq=True)))
    part = types.Part(file_data=types.FileData(file_uri=clean, mime_type="video/*"))
    if start or end or fps_text:
        try:
            fps = float(fps_text) if fps_text else None
        except ValueError:
            raise BackendRejectedError(f"fps must be a number in {url!r}", "gemini") from None
        part.video_metadata = types.VideoMetadata(start_offset=start, end_offset=end, fps=fps)
    return part


def _enum(value: Any) -> str | None:
    return None if value is None else str(getattr(value, "value", value))


def _text_of(candidate: Any) -> str:
    content = getattr(candidate, "content", None)
    return "".join(p.text for p in (getattr(content, "parts", None) or []) if p.text and not p.thought)


def _blocked_text(reason: str, where: str) -> str:
    return f"Gemini declined to answer: the {where} was blocked by its safety policy ({reason})."


def chunk_text(chunk: Any) -> tuple[str, str | None]:
    """(text, block explanation or None) for one streamed chunk."""
    feedback = getattr(chunk, "prompt_feedback", None)
    if feedback is not None and feedback.block_reason is not None:
        return "", _blocked_text(_enum(feedback.block_reason) or "blocked", "request")
    candidates = chunk.candidates or []
    if not candidates:
        return "", None
    text = _text_of(candidates[0])
    reason = _enum(candidates[0].finish_reason)
    if reason in BLOCK_REASONS and not text:
        return "", _blocked_text(reason or "blocked", "response")
    return text, None


def to_generation(response: Any, model: str) -> Generation:
    """Turn an SDK response into a `Generation` with usage, cost and block state."""
    meta = response.usage_metadata
    input_tokens = int((meta.prompt_token_count or 0) + (meta.tool_use_prompt_token_count or 0)) if meta else 0
    output_tokens = int((meta.candidates_token_count or 0) + (meta.thoughts_token_count or 0)) if meta else 0
    usage = Usage(input_tokens, output_tokens, price_of(model, input_tokens, output_tokens))
    feedback = response.prompt_feedback
    if feedback is not None and feedback.block_reason is not None:
        reason = _enum(feedback.block_reason) or "blocked"
        return Generation(_blocked_text(reason, "request"), model, usage, finish_reason=reason, blocked=True)
    if not response.candidates:
        raise InvalidResponseError("gemini returned no candidates and no block reason", "gemini")
    candidate = response.candidates[0]
    reason = _enum(candidate.finish_reason)
    text = _text_of(candidate)
    if reason in BLOCK_REASONS:
        return Generation(_blocked_text(reason or "blocked", "response"), model, usage, finish_reason=reason,
                          blocked=True)
    return Generation(text=text, model=model, usage=usage, finish_reason=reason)
