"""Sector's benchmark suite: every figure beside a baseline measured in the same run.

Run ``python -m bench`` from the repository root (``--help`` for the knobs);
``python bench/transfer.py`` is the small 200 MB upload/download check.
"""
