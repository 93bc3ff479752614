"""What the Answer button does, without the web page: answers one question at one or several token budgets, each
answer streamed, then its forward FLOPs, its measured latency and where its visual tokens look."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from PIL import Image

from mqt_llava.demo.attention_figure import token_attention
from mqt_llava.evaluation.cost.flop_counting import PartFlops
from mqt_llava.evaluation.cost.options import PAPER_BUDGETS

from .cost import PromptCost
from .inputs import check_budgets, check_image, check_question
from .overlay import attention_maps, model_view, overlay_grid
from .session import AppSession

__all__ = ["BudgetResult", "Comparer", "OverlaySettings", "budget_choices"]


def budget_choices(num_queries: int) -> tuple[list[int], list[int]]:
    """Budgets offered in compare mode (1, the paper's budgets up to M, and M) and the ones ticked at first (the
    offered budgets nearest M, M/4, M/16 and M/64)."""
    choices = sorted({1, num_queries} | {m for m in PAPER_BUDGETS if m <= num_queries})
    targets = [max(1, num_queries // 4**power) for power in range(4)]
    ticked = {min(choices, key=lambda m: abs(m - target)) for target in targets}
    return choices, sorted(ticked)


@dataclass(frozen=True)
class OverlaySettings:
    """Which attention to draw: `head` (0-based; None averages over heads) and how many of the first tokens."""

    head: int | None = None
    first_tokens: int = 3


@dataclass(frozen=True)
class BudgetResult:
    """The state of the answer at m = `num_visual_tokens`: `text` grows while streaming; once `done`, `flops`
    (forward pass over the prompt), `latency_s`, `new_tokens` and `overlay` are filled in."""

    num_visual_tokens: int
    text: str
    done: bool = False
    flops: PartFlops | None = None
    latency_s: float | None = None
    new_tokens: int | None = None
    overlay: Image.Image | None = None


class Comparer:
    """Answers questions with one `AppSession`, counting FLOPs with one `PromptCost`."""

    def __init__(self, session: AppSession) -> None:
        self.session = session
        self.cost = PromptCost(session.model)

    def attention_overlays(self, image: Image.Image, budgets: Sequence[int], settings: OverlaySettings) -> list[Image.Image]:
        """One overlay sheet per budget in `budgets` (the query transformer runs once for all of them)."""
        session = self.session
        attention = token_attention(session.model, session.processor, image)  # (heads, M, side, side)
        view = model_view(session.processor.image_processor, image)
        return [overlay_grid(view, attention_maps(attention, m, settings.first_tokens, settings.head)) for m in budgets]

    def answer(
        self,
        image: Image.Image | None,
        question: str | None,
        budgets: Sequence[object],
        settings: OverlaySettings = OverlaySettings(),
    ) -> Iterator[BudgetResult]:
        """Results for each budget in increasing m: updates while its answer streams, then one `done` result.
        Raises `inputs.InputError` for a missing image, an empty question or a budget outside 1..M before any work."""
        image = check_image(image)
        question = check_question(question)
        budgets = check_budgets(budgets, self.session.num_queries)
        overlays = self.attention_overlays(image, budgets, settings)
        for m, overlay in zip(budgets, overlays, strict=True):
            final = None
            for update in self.session.stream_answer(image, question, m):
                if not update.done:
                    yield BudgetResult(m, update.text)
                final = update
            flops = self.cost.count(final.input_tokens - m, m)
            yield BudgetResult(m, final.text, True, flops, final.latency_s, final.new_tokens, overlay)
