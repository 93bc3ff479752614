"""Reloads a demo adapter the ways a user would, in a fresh interpreter, and answers questions with it.

Run as a script (`python reload_check.py SPEC.json RESULT.json`); it imports only transformers, peft and PIL, never
this package, so the folders' own remote code is what runs. SPEC.json holds:
    {"base": model folder, "adapter": PEFT folder, "merged": merged folder,
     "quantization": null or a `BitsAndBytesConfig.to_dict()` (the base is then loaded as QLoRA trained it),
     "images": [path, ...], "questions": [text, ...] (one per image), "m_values": [m, ...], "batch_size": int}
RESULT.json gets {"peft": {"m": [reply, ...]}, "merged": {"m": [reply, ...]}, "classes": {...}}: the raw replies
of (1) `PeftModel.from_pretrained` on the base loaded with `trust_remote_code=True` and (2) the merged folder loaded
by `pipeline("image-text-to-text")`, both answering through the pipeline with greedy decoding.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _replies(pipe, images: list, questions: list[str], m: int, batch_size: int) -> list[str]:
    replies = []
    for start in range(0, len(images), batch_size):
        messages = [
            [{"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": question}]}]
            for image, question in zip(images[start : start + batch_size], questions[start : start + batch_size])
        ]
        outputs = pipe(
            text=messages,
            batch_size=len(messages),
            return_full_text=False,
            generate_kwargs={"num_visual_tokens": m, "max_new_tokens": 3, "do_sample": False},
        )
        replies += [output[0]["generated_text"] for output in outputs]
    return replies


def main(spec_path: str, result_path: str) -> None:
    import torch
    from peft import PeftModel
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor, BitsAndBytesConfig, pipeline

    spec = json.loads(Path(spec_path).read_text())
    images = [Image.open(path).convert("RGB") for path in spec["images"]]
    quantization = spec["quantization"]
    base = AutoModelForImageTextToText.from_pretrained(
        spec["base"],
        trust_remote_code=True,
        dtype=torch.float32,
        quantization_config=BitsAndBytesConfig.from_dict(quantization) if quantization else None,
    )
    model = PeftModel.from_pretrained(base, spec["adapter"]).eval()
    processor = AutoProcessor.from_pretrained(spec["adapter"], trust_remote_code=True)
    adapted = pipeline("image-text-to-text", model=model, processor=processor)
    merged = pipeline("image-text-to-text", model=spec["merged"], trust_remote_code=True, dtype=torch.float32)
    result = {"peft": {}, "merged": {}, "classes": {"peft": type(model).__name__, "merged": type(merged.model).__module__}}
    for name, pipe in (("peft", adapted), ("merged", merged)):
        pipe.tokenizer.padding_side = "left"
        for m in spec["m_values"]:
            result[name][str(m)] = _replies(pipe, images, spec["questions"], m, spec["batch_size"])
    Path(result_path).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: python reload_check.py SPEC.json RESULT.json")
    main(sys.argv[1], sys.argv[2])
