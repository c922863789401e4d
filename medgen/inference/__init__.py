"""Asking a vision-language model the benchmark's questions: a local checkpoint or an OpenAI-compatible endpoint."""
