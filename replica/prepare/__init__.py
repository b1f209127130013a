"""Cleaning, PII masking, language filtering and dataset building (`replica prepare`)."""
