"""The gate on the evaluation pictures: every sensitive picture kept here, at most 10% of benign ones.

Two sets: `corpus.py` (the rules were developed against it) and `holdout_corpus.py` (made independently,
differently: photographed documents, non-English IDs, chats, cheques; measured before any rule was
changed for it, see docs/routing.md). Each picture goes through the real `Inspector` as a user would
attach it. Slow (OCR reads ~170 pictures): run with `-m slow`; CI runs it after the default suite.
"""

from __future__ import annotations

from typing import Any

import pytest

try:
    import corpus
    import holdout_corpus
except ModuleNotFoundError:  # tests/privacy made a package
    from . import corpus, holdout_corpus  # type: ignore[no-redef]

from fastvlm_gemini_hybrid.privacy.inspector import Inspector
from fastvlm_gemini_hybrid.types import Attachment, Request
from synth_media import encode

pytestmark = pytest.mark.slow
MAX_FALSE_ALARMS = 0.10


def _verdicts(samples: list[Any], encode: Any) -> dict[str, Any]:
    inspector = Inspector()
    try:
        return {s.name: inspector.inspect(Request("What does this say?",
                                                  attachments=(Attachment.from_bytes(encode(s), name=s.name),)))
                for s in samples}
    finally:
        inspector.close()


@pytest.mark.parametrize(
    ("label", "sensitive", "benign", "encode"),
    [
        ("corpus", corpus.sensitive_pictures, corpus.benign_pictures, lambda s: encode(s.image)),
        ("holdout", holdout_corpus.holdout_sensitive, holdout_corpus.holdout_benign, holdout_corpus.encode),
    ],
)
def test_recall_is_total_and_false_alarms_stay_under_ten_percent(label: str, sensitive: Any, benign: Any,
                                                                 encode: Any) -> None:
    hot, cold = sensitive(), benign()
    assert len(hot) >= 30 and len(cold) >= 30
    verdicts = _verdicts(hot + cold, encode)
    missed = [(s.name, s.kind) for s in hot if not verdicts[s.name].refused]
    alarms = [(s.name, s.kind, verdicts[s.name].reason) for s in cold if verdicts[s.name].refused]
    assert missed == [], f"{label}: sensitive pictures that would leave: {missed}"
    assert len(alarms) <= MAX_FALSE_ALARMS * len(cold), f"{label}: false alarms {alarms}"
    # Every refusal names a category, never what the picture says.
    for s in hot:
        reason = verdicts[s.name].reason
        assert reason and not any(value and len(value) > 4 and value in reason for _, value in s.truth), reason
