"""`document`: the text and key fields of photographed documents, receipts and forms.

Why sensitive by default: receipts, forms and letters carry names, addresses, account and card
numbers, so every request is built `sensitive=True` and never reaches a cloud backend. The user may
lift that with `--not-sensitive`; the request then carries no sensitivity hint at all and the
router's own detection (numbers, names, financial words) can still keep it local. Each photo is
read on its own (one document per image), and totals are cross-checked against the line items:
a mismatch is reported as a warning next to the data, never silently "fixed".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from ..execution.fanout import fan_out
from .base import Agent, AgentContext, AgentOptions, InputItem, ItemResult, RoutingHints, resolve_inputs

if TYPE_CHECKING:
    from .answering import Answerer

#: a total may differ from the sum of its lines by rounding; beyond this it is flagged
TOLERANCE = 0.02


class KeyField(BaseModel):
    label: str = Field(min_length=1, description="e.g. invoice no, date, merchant, due date")
    value: str


class LineItem(BaseModel):
    description: str = Field(min_length=1)
    quantity: float | None = None
    unit_price: float | None = None
    amount: float | None = None


class DocumentData(BaseModel):
    document_type: Literal["receipt", "invoice", "form", "letter", "id_document", "statement", "other"]
    language: str | None = Field(None, description="ISO 639-1 code, e.g. en")
    title: str | None = None
    text: str = Field(description="the document's full text, line by line")
    fields: list[KeyField]
    line_items: list[LineItem] = Field(default_factory=list)
    currency: str | None = Field(None, description="ISO 4217 code, e.g. EUR")
    subtotal: float | None = None
    tax: float | None = None
    total: float | None = None


def consistency_warnings(data: dict[str, Any]) -> list[str]:
    """Arithmetic the model may have got wrong: line items vs subtotal/total, subtotal + tax vs total."""
    warnings: list[str] = []
    amounts = [li["amount"] for li in data.get("line_items") or [] if li.get("amount") is not None]
    lines_sum = round(sum(amounts), 2) if amounts else None
    subtotal, tax, total = data.get("subtotal"), data.get("tax"), data.get("total")
    for li in data.get("line_items") or []:
        q, p, a = li.get("quantity"), li.get("unit_price"), li.get("amount")
        if None not in (q, p, a) and abs(q * p - a) > TOLERANCE:
            warnings.append(f"line {li['description']!r}: {q:g} × {p:.2f} = {q * p:.2f}, but the amount reads {a:.2f}")
    target = subtotal if subtotal is not None else (total if tax is None else None)
    if lines_sum is not None and target is not None and abs(lines_sum - target) > TOLERANCE:
        which = "subtotal" if subtotal is not None else "total"
        warnings.append(f"line items add up to {lines_sum:.2f}, but the {which} reads {target:.2f}")
    if None not in (subtotal, tax, total) and abs(subtotal + tax - total) > TOLERANCE:
        warnings.append(
            f"subtotal {subtotal:.2f} + tax {tax:.2f} = {subtotal + tax:.2f}, but the total reads {total:.2f}"
        )
    return warnings


class DocumentAgent(Agent):
    name = "document"
    summary = "text and key fields from photos of documents, receipts and forms; stays local unless told"
    accepts = frozenset({"image"})
    output_model = DocumentData
    per_input = True
    max_tokens = 1500
    hints = RoutingHints(sensitive=True)
    prompt = (
        "Read this photographed document. Transcribe all of its text in reading order, one line per line. "
        "Say what kind of document it is (receipt, invoice, form, letter, id_document, statement or other). "
        "Extract its key fields as label/value pairs (dates as YYYY-MM-DD, amounts without currency symbols), "
        "any line items with quantity, unit price and amount, and the currency, subtotal, tax and total when "
        "present. Copy values exactly as printed; use null for what is not on the document, never guess."
    )

    async def arun(self, processor: Answerer, refs: list[str], options: AgentOptions) -> list[ItemResult]:
        items = resolve_inputs(refs, self.accepts, self.name)
        self.check_count(items)
        self.prepare(AgentContext(items, options))

        async def one(_: int, item: InputItem) -> ItemResult:
            ctx = AgentContext([item], options, (item.load(),))
            result = await self.ask(processor, ctx, ctx.attachments, label=item.ref)
            options.emit(result)
            return result

        done = await fan_out(items, one, concurrency=options.concurrency)
        return [r if isinstance(r, ItemResult) else ItemResult(self.name, items[i].ref, error=r)
                for i, r in enumerate(done)]

    def postprocess(self, value: Any, ctx: AgentContext) -> dict[str, Any]:
        data = value.model_dump(mode="json")
        data["warnings"] = consistency_warnings(data)
        return data

    def render(self, output: dict[str, Any]) -> str:
        lines = [f"{output['document_type']}" + (f": {output['title']}" if output.get("title") else "")]
        for f in output["fields"]:
            lines.append(f"  {f['label']}: {f['value']}")
        for li in output["line_items"]:
            amount = f"{li['amount']:.2f}" if li.get("amount") is not None else "?"
            lines.append(f"  - {li['description']}  {amount}")
        if output.get("total") is not None:
            lines.append(f"  total: {output['total']:.2f} {output.get('currency') or ''}".rstrip())
        lines += [f"  warning: {w}" for w in output.get("warnings", [])]
        lines += ["", output["text"].rstrip()]
        return "\n".join(lines)


AGENT = DocumentAgent()
