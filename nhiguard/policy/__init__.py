"""Policies: the bundle (`bundle.py`), its case files (`cases.py`) and the engines that evaluate it."""
