"""Inference shared by `replica chat`, `replica serve`, evaluate.py and the stop-sequence callback.

Layering (imports only point down): run_dir (run-folder layout) and training's formatting/tokens/base_model
sit below this package; evaluation, commands, callbacks and the server sit above it.
"""
