"""Tests of `mqt-llava convert` (issue 5) on tiny checkpoints built here in the released checkpoint's layout.

The reference model is computed in this file straight from the original tensors: CLIP's second-to-last hidden layer
without CLS, the released query transformer written with `torch.nn.MultiheadAttention` (as the original code did),
`x @ proj`, and a plain `LlamaForCausalLM` fed the spliced embeddings.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
from torch import nn
from torch.nn import functional as F
from transformers import (
    CLIPConfig,
    CLIPModel,
    CLIPVisionModel,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
)

from conftest import run_isolated
from mqt_llava import MqtLlavaForConditionalGeneration, MqtLlavaProcessor
from mqt_llava.cli import main as cli_main
from mqt_llava.convert.original_mapping import build_target_config
from mqt_llava.tools.presets import preset_config
from mqt_llava.tools.testing import make_image

SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)
CORPUS = [SYSTEM, "USER: ASSISTANT: what is in the image ? a red circle and a blue square . how many ? two"]
NUM_QUERIES = 16  # a 4 x 4 query grid
NUM_HEADS = 4
VISION = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 3, "num_attention_heads": 4,
          "image_size": 30, "patch_size": 5}  # a 6 x 6 vision grid, so the key table is really resized  # fmt: skip
TEXT = {"hidden_size": 48, "intermediate_size": 96, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "max_position_embeddings": 256, "rms_norm_eps": 1e-5}  # fmt: skip
LLAVA_KEYS = {
    "model_type": "llava_llama",
    "architectures": ["LlavaLlamaForCausalLM"],
    "mm_vision_tower": "openai/clip-vit-large-patch14-336",
    "mm_hidden_size": VISION["hidden_size"],
    "mm_vision_select_layer": -2,
    "mm_vision_select_feature": "patch",
    "mm_patch_merge_type": "flat",
    "mm_use_im_start_end": False,
    "mm_use_im_patch_token": False,
    "image_aspect_ratio": "pad",
    "num_visual_tokens": "second_stage",
    "tokenizer_model_max_length": 2048,
    "tokenizer_padding_side": "right",
    "use_mm_proj": True,
    "torch_dtype": "float32",
}


# ---------------------------------------------------------------------------------------------------------------------
# Tiny inputs in the original layout
# ---------------------------------------------------------------------------------------------------------------------


def save_vicuna_like_tokenizer(folder: Path) -> PreTrainedTokenizerFast:
    """A word-level tokenizer shaped like Vicuna's: `<unk> <s> </s>` specials, BOS added, no `<image>` token."""
    tokenizer = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.train_from_iterator(CORPUS, trainers.WordLevelTrainer(special_tokens=["<unk>", "<s>", "</s>"]))
    tokenizer.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="<unk>", bos_token="<s>", eos_token="</s>")
    fast.save_pretrained(folder)
    return fast


def sincos_table(width: int, grid: int) -> np.ndarray:
    """The released fixed 2D sin-cos table (MAE convention: first half encodes the column, second half the row)."""

    def encode(dim: int, positions: np.ndarray) -> np.ndarray:
        omega = 1.0 / 10000 ** (np.arange(dim // 2, dtype=np.float64) / (dim / 2.0))
        angles = positions.reshape(-1)[:, None] * omega[None, :]
        return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)

    columns, rows = np.meshgrid(np.arange(grid, dtype=np.float64), np.arange(grid, dtype=np.float64))
    return np.concatenate([encode(width // 2, columns), encode(width // 2, rows)], axis=1).astype(np.float32)


def build_clip_folder(folder: Path, seed: int = 0) -> CLIPModel:
    """A full tiny CLIP (text tower included, as openai/clip-vit-large-patch14-336 is) with its preprocessor config."""
    torch.manual_seed(seed)
    config = CLIPConfig(
        vision_config=VISION,
        text_config={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                     "vocab_size": 99, "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 1},
        projection_dim=8,
    )  # fmt: skip
    model = CLIPModel(config).eval()
    model.save_pretrained(folder)
    size = VISION["image_size"]
    (folder / "preprocessor_config.json").write_text(
        json.dumps(
            {
                "image_processor_type": "CLIPImageProcessor",
                "crop_size": {"height": size, "width": size},
                "size": {"shortest_edge": size},
                "image_mean": [0.48145466, 0.4578275, 0.40821073],
                "image_std": [0.26862954, 0.26130258, 0.27577711],
            }
        )
    )
    return model


def original_state_dict(vocab_size: int, seed: int = 1) -> tuple[dict, dict[str, torch.Tensor]]:
    """The original config and tensors: a random Llama plus a released-style query abstractor with non-trivial
    LayerNorms and biases, and the sin-cos table stored in fp16 as the released code created it."""
    torch.manual_seed(seed)
    text = {**TEXT, "vocab_size": vocab_size, "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0,
            "rope_theta": 10000.0, "hidden_act": "silu", "tie_word_embeddings": False}  # fmt: skip
    llama = LlamaForCausalLM(LlamaConfig(**text))
    tensors = {name: tensor.detach().clone() for name, tensor in llama.state_dict().items()}
    width, hidden = VISION["hidden_size"], TEXT["hidden_size"]
    prefix = "model.query_abstractor."
    grid = math.isqrt(NUM_QUERIES)
    tensors.update(
        {
            prefix + "query": torch.randn(NUM_QUERIES, width) * 0.5,
            prefix + "pos_embed": torch.from_numpy(sincos_table(width, grid)).half().float(),
            prefix + "attn.in_proj_weight": torch.randn(3 * width, width) * width**-0.5,
            prefix + "attn.in_proj_bias": torch.randn(3 * width) * 0.1,
            prefix + "attn.out_proj.weight": torch.randn(width, width) * width**-0.5,
            prefix + "attn.out_proj.bias": torch.randn(width) * 0.1,
            prefix + "proj": torch.randn(width, hidden) * hidden**-0.5,
        }
    )
    for norm in ("ln_q", "ln_k", "ln_v"):
        tensors[f"{prefix}{norm}.weight"] = 1 + 0.1 * torch.randn(width)
        tensors[f"{prefix}{norm}.bias"] = 0.1 * torch.randn(width)
    return {**text, **LLAVA_KEYS}, tensors


def save_original_checkpoint(
    folder: Path, config: dict, tensors: dict[str, torch.Tensor], pickled: bool = False, num_shards: int = 2
) -> Path:
    """Writes `tensors` as the LLaVA repository saves them: numbered shards plus an index (or pickled `.bin`)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    names = list(tensors)
    chunks = [names[i::num_shards] for i in range(num_shards)]
    weight_map = {}
    for number, chunk in enumerate(chunks, start=1):
        stem = "pytorch_model" if pickled else "model"
        filename = f"{stem}-{number:05d}-of-{num_shards:05d}." + ("bin" if pickled else "safetensors")
        shard = {name: tensors[name].contiguous() for name in chunk}
        if pickled:
            torch.save(shard, folder / filename)
        else:
            save_file(shard, folder / filename, metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(chunk, filename))
    index_name = "pytorch_model.bin.index.json" if pickled else "model.safetensors.index.json"
    (folder / index_name).write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return folder


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict:
    """A tiny CLIP folder, a Vicuna-like tokenizer and an original-layout checkpoint in sharded safetensors."""
    root = tmp_path_factory.mktemp("original")
    tokenizer = save_vicuna_like_tokenizer(root / "tokenizer")
    clip = build_clip_folder(root / "clip")
    config, tensors = original_state_dict(len(tokenizer))
    checkpoint = save_original_checkpoint(root / "checkpoint", config, tensors)
    return {"root": root, "clip": root / "clip", "clip_model": clip, "tokenizer": root / "tokenizer",
            "checkpoint": checkpoint, "config": config, "tensors": tensors}  # fmt: skip


def convert_args(sources: dict, checkpoint: Path, out: Path, *extra: str) -> list[str]:
    return [
        "convert", "--checkpoint", str(checkpoint), "--vision-tower", str(sources["clip"]),
        "--tokenizer", str(sources["tokenizer"]), "--out", str(out), "--num-heads", str(NUM_HEADS), *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def converted(sources) -> Path:
    """The checkpoint converted in fp32 through the CLI, with shards small enough to give several output files."""
    out = sources["root"] / "converted"
    arguments = convert_args(sources, sources["checkpoint"], out, "--dtype", "fp32", "--max-shard-size", "200KB")
    assert cli_main(arguments) == 0
    return out


# ---------------------------------------------------------------------------------------------------------------------
# The reference, from the original tensors and formulas
# ---------------------------------------------------------------------------------------------------------------------


def reference_visual_tokens(
    tensors: dict, vision_tower: CLIPVisionModel, pixel_values: torch.Tensor, m: int
) -> torch.Tensor:
    """query = LN_q(query[:m] + pos[:m]); key = LN_k(bicubic(pos)); value = LN_v(features); MHA(...) @ proj: (m, H)."""
    prefix = "model.query_abstractor."
    features = vision_tower(pixel_values, output_hidden_states=True).hidden_states[-2][0, 1:]  # (N, D)
    width, side = features.shape[1], math.isqrt(features.shape[0])
    pos = tensors[prefix + "pos_embed"]  # (M, D)
    grid = math.isqrt(pos.shape[0])
    key_pos = F.interpolate(pos.reshape(1, grid, grid, width).permute(0, 3, 1, 2), size=(side, side), mode="bicubic",
                            align_corners=False).permute(0, 2, 3, 1).reshape(side * side, width)  # fmt: skip

    def norm(name: str, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, (width,), tensors[f"{prefix}{name}.weight"], tensors[f"{prefix}{name}.bias"], eps=1e-6)

    attention = nn.MultiheadAttention(width, NUM_HEADS)
    attention.load_state_dict({name: tensors[prefix + "attn." + name] for name in attention.state_dict()})
    query = norm("ln_q", tensors[prefix + "query"][:m] + pos[:m])[:, None]  # (m, 1, D)
    out = attention(query, norm("ln_k", key_pos)[:, None], norm("ln_v", features)[:, None])[0][:, 0]  # (m, D)
    return out @ tensors[prefix + "proj"]


def reference_logits(
    sources: dict, input_ids: torch.Tensor, pixel_values: torch.Tensor, image_token_id: int
) -> torch.Tensor:
    """Logits (L, V) of a plain LlamaForCausalLM fed the text embeddings with the visual tokens spliced in."""
    tensors, config = sources["tensors"], sources["config"]
    llama = LlamaForCausalLM(LlamaConfig(**{k: v for k, v in config.items() if k not in LLAVA_KEYS})).eval()
    llama.load_state_dict({k: v for k, v in tensors.items() if not k.startswith("model.query_abstractor.")})
    vision_tower = CLIPVisionModel.from_pretrained(sources["clip"]).eval()
    ids = input_ids[0]
    is_image = ids == image_token_id
    start, m = int(is_image.nonzero()[0]), int(is_image.sum())
    embed = llama.get_input_embeddings()
    visual = reference_visual_tokens(tensors, vision_tower, pixel_values, m)
    embeds = torch.cat([embed(ids[:start]), visual, embed(ids[start + m :])])  # (L, H)
    return llama(inputs_embeds=embeds[None]).logits[0]


# ---------------------------------------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("m", [1, 7, NUM_QUERIES])
def test_logits_match_the_original_formulas(sources, converted, m):
    """Feature: exact parity. The converted fp32 model's logits equal the reference computed from the original
    tensors (query transformer by the released formulas + plain Llama on spliced embeddings) to 1e-5, at m = 1, 7, M."""
    torch.manual_seed(0)
    model = MqtLlavaForConditionalGeneration.from_pretrained(converted).eval()
    processor = MqtLlavaProcessor.from_pretrained(converted)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "what is in the image ?"}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
    inputs = processor(images=make_image(3, 40), text=prompt, num_visual_tokens=m, add_special_tokens=False,
                       return_tensors="pt")  # fmt: skip
    assert int((inputs["input_ids"] == model.config.image_token_id).sum()) == m
    with torch.no_grad():
        logits = model(**inputs).logits[0]
        expected = reference_logits(sources, inputs["input_ids"], inputs["pixel_values"], model.config.image_token_id)
    vocab = expected.shape[-1]
    assert logits.shape == (inputs["input_ids"].shape[1], vocab + 1)
    torch.testing.assert_close(logits[:, :vocab], expected, rtol=0, atol=1e-5)


def vicuna_v1_prompt(turns: list[tuple[str, str | None]]) -> str:
    """The original Vicuna v1 prompt: system line, a space, then `USER: q ASSISTANT: a</s>` per exchange, ending with
    `USER: q ASSISTANT:` when a reply is expected; the image as `<image>\\n` before the first question."""
    prompt = SYSTEM + " "
    for index, (question, answer) in enumerate(turns):
        prompt += "USER: " + ("<image>\n" if index == 0 else "") + question + " ASSISTANT:"
        if answer is not None:
            prompt += " " + answer + "</s>"
    return prompt


def test_chat_template_renders_the_original_vicuna_prompt(converted):
    """Feature: prompt fidelity. The converted processor's chat template renders the original Vicuna v1 prompt byte
    for byte (after the BOS token the tokenizer would add), and tokenizes it with one BOS and the image run in place."""
    processor = MqtLlavaProcessor.from_pretrained(converted)
    turns = [("what is in the image ?", "a red circle ."), ("how many ?", None)]
    messages = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": turns[0][0]}]},
        {"role": "assistant", "content": [{"type": "text", "text": turns[0][1]}]},
        {"role": "user", "content": [{"type": "text", "text": turns[1][0]}]},
    ]
    rendered = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert rendered == processor.tokenizer.bos_token + vicuna_v1_prompt(turns)

    inputs = processor.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True, return_dict=True, images=[make_image(0, 30)],
        processor_kwargs={"num_visual_tokens": 5},
    )  # fmt: skip
    before, after = vicuna_v1_prompt(turns).split("<image>")
    tokenizer = processor.tokenizer
    image_id = tokenizer.convert_tokens_to_ids("<image>")
    expected = tokenizer(before).input_ids + [image_id] * 5 + tokenizer(after, add_special_tokens=False).input_ids
    assert list(inputs["input_ids"][0]) == expected


def test_output_folder_is_complete(sources, converted):
    """Feature: a complete Hub folder. Config with the released semantics (position keys, M, heads, layer -2, CLS
    dropped), `<image>` appended to the vocabulary with mean-initialised rows, sharded safetensors with an index,
    generation config with `num_visual_tokens: null`, a processor defaulting to M (not `second_stage`), remote code and
    a model card with Hub metadata."""
    from huggingface_hub import ModelCard

    config = json.loads((converted / "config.json").read_text())
    vocab = sources["config"]["vocab_size"]
    assert (config["model_type"], config["query_key_source"], config["num_queries"], config["query_num_heads"]) == (
        "mqt_llava", "position", NUM_QUERIES, NUM_HEADS)  # fmt: skip
    assert (config["vision_feature_layer"], config["vision_feature_select_strategy"]) == (-2, "default")
    assert config["image_token_id"] == vocab and config["text_config"]["vocab_size"] == vocab + 1
    assert set(config["auto_map"]) >= {"AutoConfig", "AutoModelForImageTextToText", "AutoProcessor"}
    assert json.loads((converted / "generation_config.json").read_text())["num_visual_tokens"] is None
    code = ("configuration_mqt_llava.py", "modeling_mqt_llava.py", "processing_mqt_llava.py", "chat_template.jinja")
    assert all((converted / name).is_file() for name in code)

    index = json.loads((converted / "model.safetensors.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) == 2 and all((converted / shard).is_file() for shard in shards)
    weights = {}
    for shard in shards:
        weights.update(load_file(converted / shard))
    original = sources["tensors"]
    for name, original_name in [("model.language_model.embed_tokens.weight", "model.embed_tokens.weight"),
                                ("lm_head.weight", "lm_head.weight")]:  # fmt: skip
        torch.testing.assert_close(weights[name][:vocab], original[original_name], rtol=0, atol=0)
        torch.testing.assert_close(weights[name][vocab], original[original_name].mean(dim=0))

    processor = MqtLlavaProcessor.from_pretrained(converted)
    assert processor.tokenizer.convert_tokens_to_ids("<image>") == vocab
    inputs = processor(images=make_image(1, 30), text="<image>\nhow many ?", return_tensors="pt")
    assert int((inputs["input_ids"] == vocab).sum()) == NUM_QUERIES

    card = ModelCard.load(converted / "README.md")
    assert card.data.pipeline_tag == "image-text-to-text" and card.data.library_name == "transformers"
    assert card.data.base_model == ["gordonhu/MQT-LLaVA-7b"]
    assert "second_stage" in card.text and "mean of the existing rows" in card.text


def test_fresh_process_loads_and_generates(converted, tmp_path):
    """Feature: self-contained output. A fresh interpreter that cannot import this repository loads the folder with
    `trust_remote_code=True` and generates through `pipeline("image-text-to-text")` at a chosen token budget."""
    result = run_isolated(
        f"""
        import json
        import numpy as np
        from PIL import Image
        from transformers import pipeline
        pipe = pipeline("image-text-to-text", model={str(converted)!r}, trust_remote_code=True)
        image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 30, 3), dtype=np.uint8))
        messages = [{{"role": "user", "content": [{{"type": "image", "image": image}},
                                                  {{"type": "text", "text": "how many ?"}}]}}]
        out = pipe(text=messages, generate_kwargs={{"num_visual_tokens": 3, "max_new_tokens": 4, "do_sample": False}},
                   return_full_text=False)
        json.dump({{"text": out[0]["generated_text"], "class": type(pipe.model).__name__}}, open(RESULT_PATH, "w"))
        """,
        tmp_path,
    )
    assert result["class"] == "MqtLlavaForConditionalGeneration"
    assert isinstance(result["text"], str)


def _variant(sources: dict, folder: Path, change: str) -> Path:
    config, tensors = sources["config"], dict(sources["tensors"])
    if change == "mis-shaped":
        tensors["model.query_abstractor.proj"] = tensors["model.query_abstractor.proj"][:, :-1]
    elif change == "missing":
        del tensors["model.layers.1.mlp.down_proj.weight"]
    elif change == "unknown":
        tensors["model.query_abstractor.ln_post.weight"] = torch.ones(VISION["hidden_size"])
    return save_original_checkpoint(folder, config, tensors, num_shards=1)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ("mis-shaped", "model.query_abstractor.proj"),
        ("missing", "model.language_model.layers.1.mlp.down_proj.weight"),
        ("unknown", "model.query_abstractor.ln_post.weight"),
    ],
)
def test_bad_tensors_fail_naming_the_tensor(sources, tmp_path, caplog, change, named):
    """Feature: validation before writing. A mis-shaped, a missing and an unknown tensor each make the conversion fail
    with a message naming that tensor, and nothing is written."""
    checkpoint = _variant(sources, tmp_path / "checkpoint", change)
    out = tmp_path / "out"
    with caplog.at_level(logging.ERROR):
        assert cli_main(convert_args(sources, checkpoint, out)) == 1
    assert change in caplog.text and named in caplog.text
    assert not out.exists() and not (tmp_path / "out.partial").exists()


def test_pickled_checkpoint_needs_allow_pickle(sources, tmp_path, caplog):
    """Feature: pickle safety and vision weights from the checkpoint. `.bin` shards are refused without
    `--allow-pickle`; with it they are read, vision-tower weights stored in the checkpoint are used (and reported
    when they differ from the CLIP folder's), and the default output dtype is bf16."""
    clip_vision = {name.removeprefix("vision_model."): tensor for name, tensor in
                   sources["clip_model"].state_dict().items() if name.startswith("vision_model.")}  # fmt: skip
    tensors = dict(sources["tensors"])
    for name, tensor in clip_vision.items():
        tensors["model.vision_tower.vision_tower.vision_model." + name] = tensor.detach().clone()
    changed = "model.vision_tower.vision_tower.vision_model.post_layernorm.weight"
    tensors[changed] = tensors[changed] + 0.5
    checkpoint = save_original_checkpoint(tmp_path / "checkpoint", sources["config"], tensors, pickled=True)
    out = tmp_path / "out"
    with caplog.at_level(logging.ERROR):
        assert cli_main(convert_args(sources, checkpoint, out)) == 1
    assert "--allow-pickle" in caplog.text and "pytorch_model-00001-of-00002.bin" in caplog.text
    assert not out.exists()

    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert cli_main(convert_args(sources, checkpoint, out, "--allow-pickle")) == 0
    assert "1 of the checkpoint's" in caplog.text and changed in caplog.text
    weights = load_file(out / "model.safetensors")  # the default dtype, bf16
    assert {tensor.dtype for tensor in weights.values()} == {torch.bfloat16}
    assert json.loads((out / "config.json").read_text())["dtype"] == "bfloat16"
    expected = tensors[changed].to(torch.bfloat16)
    torch.testing.assert_close(weights["model.vision_tower.post_layernorm.weight"], expected, rtol=0, atol=0)


def test_dry_run_prints_the_mapping_and_writes_nothing(sources, tmp_path, capsys):
    """Feature: `--dry-run`. Every check runs, the mapping table is printed (q/k/v split, transposed projector) and
    no file or folder is created."""
    out = tmp_path / "out"
    assert cli_main(convert_args(sources, sources["checkpoint"], out, "--dry-run")) == 0
    table = capsys.readouterr().out
    for line_part in ("model.query_abstractor.attn.in_proj_weight", "layers.0.attention.k_proj.weight",
                      "model.query_transformer.proj.weight", "transposed", "nothing was written"):  # fmt: skip
        assert line_part in table
    assert list(tmp_path.iterdir()) == []


def test_existing_output_folder_is_left_alone(sources, tmp_path, caplog):
    """Feature: losing nothing. A non-empty --out is refused and its content untouched."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with caplog.at_level(logging.ERROR):
        assert cli_main(convert_args(sources, sources["checkpoint"], out)) == 1
    assert "not empty" in caplog.text and [p.name for p in out.iterdir()] == ["keep.txt"]


def test_7b_target_config_is_the_preset_and_has_7_05b_parameters(record_property):
    """Feature: the `mqt-llava-7b` preset is the converter's target. The config built from the released checkpoint's
    settings (Vicuna-7B v1.5 + CLIP ViT-L/14-336, M = 256, 16 heads) gives the preset's exact state-dict shapes, and
    the model, instantiated without allocating weights, has about 7.05 B parameters."""
    original = {
        "model_type": "llava_llama", "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
        "num_attention_heads": 32, "num_key_value_heads": 32, "max_position_embeddings": 4096, "rms_norm_eps": 1e-5,
        "vocab_size": 32000, "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0, "hidden_act": "silu",
        "rope_theta": 10000.0, "mm_vision_select_layer": -2, "mm_vision_select_feature": "patch",
        "num_visual_tokens": "second_stage",
    }  # fmt: skip
    preset = preset_config("mqt-llava-7b")
    built = build_target_config(original, preset.vision_config, 256, 16, torch.bfloat16)
    with torch.device("meta"):
        preset_model = MqtLlavaForConditionalGeneration(preset)
        built_model = MqtLlavaForConditionalGeneration(built)
    shapes = {name: tuple(t.shape) for name, t in built_model.state_dict().items()}
    assert shapes == {name: tuple(t.shape) for name, t in preset_model.state_dict().items()}
    for field in ("num_queries", "query_num_heads", "query_key_source", "vision_feature_layer",
                  "vision_feature_select_strategy", "image_token_id"):  # fmt: skip
        assert getattr(built, field) == getattr(preset, field), field
    count = sum(parameter.numel() for parameter in preset_model.parameters())
    record_property("mqt_llava_7b_parameters", count)
    logging.getLogger(__name__).info("mqt-llava-7b parameters: %d", count)
    assert 7.0e9 < count < 7.1e9
