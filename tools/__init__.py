"""Tooling around the model that is never shipped as remote code: assembling from parts, converting the released
checkpoint, and tiny models for tests and examples. These modules may import any project package."""
