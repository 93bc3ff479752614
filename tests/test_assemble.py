"""`mqt-llava create --vision-tower --language-model`: the stage-1 starting folder from pretrained parts."""

from __future__ import annotations

import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import (
    AutoModelForImageTextToText,
    CLIPVisionConfig,
    CLIPVisionModel,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
)

from mqt_llava.cli import main
from mqt_llava.tools.testing import TINY_CORPUS


def tokenizer_without_image_token() -> PreTrainedTokenizerFast:
    words = sorted({word for line in TINY_CORPUS for word in line.split()})
    vocab = {token: i for i, token in enumerate(["<unk>", "<s>", "</s>", *words])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", bos_token="<s>", eos_token="</s>")


def test_assembled_folder_keeps_pretrained_weights(tmp_path):
    """Protects stage-1 initialisation: the vision tower and the language model keep their pretrained weights, the
    tokenizer gains <image> with one mean-initialised embedding row, and the folder loads as remote code."""
    tokenizer = tokenizer_without_image_token()
    vocab = len(tokenizer)
    torch.manual_seed(1)
    vision = CLIPVisionModel(CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                              num_attention_heads=4, image_size=32, patch_size=8))
    language = LlamaForCausalLM(LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                            num_attention_heads=4, num_key_value_heads=2, vocab_size=vocab))
    vision.save_pretrained(tmp_path / "vision")
    language.save_pretrained(tmp_path / "language")
    tokenizer.save_pretrained(tmp_path / "language")
    main(["create", "--vision-tower", str(tmp_path / "vision"), "--language-model", str(tmp_path / "language"),
          "--num-queries", "16", "--query-num-heads", "4", "--out", str(tmp_path / "init")])
    model = AutoModelForImageTextToText.from_pretrained(tmp_path / "init", trust_remote_code=True)
    assert model.config.image_token_id == vocab  # <image> appended as a new special token
    embeddings = model.get_input_embeddings().weight
    torch.testing.assert_close(embeddings[vocab], language.get_input_embeddings().weight.mean(dim=0))
    for name, tensor in vision.state_dict().items():
        torch.testing.assert_close(model.model.vision_tower.state_dict()[name], tensor)
    ids = torch.tensor([[1, 7, 9, 12]])
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=ids).logits[..., :vocab], language(input_ids=ids).logits)
