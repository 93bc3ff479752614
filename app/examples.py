"""The example scenes the page offers: Shapes-VQA scenes drawn in memory when the app starts (no stored files)."""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

from mqt_llava.evaluation.shapes_vqa import FAMILIES, build_split

__all__ = ["ExampleScene", "example_scenes"]


@dataclass(frozen=True)
class ExampleScene:
    """One scene with a question about it and the question's correct answer."""

    image: Image.Image
    question: str
    answer: str
    family: str


def example_scenes(count: int = 6, seed: int = 0) -> list[ExampleScene]:
    """`count` scenes of a split named "examples" (unlike the demo's train and test splits), the i-th asking a
    question of family FAMILIES[i mod 5], so the examples go through every family."""
    examples = []
    for index, record in enumerate(build_split("examples", count, seed)):
        wanted = FAMILIES[index % len(FAMILIES)]
        question = next((q for q in record.questions if q.family == wanted), record.questions[0])
        examples.append(ExampleScene(record.image(), question.text, question.answer, question.family))
    return examples
