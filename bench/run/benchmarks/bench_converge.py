"""Time to accuracy, one test per case of the config's ``[converge]`` axes (every seed inside the case).

No pytest-benchmark rounds here: a case's samples are its seeds' seconds-to-target, timed by
:mod:`bench.measure.converge` with ``time.perf_counter``.
"""

from __future__ import annotations

from bench.measure.converge import run_converge_case


def bench_time_to_accuracy(converge_case, bench_config, inventory, mnist, record_case):
    record = run_converge_case(converge_case, bench_config, mnist, inventory)
    record_case(record)
