"""The web demo's logic without the browser (`mqt_llava.app`, no gradio needed): streamed answers, cost figures,
attention overlays and bad-input messages, on the shipped demo model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mqt_llava.app.compare import Comparer, OverlaySettings, budget_choices
from mqt_llava.app.examples import example_scenes
from mqt_llava.app.inputs import InputError, check_budgets, check_question, read_image
from mqt_llava.app.overlay import attention_maps, model_view, overlay_grid
from mqt_llava.app.session import AppSession
from mqt_llava.demo.attention_figure import token_attention
from mqt_llava.demo.cli import SHIPPED_MODEL
from mqt_llava.evaluation.cost.options import PAPER_BUDGETS
from mqt_llava.evaluation.shapes_vqa import CAPTION_PROMPT

pytestmark = pytest.mark.skipif(not (SHIPPED_MODEL / "config.json").is_file(), reason="the shipped model is not built")


@pytest.fixture(scope="module")
def comparer() -> Comparer:
    return Comparer(AppSession.load(SHIPPED_MODEL, device="cpu", max_new_tokens=8))


@pytest.fixture(scope="module")
def scenes():
    return example_scenes()


def _generate(session: AppSession, image, question: str, m: int) -> str:
    inputs = session.prompt(image, question, m)
    with torch.no_grad():
        out = session.model.generate(**inputs, num_visual_tokens=m, max_new_tokens=session.max_new_tokens, do_sample=False)
    return session.processor.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True).strip()


def test_streamed_answers_are_the_models_answers_at_each_budget(comparer, scenes):
    """Protects the answer a person reads: at every budget asked for, the streamed text grows by prefixes and ends as
    exactly what `model.generate(num_visual_tokens=m)` decodes, each budget once and in increasing m, with its
    latency and token count measured."""
    num_queries = comparer.session.num_queries
    asked = [(scenes[0].image, scenes[0].question), (scenes[1].image, CAPTION_PROMPT)]  # a one-word and a long answer
    for image, question in asked:
        results = list(comparer.answer(image, question, [num_queries, 1, 4, 4]))
        finals = [r for r in results if r.done]
        assert [r.num_visual_tokens for r in finals] == [1, 4, num_queries]
        for final in finals:
            streamed = [r.text for r in results if r.num_visual_tokens == final.num_visual_tokens and not r.done]
            assert streamed, "nothing was streamed before the final answer"
            assert all(final.text.startswith(text.strip()) for text in streamed)
            assert final.text == _generate(comparer.session, image, question, final.num_visual_tokens)
            assert final.latency_s > 0 and 1 <= final.new_tokens <= comparer.session.max_new_tokens
            if question == CAPTION_PROMPT:
                assert len(set(streamed)) > 2, f"a {final.new_tokens}-token answer came in {len(streamed)} pieces"


def test_cost_figures_are_the_demos_flop_counts(comparer, scenes):
    """Protects the FLOPs shown per answer: they equal what `mqt-llava demo` counts for the same prompt on the real
    model (vision tower + query transformer + prefill), and grow with m in the language model only."""
    from mqt_llava.demo.sweep import count_flops, load_pipeline
    from mqt_llava.evaluation.shapes_vqa import build_split

    record = build_split("examples", 1, 0)[0]
    budgets = [1, 16, comparer.session.num_queries]
    results = [r for r in comparer.answer(record.image(), record.questions[0].text, budgets) if r.done]
    demo_counts = count_flops(load_pipeline(SHIPPED_MODEL), record, budgets)
    assert [r.flops.total for r in results] == [demo_counts[str(m)] for m in budgets]
    assert len({r.flops.vision_tower for r in results}) == 1
    assert results[0].flops.prefill < results[1].flops.prefill < results[2].flops.prefill


def test_overlay_draws_the_first_m_tokens_attention(comparer, scenes):
    """Protects the attention overlay: its maps are the query transformer's attention of the first m tokens (the same
    as running the query transformer at m), one map per shown token plus their sum, per head or averaged, drawn over
    the image exactly as the model sees it."""
    session, image = comparer.session, scenes[3].image
    attention = token_attention(session.model, session.processor, image)  # (heads, M, side, side)
    m = 4
    with torch.no_grad():
        pixels = session.processor.image_processor(image, return_tensors="pt")["pixel_values"]
        features = session.model.model.get_vision_features(pixels)
        _, weights = session.model.model.query_transformer(features, m, output_attentions=True)
    at_m = weights[-1][0].reshape(attention.shape[0], m, *attention.shape[2:])
    torch.testing.assert_close(attention[:, :m], at_m)

    averaged = attention_maps(attention, m, first_tokens=2, head=None)
    assert [title for title, _ in averaged] == [f"m = {m}: all tokens", "token 1", "token 2"]
    torch.testing.assert_close(averaged[0][1], at_m.mean(0).sum(0))
    torch.testing.assert_close(averaged[0][1].sum(), torch.tensor(float(m)))
    one_head = attention_maps(attention, m, first_tokens=2, head=3)
    torch.testing.assert_close(one_head[1][1], attention[3, 0])
    assert not torch.allclose(one_head[1][1], averaged[1][1])

    view = model_view(session.processor.image_processor, image)
    assert view.shape == (image.height, image.width, 3)
    assert np.abs(view.astype(int) - np.asarray(image.convert("RGB"), dtype=int)).max() <= 1
    sheet = overlay_grid(view, averaged, tile=100, columns=2, gap=4)
    assert sheet.width == 2 * 100 + 4 and sheet.height > 2 * 100
    overlays = comparer.attention_overlays(image, [1, m], OverlaySettings(head=None, first_tokens=2))
    assert overlays[0].size != overlays[1].size  # m = 1 has one token to show, m = 4 has the sum and two tokens


def test_bad_input_is_refused_with_a_message_naming_it(comparer, scenes, tmp_path):
    """Protects the page's error messages: no image, an unreadable file (named), an empty question and a budget
    outside 1..M (the range named) each raise `InputError` before any model work."""
    num_queries = comparer.session.num_queries
    broken = tmp_path / "holiday_photo.png"
    broken.write_bytes(b"this is not a picture")
    with pytest.raises(InputError, match="holiday_photo.png"):
        read_image(broken)
    with pytest.raises(InputError, match="No image"):
        read_image(None)
    with pytest.raises(InputError, match="No image"):
        next(comparer.answer(None, "What color is the circle?", [4]))
    with pytest.raises(InputError, match="question is empty"):
        check_question("   ")
    with pytest.raises(InputError, match="question is empty"):
        next(comparer.answer(scenes[0].image, "", [4]))
    for bad in (0, num_queries + 1, 2.5, True, "4"):
        with pytest.raises(InputError, match=f"1 to {num_queries}"):
            check_budgets([bad], num_queries)
    with pytest.raises(InputError, match=f"1 to {num_queries}"):
        next(comparer.answer(scenes[0].image, "What color is the circle?", [num_queries + 1]))
    with pytest.raises(InputError, match="at least one"):
        check_budgets([], num_queries)


def test_compare_mode_offers_the_papers_budgets_up_to_m():
    """Protects compare mode's choices: 1, M and every paper budget up to M are offered, and the budgets ticked at
    first (three or four) are offered ones spread from M/16 or less up to M."""
    for num_queries in (16, 64, 256):
        choices, ticked = budget_choices(num_queries)
        assert set(choices) == {1, num_queries} | {m for m in PAPER_BUDGETS if m <= num_queries}
        assert set(ticked) <= set(choices) and 3 <= len(ticked) <= 4
        assert max(ticked) == num_queries and min(ticked) <= max(1, num_queries // 16)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_app_uses_the_gpu_when_there_is_one(comparer, scenes):
    """Protects "uses the GPU when one is there": by default the session loads on CUDA, and its answers, FLOPs and
    attention overlays there are those of the CPU session."""
    on_gpu = Comparer(AppSession.load(SHIPPED_MODEL, max_new_tokens=comparer.session.max_new_tokens))
    assert on_gpu.session.device == "cuda" and on_gpu.session.model.device.type == "cuda"
    scene = scenes[1]
    budgets = [1, 16, comparer.session.num_queries]
    gpu = [r for r in on_gpu.answer(scene.image, scene.question, budgets) if r.done]
    cpu = [r for r in comparer.answer(scene.image, scene.question, budgets) if r.done]
    assert [r.text for r in gpu] == [r.text for r in cpu]
    assert [r.flops for r in gpu] == [r.flops for r in cpu]
    assert all(g.overlay.size == c.overlay.size for g, c in zip(gpu, cpu))
