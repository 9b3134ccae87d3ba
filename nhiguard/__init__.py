"""nhiguard: continuous authorization for non-human identities."""

# Load order matters: with regopy's native library loaded first, RocksDB (rocksdict, the worker's table
# store) aborts the process ("double free or corruption"; regopy 1.5.2, rocksdict 0.3). Loaded here, first,
# in every process that may use both; a missing rocksdict only matters to the worker, which needs it anyway.
try:
    import rocksdict  # noqa: F401
except ImportError:  # pragma: no cover
    pass
