"""Developer tooling, importable from a checkout only (never installed, never imported by nhiguard).

scenarios/ (the demo and test stream generator), broker.py (a throwaway local Kafka), demo.py (`make demo`).
"""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]  # the checkout: tests and bench find its files from here
