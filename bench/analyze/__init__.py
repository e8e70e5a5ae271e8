"""Numbers from result files only: statistics, regression checks, run comparison, cross-case derivations.
Never imports a framework or the measuring code."""
