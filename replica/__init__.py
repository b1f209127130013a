"""Replica: clone how one person texts with QLoRA."""

__version__ = "0.1.0"
