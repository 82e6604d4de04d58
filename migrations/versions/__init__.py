"""Migration scripts, named ``YYYYMMDD_slug_rev.py``."""
