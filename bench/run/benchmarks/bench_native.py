"""Native reference per backend, one pytest-benchmark test per case of ``bench.measure.native.native_cases``."""

from __future__ import annotations

from bench.measure.native import run_native_case


def bench_native_reference(native_case, benchmark, bench_config, inventory, mnist, record_case):
    record = run_native_case(native_case, bench_config, mnist, inventory, benchmark)
    record_case(record)
