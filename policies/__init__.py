"""The shipped policy bundle, installed as package data: the default `Settings.policies_dir`."""
