"""Automatic checks of each candidate against its original: where the product went and what changed."""
