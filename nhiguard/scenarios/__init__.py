"""Scenario streams in the sources' own formats: a week of ordinary activity and the March-2026 incidents.

Pure Python (stdlib + pyyaml): no Kafka client, no Faust. See docs/sources.md for the formats.
"""

from nhiguard.scenarios.generate import TOPICS, generate
from nhiguard.scenarios.inventory import identities_yaml, inventory, packaged_inventory_path, write_inventory
from nhiguard.scenarios.params import ScenarioParams, default_params, variant_params
from nhiguard.scenarios.records import LABELS, SourceRecord, read_ndjson, write_ndjson

__all__ = [
    "LABELS",
    "TOPICS",
    "ScenarioParams",
    "SourceRecord",
    "default_params",
    "generate",
    "identities_yaml",
    "inventory",
    "packaged_inventory_path",
    "read_ndjson",
    "variant_params",
    "write_inventory",
    "write_ndjson",
]
