"""`python -m mqt_llava ...` runs the `mqt-llava` command (what `accelerate launch -m mqt_llava train ...` needs)."""

import sys

from mqt_llava.cli import main

sys.exit(main())
