"""Scorers: pure functions from predictions joined with their gold annotations to metrics, one module per family.

Every scorer takes an iterable of sample dicts (the gold fields of a question plus its `prediction`) and returns a
flat dict of float metrics, percentages on a 0-100 scale (MME on its own 0-200 per subtask scale). By default each
one reproduces its benchmark's reference evaluation code, quirks included; the few that offer a more forgiving
reading take an option for it, off by default (docs/evaluation.md lists them and the reference each scorer follows).
"""

from .choice import parse_option_letter, parse_scienceqa_answer, score_multiple_choice
from .exact import gqa_prediction, normalize_short_answer, score_exact_match, score_gqa
from .judged import parse_llava_bench_review, parse_mmvet_grade, score_llava_bench, score_mmvet
from .mmbench import rotate_options, score_mmbench
from .mme import COGNITION_SUBTASKS, PERCEPTION_SUBTASKS, mme_answer, score_mme
from .mmmu import parse_mmmu_choice, parse_mmmu_open, score_mmmu
from .pope import pope_answer, score_pope
from .vqa import normalize_vqa_answer, score_vqa, vqa_accuracy

__all__ = [
    "COGNITION_SUBTASKS",
    "PERCEPTION_SUBTASKS",
    "gqa_prediction",
    "mme_answer",
    "normalize_short_answer",
    "normalize_vqa_answer",
    "parse_llava_bench_review",
    "parse_mmmu_choice",
    "parse_mmmu_open",
    "parse_mmvet_grade",
    "parse_option_letter",
    "parse_scienceqa_answer",
    "pope_answer",
    "rotate_options",
    "score_exact_match",
    "score_gqa",
    "score_llava_bench",
    "score_mmbench",
    "score_mme",
    "score_mmmu",
    "score_multiple_choice",
    "score_mmvet",
    "score_pope",
    "score_vqa",
    "vqa_accuracy",
]
