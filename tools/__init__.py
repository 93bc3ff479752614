"""Building model folders and test material; nothing here ships as remote code.

- `presets`: named model configurations (the paper's 7B, the demo's tiny model, the tests' tiny model).
- `assemble`: a stage-1 starting model from a pretrained vision tower and a pretrained language model.
- `create`: the `mqt-llava create` subcommand (an assembled model, or a tiny random one).
- `testing`: tiny random models and synthetic images for tests and quick local runs.
- `toy_data`: a small LLaVA-format dataset with synthetic images, for tests and smoke runs.
"""
