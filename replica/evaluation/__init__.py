"""Evaluation: text metrics comparing a baseline and a fine-tuned model against the user's real held-out replies.

Each metric module keeps its heavy imports (torch, sentence-transformers, bert-score, scikit-learn, nltk,
matplotlib) inside the functions that need them, so importing this package is cheap.
"""
