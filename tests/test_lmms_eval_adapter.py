"""The lmms-eval adapter against the real lmms-eval package (feature: `lmms_eval --model mqt_llava`).

lmms-eval is an optional extra; it declares torchvision, which breaks CPU-only torch here, so it is installed
without its dependency tree (`pip install --no-deps lmms-eval==0.7.3 loguru pytz`: what its model API imports).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip(
    "lmms_eval.api.model",
    reason="lmms-eval is not importable; install it with `pip install --no-deps lmms-eval==0.7.3 loguru pytz`",
)


# What installing this project writes for its `lmms_eval.models` entry point (setup.cfg), so the test does not
# depend on whether the checkout was installed after the entry point was added.
ENTRY_POINTS = "[lmms_eval.models]\nmqt_llava = mqt_llava.evaluation.lmms_eval_plugin:manifest\n"

SCRIPT = """
import json, sys
from lmms_eval.api.instance import Instance
from lmms_eval.models import get_model
from mqt_llava.tools.testing import make_image

model_class = get_model("mqt_llava")
lm = model_class.create_from_arg_string(
    f"pretrained={MODEL_DIR},num_visual_tokens=4", {"batch_size": 2, "device": "cpu"}
)
lm.task_dict = {"toy": {"test": [{"image": make_image(seed)} for seed in range(3)]}}

def doc_to_visual(doc):
    return [doc["image"]]

def request(kind, arguments, doc_id):
    return Instance(kind, arguments, idx=0, metadata={"task": "toy", "doc_id": doc_id, "repeats": 1})

question = "<image>\\nwhat is in the image ?"

def generation(doc, until):
    settings = {"max_new_tokens": 4, "until": until}
    return request("generate_until", (question, settings, doc_to_visual, doc, "toy", "test"), doc)

texts = lm.generate_until([generation(doc, ["\\n\\n"]) for doc in range(3)])
cut = lm.generate_until([generation(0, [texts[0].split()[0]])])
likelihoods = lm.loglikelihood([
    request("loglikelihood", (question, texts[0], doc_to_visual, 0, "toy", "test"), 0),
    request("loglikelihood", (question, "circle square", doc_to_visual, 0, "toy", "test"), 0),
])
json.dump({"class": f"{model_class.__module__}.{model_class.__qualname__}", "texts": texts, "cut": cut,
           "likelihoods": likelihoods}, open(RESULT_PATH, "w"))
"""


def test_registered_model_generates_and_scores_instances(tiny_model_dir, tmp_path) -> None:
    """lmms-eval adapter: found through lmms-eval's real entry-point registry, built from a --model_args string,
    answers `generate_until` Instances like the runner does at the same m, honours stop strings, and returns
    log-likelihoods (greedy flag set for the model's own greedy answer)."""
    site = tmp_path / "site"
    dist_info = site / "mqt_llava_lmms_entry-0.0.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: mqt-llava-lmms-entry\nVersion: 0.0\n")
    (dist_info / "entry_points.txt").write_text(ENTRY_POINTS)
    result_path = tmp_path / "result.json"
    source = f"MODEL_DIR = {str(tiny_model_dir)!r}\nRESULT_PATH = {str(result_path)!r}\n" + textwrap.dedent(SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(site), "OMP_NUM_THREADS": "1"}
    completed = subprocess.run([sys.executable, "-c", source], cwd=tmp_path, env=env, capture_output=True, text=True,
                               timeout=300)  # fmt: skip
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-4000:]
    result = json.loads(result_path.read_text())
    assert result["class"] == "mqt_llava.evaluation.lmms_eval_plugin.models.mqt_llava.MqtLlava"

    import torch

    from mqt_llava.evaluation.runner import answer_conversations, load_model
    from mqt_llava.tools.testing import make_image

    model, processor = load_model(str(tiny_model_dir), "cpu", "float32")
    conversations = [
        [{"role": "user", "content": [{"type": "image", "image": make_image(seed)},
                                      {"type": "text", "text": "what is in the image ?"}]}]
        for seed in range(3)
    ]  # fmt: skip
    expected = answer_conversations(model, processor, conversations, 4, max_new_tokens=4, do_sample=False)
    assert result["texts"] == expected
    assert result["cut"] == [expected[0].split(expected[0].split()[0])[0]]
    (own_logprob, own_greedy), (other_logprob, other_greedy) = result["likelihoods"]
    assert own_greedy is True and other_greedy is False
    assert other_logprob < 0.0
    # The greedy answer's log-probability, summed from generate's own step scores, matches the adapter's forward pass.
    inputs = processor.apply_chat_template(conversations[:1], add_generation_prompt=True, tokenize=True,
                                           return_dict=True, return_tensors="pt",
                                           processor_kwargs={"num_visual_tokens": 4})  # fmt: skip
    output = model.generate(**inputs, num_visual_tokens=4, max_new_tokens=4, do_sample=False, output_scores=True,
                            return_dict_in_generate=True)  # fmt: skip
    new_tokens = output.sequences[0, inputs["input_ids"].shape[1] :]
    steps = torch.stack(
        [torch.log_softmax(score[0].float(), -1)[token] for score, token in zip(output.scores, new_tokens, strict=True)]
    )
    assert own_logprob == pytest.approx(float(steps.sum()), abs=1e-3)


def test_num_visual_tokens_outside_the_model_range_is_refused(tiny_model_dir) -> None:
    """lmms-eval adapter: `num_visual_tokens` follows the 1..M contract and names the valid range."""
    from mqt_llava.evaluation.lmms_eval_plugin.models.mqt_llava import MqtLlava

    with pytest.raises(ValueError, match=r"1\.\.16"):
        MqtLlava.create_from_arg_string(f"pretrained={tiny_model_dir},num_visual_tokens=99", {"device": "cpu"})
