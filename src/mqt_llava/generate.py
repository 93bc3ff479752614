"""`mqt-llava generate`: answer one question about one image, streaming the answer to stdout.

With `--num-visual-tokens auto` the model picks the budget (the answer is printed once it is chosen, then the budget
that answered it).
"""

from __future__ import annotations

import argparse
import sys

import torch
from transformers import AutoModelForImageTextToText, AutoProcessor, TextStreamer


def _budget(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected an integer or "auto", got {text!r}') from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="model folder or Hub id (loaded with trust_remote_code)")
    parser.add_argument("--image", required=True, help="image file")
    parser.add_argument("--prompt", required=True, help="the question")
    parser.add_argument("--num-visual-tokens", type=_budget, default=None, help='visual tokens per image (1..M), or "auto"')
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--dtype", choices=["auto", "float32", "bfloat16", "float16"], default="auto")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")


def run(args: argparse.Namespace) -> int:
    processor = AutoProcessor.from_pretrained(args.model, trust_remote_code=True)
    model = AutoModelForImageTextToText.from_pretrained(args.model, trust_remote_code=True, dtype=args.dtype)
    model = model.to(args.device).eval()
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": args.prompt}]}]
    fixed = args.num_visual_tokens if isinstance(args.num_visual_tokens, int) else None
    inputs = processor.apply_chat_template(
        messages,
        add_generation_prompt=True,
        tokenize=True,
        return_dict=True,
        return_tensors="pt",
        processor_kwargs={"images": [args.image], "num_visual_tokens": fixed},
    ).to(args.device)
    if args.num_visual_tokens == "auto":
        output = model.generate(
            **inputs, num_visual_tokens="auto", max_new_tokens=args.max_new_tokens, do_sample=False, return_dict_in_generate=True
        )
        answer = processor.decode(output.sequences[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
        sys.stdout.write(f"{answer}\n")
        sys.stdout.write(f"(answered with {int(output.num_visual_tokens[0])} visual tokens, confidence {float(output.confidence[0]):.3f})\n")
        return 0
    streamer = TextStreamer(processor.tokenizer, skip_prompt=True, skip_special_tokens=True)
    model.generate(**inputs, max_new_tokens=args.max_new_tokens, do_sample=False, streamer=streamer)
    sys.stdout.flush()
    return 0
