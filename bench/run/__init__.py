"""Running a sweep: the parent's plan and watchdog (sweep), one worker process per device layout (worker),
and the pytest-benchmark modules the worker runs (benchmarks/)."""
