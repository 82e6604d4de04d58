"""Mashpipe benchmarks: each one measured against a hand-written baseline in the same run.

Run ``python -m bench`` (full sizes, about two minutes) or ``python -m bench --quick`` (small sizes,
a few seconds). See ``bench/README.md`` for what each benchmark measures and its target.
"""
