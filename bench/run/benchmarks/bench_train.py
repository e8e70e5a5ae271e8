"""Training throughput, one pytest-benchmark test per case of the config's ``[train]`` axes."""

from __future__ import annotations

from bench.measure.train import run_train_case


def bench_train_throughput(train_case, benchmark, bench_config, inventory, mnist, record_case, units_for):
    record = run_train_case(train_case, bench_config, mnist, inventory, benchmark, units=units_for(train_case.case_id))
    record_case(record)
