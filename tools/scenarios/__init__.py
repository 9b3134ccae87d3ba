"""Scenario streams in the sources' own formats: a week of ordinary activity and the March-2026 incidents.

Pure Python (stdlib + pyyaml): no Kafka client, no Faust. See docs/sources.md for the formats.
"""

from tools.scenarios.generate import TOPICS, generate
from tools.scenarios.inventory import default_inventory_path, identities_yaml, inventory, write_inventory
from tools.scenarios.params import ScenarioParams, default_params, variant_params
from tools.scenarios.records import LABELS, SourceRecord, read_ndjson, write_ndjson

__all__ = [
    "LABELS",
    "TOPICS",
    "ScenarioParams",
    "SourceRecord",
    "default_inventory_path",
    "default_params",
    "generate",
    "identities_yaml",
    "inventory",
    "read_ndjson",
    "variant_params",
    "write_inventory",
    "write_ndjson",
]
