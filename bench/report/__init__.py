"""Presenting result files: the self-contained HTML report and the terminal summary. Reads result files
only; never imports a framework or the measuring code (tests/test_architecture.py checks the import graph).

In data-flow order: ``load`` (result files -> per-suite DataFrames), ``checks`` (warnings), ``findings``,
``overhead``, ``noise`` (numbers and sentences), ``charts`` (SVG), ``tables`` (tables as data), then one
prepare function per section (``run_sections``, ``side_by_side``, ``comparison``), ``page`` (the section
registry and the jinja2 templates in ``templates/``; its docstring says how to add a section) and
``build`` (one HTML file out).
"""
