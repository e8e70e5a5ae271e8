"""pytest-benchmark modules, parameterised from the sweep config by :mod:`bench.benchmarks.plugin`.

They are run by worker processes (``python -m bench.worker``), never by the project's test suite.
"""
