"""Benchmarks: run with ``task bench`` (``python -m bench``); they print figures, never assert."""
