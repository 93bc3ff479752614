"""The Gradio page: an image (uploaded or an example scene), a question, the token budget m (or several to compare),
and per budget the streamed answer, its cost and where its visual tokens look. The only module that imports gradio."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import gradio as gr
from PIL import Image

from .compare import BudgetResult, Comparer, OverlaySettings, budget_choices
from .cost import format_flops
from .examples import ExampleScene
from .inputs import InputError, read_image

__all__ = ["build_app", "launch"]

logger = logging.getLogger(__name__)

DISPLAY_SIDE = 256  # small scenes are shown enlarged to this many pixels, without smoothing
AVERAGE_HEADS = -1  # the heads menu's value for "average over heads"


def _enlarged(image: Image.Image) -> Image.Image:
    side = max(image.size)
    if side >= DISPLAY_SIDE:
        return image
    factor = -(-DISPLAY_SIDE // side)
    return image.resize((image.width * factor, image.height * factor), Image.Resampling.NEAREST)


def _overlay_settings(head: int, first_tokens: int) -> OverlaySettings:
    return OverlaySettings(None if head == AVERAGE_HEADS else int(head), int(first_tokens))


def _cost_text(result: BudgetResult) -> str:
    parts = result.flops
    return (
        f"**forward FLOPs** {format_flops(parts.total)} (vision tower {format_flops(parts.vision_tower)}, "
        f"query transformer {format_flops(parts.projector)}, language-model prefill {format_flops(parts.prefill)})  \n"
        f"**latency** {1000 * result.latency_s:.0f} ms for {result.new_tokens} new token{'' if result.new_tokens == 1 else 's'}"
    )


@dataclass
class _Panel:
    """The outputs of one budget's column."""

    column: gr.Column
    answer: gr.Textbox
    cost: gr.Markdown
    overlay: gr.Image


def _panel(index: int) -> _Panel:
    with gr.Column(visible=False, min_width=260, elem_id=f"panel-{index}") as column:
        answer = gr.Textbox(label="answer", interactive=False, elem_id=f"answer-{index}")
        cost = gr.Markdown(elem_id=f"cost-{index}")
        overlay = gr.Image(label="where the visual tokens look", show_label=False, interactive=False, type="pil",
                           format="png", elem_id=f"overlay-{index}")  # fmt: skip
    return _Panel(column, answer, cost, overlay)


def _header(comparer: Comparer) -> str:
    session = comparer.session
    return (
        "# MQT-LLaVA: one model, any number of visual tokens\n"
        f"Model **{session.name}**: up to M = {session.num_queries} visual tokens, {session.num_heads} attention "
        f"heads in its query transformer, running on **{session.device}**. Pick an image and a question, set the "
        "token budget m, and see the answer, what it cost and where the first m visual tokens look."
    )


def build_app(comparer: Comparer, examples: Sequence[ExampleScene]) -> gr.Blocks:
    """The page for `comparer`'s model, offering `examples` as clickable scenes."""
    num_queries, num_heads = comparer.session.num_queries, comparer.session.num_heads
    choices, ticked = budget_choices(num_queries)
    with gr.Blocks(title="MQT-LLaVA: any number of visual tokens", analytics_enabled=False) as app:
        image_state = gr.State(None)
        answered = gr.State(None)  # (image, budgets) of the answers on the page, to redraw their overlays
        gr.Markdown(_header(comparer))
        with gr.Row():
            with gr.Column(scale=1, min_width=260):
                preview = gr.Image(label="image", interactive=False, type="pil", format="png", height=260,
                                   elem_id="preview")  # fmt: skip
                upload = gr.File(label="upload an image", file_types=["image"], type="filepath", height=130,
                                 elem_id="upload")  # fmt: skip
            with gr.Column(scale=2):
                gallery = gr.Gallery(
                    value=[(_enlarged(example.image), f"{index + 1}: {example.family}") for index, example in enumerate(examples)],
                    label="example Shapes-VQA scenes: click one", columns=len(examples), height=150,
                    allow_preview=False, elem_id="examples",
                )  # fmt: skip
                question = gr.Textbox(label="question", placeholder="What color is the circle?", elem_id="question")
                with gr.Row():
                    budget = gr.Slider(1, num_queries, value=min(16, num_queries), step=1, label="visual tokens m",
                                       info=f"1..{num_queries}", elem_id="budget")  # fmt: skip
                    budgets = gr.CheckboxGroup(choices, value=ticked, label="budgets to compare", visible=False,
                                               elem_id="compare-budgets")  # fmt: skip
                    compare = gr.Checkbox(label="compare several budgets side by side", elem_id="compare")
                with gr.Row():
                    heads = gr.Dropdown([("average over heads", AVERAGE_HEADS)] + [(f"head {h + 1}", h) for h in range(num_heads)],
                                        value=AVERAGE_HEADS, label="attention heads", elem_id="heads")  # fmt: skip
                    first_tokens = gr.Slider(0, min(8, num_queries), value=min(3, num_queries), step=1,
                                             label="first tokens shown one by one", elem_id="first-tokens")  # fmt: skip
                button = gr.Button("Answer", variant="primary", elem_id="answer-button")
                status = gr.Markdown(elem_id="status")
        with gr.Row():
            panels = [_panel(index) for index in range(len(choices))]
        gr.Markdown(
            "The pictures show where the visual tokens look: the query transformer's attention over the image as the "
            "model sees it (brighter = more), for all m tokens together, then for the first tokens one by one."
        )

        def pick_upload(path: str | None):
            try:
                image = read_image(path)
            except InputError as error:
                return None, None, f"**{error}**"
            return image, _enlarged(image), f"Uploaded {image.width} x {image.height} image."

        def pick_example(event: gr.SelectData):
            example = examples[event.index]
            note = f"Example scene {event.index + 1} ({example.family} question; correct answer: {example.answer})."
            return example.image, _enlarged(example.image), example.question, note

        def toggle_compare(on: bool):
            return gr.update(visible=not on), gr.update(visible=on)

        def answer(image, question_text, m, comparing, compared, head, first) -> Iterator[dict]:
            yield {status: "Answering ...", **{panel.column: gr.update(visible=False) for panel in panels}}
            settings = _overlay_settings(head, first)
            slots: dict[int, _Panel] = {}
            try:
                for result in comparer.answer(image, question_text, list(compared) if comparing else [m], settings):
                    m_now = result.num_visual_tokens
                    if m_now not in slots:
                        panel = slots[m_now] = panels[len(slots)]
                        yield {
                            panel.column: gr.update(visible=True),
                            panel.answer: gr.update(value="", label=f"answer at m = {m_now}"),
                            panel.cost: "",
                            panel.overlay: None,
                        }
                    panel = slots[m_now]
                    if result.done:
                        yield {panel.answer: result.text, panel.cost: _cost_text(result), panel.overlay: result.overlay}
                    else:
                        yield {panel.answer: result.text}
            except InputError as error:
                yield {status: f"**{error}**"}
                return
            except Exception as error:  # shown in the page; the traceback goes to the server's log
                logger.exception("answering failed")
                yield {status: f"**The model failed: {type(error).__name__}: {error}**"}
                return
            yield {status: f"Answered at m = {', '.join(map(str, slots))}.", answered: (image, list(slots))}

        def redraw(last, head, first) -> dict:
            if last is None:
                return {}
            image, shown = last
            sheets = comparer.attention_overlays(image, shown, _overlay_settings(head, first))
            return {panel.overlay: sheet for panel, sheet in zip(panels, sheets)}

        upload.upload(pick_upload, upload, [image_state, preview, status])
        gallery.select(pick_example, None, [image_state, preview, question, status])
        compare.change(toggle_compare, compare, [budget, budgets])
        outputs = [status, answered] + [c for panel in panels for c in (panel.column, panel.answer, panel.cost, panel.overlay)]
        inputs = [image_state, question, budget, compare, budgets, heads, first_tokens]
        button.click(answer, inputs, outputs)
        question.submit(answer, inputs, outputs)
        for control in (heads, first_tokens):
            control.change(redraw, [answered, heads, first_tokens], [panel.overlay for panel in panels])
    return app


def launch(app: gr.Blocks, host: str | None = None, port: int | None = None, share: bool = False) -> None:
    """Serves `app` until interrupted. `host` and `port` default to Gradio's (its GRADIO_SERVER_NAME and
    GRADIO_SERVER_PORT variables, which a Hugging Face Space sets); `share` asks Gradio for a public link."""
    app.queue().launch(server_name=host, server_port=port, share=share)
