"""Choosing and measuring `num_visual_tokens="auto"`: answers with confidences at fixed budgets, the escalation
simulated over thresholds (`mqt-llava calibrate`), and its cost in FLOPs against every fixed budget."""
