"""pytest-benchmark modules, parameterised from the sweep config by :mod:`bench.run.benchmarks.plugin`.

They are run by worker processes (``python -m bench.run.worker``), never by the project's test suite.
"""
