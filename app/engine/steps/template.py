"""``core.template``: render text: ``text`` once, and/or ``each`` once per item of ``items``.

``text`` is a string with ``${{ }}`` inside. With ``items`` and ``each``, ``each`` is rendered
once per item (``item``/``index`` bound). The output is one string: ``text`` (when given) then
one line per item, joined by ``separator`` (default a newline). Values that are not strings are
written as JSON (null as the empty string).

Example::

    - id: digest
      uses: core.template
      with:
        text: "Top ${{ 2 }} stories:"
        items: [{title: Tea, score: 3}, {title: Cake, score: 12}]
        each: "- ${{ item.title }} (${{ item.score }} points)"

Output::

    "Top 2 stories:\\n- Tea (3 points)\\n- Cake (12 points)"
"""

from __future__ import annotations

from typing import Any

from pydantic import model_validator

from app.engine.steps.base import CoreStep
from app.engine.steps.common import (
    CoreCall,
    CoreParams,
    Template,
    evaluate_each,
    list_param,
    str_param,
)
from app.engine.values import as_text


class Params(CoreParams):
    text: str | None = None
    items: list[Any] | Template | None = None
    each: str | None = None
    separator: str = "\n"

    @model_validator(mode="after")
    def _shape(self) -> Params:
        if self.text is None and self.each is None:
            raise ValueError("give `text`, or `items` with `each`")
        if (self.items is None) != (self.each is None):
            raise ValueError("`items` and `each` go together")
        return self


async def run(call: CoreCall) -> str:
    separator = str_param(call, "separator", "\n") or ""
    parts: list[str] = []
    if "text" in call.params:
        parts.append(as_text(call.params["text"]))
    each = call.item_fn("each")
    if each is not None:
        items = list_param(call, "items") or []
        parts.extend(as_text(line) for line in await evaluate_each(each, items, "each"))
    return separator.join(parts)


STEP = CoreStep(
    name="template",
    Params=Params,
    per_item_fields=("each",),
    run=run,
    description="Render `text`, and `each` once per item, as one string",
)
