"""Evaluation: exact match per dimension, DPA, baselines and the report."""
