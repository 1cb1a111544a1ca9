"""Valid answers the agents' tests script their fake backends with, shared by several test modules
(tests/core/test_test_layout.py: test modules share through a conftest.py or a plain module like this one)."""

from __future__ import annotations

#: a valid UXReview: one issue boxed on screenshot 1, one accessibility issue on screenshot 0
REVIEW = {
    "summary": "Cluttered header",
    "score": 6,
    "issues": [
        {"title": "Tiny button", "severity": "medium", "category": "interaction",
         "location": {"screenshot": 1, "x": 0.5, "y": 0.5, "w": 0.25, "h": 0.1},
         "description": "The save button is small.", "suggestion": "Make it 44px tall."},
        {"title": "Broken layout", "severity": "critical", "category": "layout", "location": None,
         "description": "Overlap.", "suggestion": "Fix the grid."},
    ],
    "accessibility": [{"issue": "Low contrast", "severity": "high", "guideline": "1.4.3",
                       "location": {"screenshot": 0, "x": 0.0, "y": 0.0, "w": 1.0, "h": 0.2}}],
    "suggestions": ["Simplify the header"],
}

#: a valid Caption
CAPTION = {"caption": "A grey square.", "alt_text": "Grey square", "alt_text_long": "A flat grey square.",
           "tags": ["grey"]}

#: a valid DocumentExtraction whose lines (2.50 + 3.00) add up to 5.50, not its total (6.00)
RECEIPT = {
    "document_type": "receipt", "language": "en", "title": "Corner Shop", "text": "Corner Shop\nTea 2.50",
    "fields": [{"label": "date", "value": "2024-05-01"}],
    "line_items": [{"description": "Tea", "quantity": 2, "unit_price": 1.25, "amount": 2.5},
                   {"description": "Cake", "quantity": 1, "unit_price": 3.0, "amount": 3.0}],
    "currency": "EUR", "subtotal": None, "tax": None, "total": 6.0,
}
