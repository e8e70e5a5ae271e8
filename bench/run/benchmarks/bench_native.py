"""Native reference per backend, one pytest-benchmark test per case of ``bench.measure.native.native_cases``."""

from __future__ import annotations

from bench.measure.native import run_native_case


def bench_native_reference(native_case, benchmark, bench_config, inventory, mnist, record_case, units_for):
    record = run_native_case(native_case, bench_config, mnist, inventory, benchmark, units=units_for(native_case.case_id))
    record_case(record)
