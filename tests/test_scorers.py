"""Scorers checked against hand-computed fixtures (feature: benchmark scoring by each benchmark's official rules)."""

from __future__ import annotations

import pytest

from mqt_llava.evaluation.scorers import (
    mme_answer,
    normalize_vqa_answer,
    parse_llava_bench_review,
    parse_mmmu_choice,
    parse_mmmu_open,
    parse_mmvet_grade,
    parse_option_letter,
    pope_answer,
    rotate_options,
    score_exact_match,
    score_llava_bench,
    score_mmbench,
    score_mme,
    score_mmmu,
    score_mmvet,
    score_multiple_choice,
    score_pope,
    score_vqa,
    vqa_accuracy,
)


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("Two", "2"),
        ("a dog.", "dog"),
        ("dont", "don't"),
        ("couldnt've", "couldn't've"),
        ("Unanswerable.", "unanswerable"),
        ("The man's hat!", "man 's hat"),
        ("1,000", "1000"),
        ("2.5", "2.5"),
        ("hot-dog", "hot dog"),
        ("  yes\n", "yes"),
    ],
)
def test_vqa_normalisation_edge_cases(raw: str, normalised: str) -> None:
    """VQA answer normalisation: number words, articles, contractions, punctuation (VQAv2/VizWiz/TextVQA rules)."""
    assert normalize_vqa_answer(raw) == normalised


def test_vqa_accuracy_leave_one_out() -> None:
    """VQA accuracy: min(#matching humans / 3, 1) averaged over the ten leave-one-out annotator subsets."""
    humans = ["2"] * 3 + ["3"] * 7
    # Annotators who said "2" see two matching others (2/3); those who said "3" see three (1): (3*2/3 + 7) / 10.
    assert vqa_accuracy("two", humans) == pytest.approx(0.9)
    assert vqa_accuracy("3", humans) == pytest.approx(1.0)
    one_match = ["4"] + ["5"] * 9
    # Nine annotators see the single "4" (1/3 each), the one who said it sees none: 9 * (1/3) / 10.
    assert vqa_accuracy("Four.", one_match) == pytest.approx(0.3)
    assert vqa_accuracy("6", one_match) == 0.0


def test_score_vqa_per_answer_type_and_vizwiz_unanswerable() -> None:
    """score_vqa's `empty_answer` (VizWiz's lenient reading): an empty answer means "unanswerable"; without it the
    empty answer is scored as it is. Per-answer-type accuracy is reported."""
    samples = [
        {"prediction": "", "answers": ["unanswerable"] * 10, "answer_type": "unanswerable"},
        {"prediction": "Unanswerable", "answers": ["unanswerable"] * 10, "answer_type": "unanswerable"},
        {"prediction": "a red car", "answers": ["red car"] * 2 + ["car"] * 8, "answer_type": "other"},
    ]
    metrics = score_vqa(samples, empty_answer="unanswerable")
    # Third answer: two humans match; annotators who said "red car" see 1 (1/3), the eight others see 2 (2/3).
    third = (2 * (1 / 3) + 8 * (2 / 3)) / 10
    assert metrics["accuracy/unanswerable"] == pytest.approx(100.0)
    assert metrics["accuracy/other"] == pytest.approx(100 * third)
    assert metrics["accuracy"] == pytest.approx(100 * (2 + third) / 3)
    assert score_vqa(samples[:1])["accuracy"] == 0.0


def test_gqa_and_shapes_exact_match_per_category() -> None:
    """GQA / Shapes-VQA exact match after lower-casing, stripping and dropping a trailing period."""
    samples = [
        {"prediction": " Red.", "answer": "red", "category": "color"},
        {"prediction": "a red", "answer": "red", "category": "color"},
        {"prediction": "3", "answer": "3", "category": "count"},
    ]
    metrics = score_exact_match(samples)
    assert metrics["accuracy"] == pytest.approx(200 / 3)
    assert metrics["accuracy/color"] == 50.0
    assert metrics["accuracy/count"] == 100.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [("Yes, there is a dog.", "yes"), ("No.", "no"), ("There is not a cat in it", "no"), ("I see one. No", "yes")],
)
def test_pope_answer_reading(text: str, expected: str) -> None:
    """POPE: only the first sentence counts, and "no"/"not" in it means no."""
    assert pope_answer(text) == expected


def test_pope_confusion_matrix_by_hand() -> None:
    """POPE accuracy, precision, recall, F1 and yes-ratio per split, and the mean F1 over splits."""
    # random split: TP=3, FN=1, FP=1, TN=3
    random_split = [("Yes", "yes")] * 3 + [("No", "yes")] + [("Yes", "no")] + [("No, there is none.", "no")] * 3
    # adversarial split: TP=2, FP=2 (the model always says yes)
    adversarial = [("Yes", "yes")] * 2 + [("Yes", "no")] * 2
    samples = [{"prediction": pred, "label": gold, "category": "random"} for pred, gold in random_split]
    samples += [{"prediction": pred, "label": gold, "category": "adversarial"} for pred, gold in adversarial]
    metrics = score_pope(samples)
    for name in ("accuracy", "precision", "recall", "f1"):
        assert metrics[f"random/{name}"] == pytest.approx(75.0)
    assert metrics["random/yes_ratio"] == pytest.approx(50.0)
    assert metrics["adversarial/accuracy"] == pytest.approx(50.0)
    assert metrics["adversarial/precision"] == pytest.approx(50.0)
    assert metrics["adversarial/recall"] == pytest.approx(100.0)
    assert metrics["adversarial/f1"] == pytest.approx(200 / 3)
    assert metrics["adversarial/yes_ratio"] == pytest.approx(100.0)
    assert metrics["f1"] == pytest.approx((75 + 200 / 3) / 2)
    with pytest.raises(ValueError, match="maybe"):
        score_pope([{"prediction": "yes", "label": "maybe", "question_id": "q1"}])


def test_mme_acc_plus_pairs() -> None:
    """MME: acc + acc+ per subtask (acc+ needs both questions of an image right), perception/cognition totals."""
    samples = [
        # existence: image 1 both right, image 2 one wrong -> acc 75, acc+ 50
        {"prediction": "Yes", "answer": "Yes", "category": "existence", "image": "1.jpg"},
        {"prediction": "No.", "answer": "No", "category": "existence", "image": "1.jpg"},
        {"prediction": "yes, it is", "answer": "Yes", "category": "existence", "image": "2.jpg"},
        {"prediction": "Yes", "answer": "No", "category": "existence", "image": "2.jpg"},
        # code_reasoning: "The answer is yes" starts with neither yes nor no -> "other" (wrong) -> acc 50, acc+ 0
        {"prediction": "No, it prints 3", "answer": "No", "category": "code_reasoning", "image": "c.png"},
        {"prediction": "The answer is yes", "answer": "Yes", "category": "code_reasoning", "image": "c.png"},
    ]
    metrics = score_mme(samples)
    assert metrics["existence/acc"] == 75.0 and metrics["existence/acc_plus"] == 50.0
    assert metrics["existence"] == 125.0
    assert metrics["code_reasoning"] == 50.0
    assert metrics["perception"] == 125.0 and metrics["cognition"] == 50.0
    assert mme_answer("The answer is yes") == "other"
    with pytest.raises(ValueError, match="unknown MME subtasks"):
        score_mme([{**samples[0], "category": "colour"}])


def test_mmbench_rotations_and_circular_scoring() -> None:
    """MMBench circular evaluation: a question counts only if every rotation of its options is answered right."""
    options = ["cat", "dog", "bird"]
    assert rotate_options(options, "B", 1) == (["dog", "bird", "cat"], "A")
    assert rotate_options(options, "B", 2) == (["bird", "cat", "dog"], "C")
    samples = []
    for index, wrong_round in (("1", None), ("2", 2)):
        for shift in range(3):
            rotated, gold = rotate_options(options, "B", shift)
            prediction = gold if shift != wrong_round else "A"
            if shift == 2 and wrong_round is None:
                prediction = "dog"  # the option text itself names the gold option
            samples.append(
                {"prediction": prediction, "answer": gold, "options": rotated, "index": index, "round": shift,
                 "category": "animals"}
            )  # fmt: skip
    metrics = score_mmbench(samples)
    assert metrics["circular_accuracy"] == 50.0
    assert metrics["circular_accuracy/animals"] == 50.0
    assert metrics["single_pass_accuracy"] == 100.0
    assert metrics["num_questions"] == 2 and metrics["num_samples"] == 6


@pytest.mark.parametrize(
    ("text", "letter"),
    [("B", "B"), ("B.", "B"), ("(B)", "B"), ("B. dog", "B"), ("The answer is B.", "B"), ("Answer: B", "B"),
     ("Dog.", "B"), ("A dog", None), ("E", None), ("I am not sure", None)],
)  # fmt: skip
def test_option_letter_parsing(text: str, letter: str | None) -> None:
    """The forgiving option-letter reading (MMBench, --lenient-parsing): letters in their usual forms or the option
    text; nothing else."""
    assert parse_option_letter(text, ["cat", "dog", "bird"]) == letter


def test_scienceqa_accuracy_counts_unparsed_as_wrong() -> None:
    """ScienceQA-IMG option-letter accuracy, with unparsable answers counted wrong and reported."""
    samples = [
        {"prediction": "A", "answer": "A", "options": ["x", "y"], "category": "natural science"},
        {"prediction": "The answer is B.", "answer": "B", "options": ["x", "y"], "category": "language science"},
        {"prediction": "no idea", "answer": "A", "options": ["x", "y"], "category": "language science"},
    ]
    metrics = score_multiple_choice(samples)
    assert metrics["accuracy"] == pytest.approx(200 / 3)
    assert metrics["accuracy/language science"] == 50.0
    assert metrics["unparsed"] == 1.0


def test_mmmu_parsing_rules() -> None:
    """MMMU multiple-choice parsing (brackets, bare letters, option text, last mention) and open answers."""
    options = ["red barn", "blue house", "green tree", "grey road"]
    assert parse_mmmu_choice("The answer is (B).", options) == "B"
    assert parse_mmmu_choice("(A) is tempting, but the answer is (C)", options) == "C"
    assert parse_mmmu_choice("D", options) == "D"
    assert parse_mmmu_choice("the picture shows a large red barn next to a field", options) == "A"
    guesses = {parse_mmmu_choice("no idea", options, seed="q7") for _ in range(3)}
    assert len(guesses) == 1 and guesses <= set("ABCD")
    assert 3.5 in parse_mmmu_open("So the length is 3.50")
    samples = [
        {"question_id": "validation_Art_1", "prediction": "(B)", "answer": "B", "options": options,
         "question_type": "multiple-choice", "subject": "Art"},
        {"question_id": "validation_Math_1", "prediction": "Thus the result is 12.0", "answer": "12",
         "question_type": "open", "subject": "Math"},
        {"question_id": "validation_Math_2", "prediction": "It is Paris.", "answer": ["paris"],
         "question_type": "open", "subject": "Math"},
        {"question_id": "validation_Math_3", "prediction": "The answer is 7", "answer": "8",
         "question_type": "open", "subject": "Math"},
    ]  # fmt: skip
    metrics = score_mmmu(samples)
    assert metrics["accuracy"] == 75.0
    assert metrics["accuracy/Art"] == 100.0
    assert metrics["accuracy/Math"] == pytest.approx(200 / 3)


def test_llava_bench_relative_score_from_reviews() -> None:
    """LLaVA-Bench: relative score = mean model score / mean reference score, per category and overall."""
    assert parse_llava_bench_review("8 6\nAssistant 1 is better.") == (8.0, 6.0)
    assert parse_llava_bench_review("Scores: 8 and 6") is None
    samples = [
        {"review": "8 6\nreasons", "category": "conv"},
        {"review": "9, 9\nreasons", "category": "complex"},
        {"review": "I cannot rate this.", "category": "complex"},
    ]
    metrics = score_llava_bench(samples)
    assert metrics["relative_score"] == pytest.approx(100 * 7.5 / 8.5)
    assert metrics["relative_score/conv"] == pytest.approx(75.0)
    assert metrics["relative_score/complex"] == pytest.approx(100.0)
    assert metrics["unparsed"] == 1.0


def test_mmvet_grades_per_capability() -> None:
    """MM-Vet: mean grade overall and per capability; an unreadable grade counts 0.0 like the official grader."""
    assert parse_mmvet_grade("0.7") == 0.7
    assert parse_mmvet_grade("1.5") is None and parse_mmvet_grade("great") is None
    samples = [
        {"grade": 1.0, "capabilities": ["rec", "ocr"]},
        {"grade": 0.5, "capabilities": ["rec"]},
        {"grade": None, "capabilities": ["math"]},
    ]
    metrics = score_mmvet(samples)
    assert metrics["total"] == pytest.approx(50.0)
    assert metrics["capability/rec"] == pytest.approx(75.0)
    assert metrics["capability/ocr"] == pytest.approx(100.0)
    assert metrics["capability/math"] == 0.0
    assert metrics["unparsed"] == 1.0
