"""Matryoshka SFT of MQT-LLaVA with TRL: LLaVA-format data, per-batch token budgets, recipes, LoRA/QLoRA, merge.

Modules: `data` (LLaVA JSON/JSONL reader), `sampling` (distributions of m), `collator` (one m per batch, assistant-only
labels), `arguments` (recipe parsing), `sft` (the trainer and `train`), `merge` (adapter merge), `cli`
(`mqt-llava train`). Recipes live in `recipes/`, accelerate launch configs in `launch/`.
"""
