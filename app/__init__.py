"""`mqt-llava app`: a Gradio web demo of one model answering at any token budget m.

Gradio is an optional extra (`pip install "mqt-llava[app]"`) and only `ui` imports it. The other modules hold the
logic and import no web framework: `session` (model loading and streamed answers), `inputs` (checking what a person
typed or uploaded), `examples` (generated Shapes-VQA scenes), `cost` (forward FLOPs of a prompt), `overlay` (where the
visual tokens look, drawn over the image) and `compare` (answers at one or several budgets, ready for the page).
`cli` is the subcommand; `spaces/app.py` in the repository starts the same page as a Hugging Face Space.
"""
