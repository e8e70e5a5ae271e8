"""CPU prediction after training on the (stand-in) GPU, one pytest-benchmark test per cpu_predict case.

A method that fails, predicts wrongly or runs off the CPU is recorded with that status; the test itself
passes, because the outcome is the measurement (keras-team/keras#20308). A method that does not exist on
the backend (``strategy`` off TensorFlow) is recorded as skipped and shown as a pytest skip with its reason.
"""

from __future__ import annotations

from bench.measure.cpu_predict import run_cpu_predict_case


def bench_cpu_predict(cpu_predict_case, benchmark, bench_config, cpu_setup, mnist, record_case):
    record = run_cpu_predict_case(cpu_predict_case, bench_config, mnist, cpu_setup, benchmark)
    record_case(record)
