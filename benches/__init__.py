"""replaywire's benchmarks: end-to-end load scripts (``ingest_load.py``,
``fanout.py``, ``storage_compare.py``, ...) and the suite that runs them
against chosen backends and writes a results folder (``python -m benches``,
see :mod:`benches.suite`)."""
