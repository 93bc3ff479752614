"""The stages of `mqt-llava demo`: vision pre-training, model setup, TRL training stages, the m sweep, reports."""
