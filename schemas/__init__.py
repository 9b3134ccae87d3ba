"""The Avro schemas, installed as package data: the default `Settings.schemas_dir`."""
