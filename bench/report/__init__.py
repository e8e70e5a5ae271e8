"""Presenting result files: the self-contained HTML report and the terminal summary. Reads result files
only; never imports a framework or the measuring code."""
