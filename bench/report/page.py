"""Assemble the self-contained page from jinja2 templates: first each run's first screen (``r1-overview``: one
answer per question and the summary table, fitting 1366x768), then the warnings, then per run its sections,
then the page-wide sections (side by side, baseline comparison, source files).

The report presents, it does not analyse: every cross-case number comes from the run's ``derived`` block
(``RunData.derived``; bench.analyze computed it when the run was finalised, or when the file was loaded if it
had none or an older one). A section never computes a ratio, a best, a spread or a verdict itself.

The page is data in, templates out. Python prepares each section's data (numbers, sentences, tables as
:class:`~bench.report.tables.Table`, charts as SVG strings); ``templates/`` turns it into HTML with
autoescaping on, so text from result files can never become markup. CSS and JavaScript are inlined from
``templates/report.css`` and ``report.js``; charts are inline SVG; the Content-Security-Policy forbids
anything else, so the file stands alone.

Section ids are stable (``r1-findings``, ``r1-train``, ``r1-multiworker``, ``r1-native``, ``r1-nvml``, ``r1-cpu-predict``,
``r1-cases``, ``r1-environment``, ``side-by-side``, ``comparison``, ``sources``) so readers can link to them
and tests can count charts. A section without data says "Not measured in this run" and why, instead of
disappearing.

How to add a section (one template block plus one function that prepares its data):

1. Derive its numbers in ``bench/analyze`` (called from ``bench.analyze.run_tables.derive_tables``), store
   them as a ``Derived`` field (``bench/store/schema.py``, documented in docs/results.md), and bump
   ``DERIVED_VERSION``. Then write the function that prepares the section's data from ``run.derived`` (a new
   ``bench/report/<topic>.py`` for a new topic). A per-run section takes ``(run: RunData, rid: str)``; a
   page-wide one takes ``(page: PageData)`` (every run, the comparison). It returns a mapping, which the
   template sees as ``data``, or ``Missing("why")`` when the run cannot fill it. Return numbers, words,
   ``tables.Table`` (``tables.build(frame, columns, table_id)``) and ``Figure`` (SVG from a chart function
   in the style of ``bench.report.charts``), never HTML.
2. Write ``templates/sections/<topic>.html.j2``::

       {% extends "section.html.j2" %}
       {% block body %}
       <p>{{ data.sentence }}</p>
       {{ m.figure(data.figure) }}
       {{ m.data_table(data.table) }}
       {% endblock %}

   ``section.html.j2`` writes ``<section id="r1-<key>">`` and the heading, and renders the
   "Not measured in this run: <why>." line instead of ``body`` when the function returned ``Missing``
   (override the ``missing`` block to show ``data`` beside it). The macros in ``macros.html.j2`` are
   imported as ``m``: ``not_measured``, ``figure``, ``findings_list``, ``data_table``, ``kv_table``.
   ``section.prefix`` is the run's id ("r1") for naming tables and charts inside a run.
3. Add one line to :data:`RUN_SECTIONS` (per run, in page order) or :data:`PAGE_SECTIONS`:
   ``Section("<key>", "<topic>.html.j2", <function>, "<Heading>", "<TOC label>")``.

Then test it on the fixtures like the others (tests/test_report.py parses sections by id;
tests/test_report_browser.py loads the page in Chromium).
"""

from __future__ import annotations

from typing import Any

import jinja2

from bench import __version__
from bench.analyze import text as words
from bench.analyze.findings import NOT_MEASURED
from bench.report import (
    convergence,
    keras_versions,
    multiworker,
    overview,
    run_sections,
    side_by_side,
    tables,
    time_goes,
)
from bench.report.checks import ReportWarning, run_warnings
from bench.report.comparison import ComparisonView
from bench.report.load import RunData, is_true
from bench.report.section import Figure, Missing, PageData, Section, SectionView

# Only inline styles/scripts and data: URLs may load; anything else is blocked (and would show up as an
# error in the browser test), which keeps the report self-contained by construction.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"
)


# --------------------------------------------------------------------------- page-wide sections


def warnings_box(page: PageData) -> dict[str, Any]:
    items = []
    for index, (run, found) in enumerate(zip(page.runs, page.warnings, strict=True), start=1):
        items += [{"run": f"r{index}", "run_id": run.run_id if len(page.runs) > 1 else None, "warning": warning}
                  for warning in found]
    not_applicable = sum(int(run.cpu_predict["not_applicable"].map(is_true).sum()) for run in page.runs)
    return {"items": items, "not_applicable": not_applicable}


def comparison(page: PageData) -> dict[str, Any] | Missing:
    if page.comparison is None:
        return Missing("no comparison given (python -m bench report --baseline-comparison FILE)")
    view = page.comparison
    figure = None if view.chart_svg is None else Figure(
        "comparison-chart", view.chart_svg, "Change against the baseline per case (current / baseline − 1, ratio of "
        "trimmed geometric means of the rounds); the table lists what needs attention first.")
    return {"view": view, "figure": figure}


def sources(page: PageData) -> dict[str, Any]:
    return {"table": tables.sources_table(page.runs)}


# --------------------------------------------------------------------------- the registry (page order)

# The first screen of each run (its answers and the summary table), before anything else on the page.
FIRST_SECTION = Section("overview", "overview.html.j2", overview.prepare, "", None)
TOP_SECTIONS: tuple[Section, ...] = (
    Section("warnings", "warnings.html.j2", warnings_box, toc="Warnings"),
)
RUN_SECTIONS: tuple[Section, ...] = (
    Section("summary", "summary.html.j2", run_sections.summary, "How this run was made", "Run facts"),
    Section("findings", "findings.html.j2", run_sections.findings, "Findings in detail", "Findings"),
    Section("train", "train.html.j2", run_sections.train, "Training throughput", "Training"),
    Section("time-goes", "time_goes.html.j2", time_goes.report_section, "Where the time goes", "Where the time goes"),
    Section("keras-versions", "keras_versions.html.j2", keras_versions.report_section,
            "Keras versions side by side: host cost per step", "Keras versions"),
    Section("multiworker", "multiworker.html.j2", multiworker.prepare, "Multi-worker training and Keras 2",
            "Multi-worker"),
    Section("native", "native.html.j2", run_sections.native, "Framework overhead: Keras vs a native loop",
            "Keras vs native"),
    Section("converge", "converge.html.j2", convergence.report_section, "Time to accuracy (real MNIST)",
            "Time to accuracy"),
    Section("nvml", "nvml.html.j2", run_sections.nvml, "GPU utilisation and memory (NVML)", "NVML"),
    Section("cpu-predict", "cpu_predict.html.j2", run_sections.cpu_predict, "CPU prediction after GPU training",
            "CPU prediction"),
    Section("cases", "cases.html.j2", run_sections.cases, "Every case", "Cases"),
    Section("environment", "environment.html.j2", run_sections.environment, "Environment", "Environment"),
)
PAGE_SECTIONS: tuple[Section, ...] = (
    Section("side-by-side", "side_by_side.html.j2", side_by_side.prepare, "Side by side: the same cases in each run",
            "Side by side"),
    Section("comparison", "comparison.html.j2", comparison, "Baseline comparison", "Comparison"),
    Section("sources", "sources.html.j2", sources, "Source files", "Source files"),
)


# --------------------------------------------------------------------------- rendering


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("bench.report", "templates"),
        autoescape=True,  # every template: text from result files is always escaped
        undefined=jinja2.StrictUndefined,  # a typo in a template fails the build (and the tests), not the reader
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
    )
    # Finding values go into data-values attributes; numpy scalars and the like are written as text.
    env.policies["json.dumps_kwargs"] = {"sort_keys": True, "default": str}
    env.globals.update(NOT_MEASURED=NOT_MEASURED, version=__version__)
    env.filters["rate"] = words.rate  # samples/s in the page's one format
    return env


ENVIRONMENT = _environment()


def _view(section: Section, section_id: str, level: int, prepared: Any, prefix: str = "") -> SectionView:
    if isinstance(prepared, Missing):
        return SectionView(section_id, section.title, level, f"sections/{section.template}", prepared.data,
                           prepared.why, prefix)
    return SectionView(section_id, section.title, level, f"sections/{section.template}", prepared, None, prefix)


def _toc(top: list[SectionView], runs: list[dict[str, Any]], end: list[SectionView]) -> list[tuple[str, str]]:
    """Links to the sections that have something to show (a "not measured" section is left out of the list)."""
    labels = {s.key: s.toc for s in (*TOP_SECTIONS, *RUN_SECTIONS, *PAGE_SECTIONS) if s.toc}
    links = [(view.id, labels[view.id]) for view in top if view.id in labels]
    for index, run in enumerate(runs, start=1):
        prefix = f"Run {index}: " if len(runs) > 1 else ""
        links += [(view.id, prefix + labels[view.id.split("-", 1)[1]]) for view in run["sections"]
                  if view.missing is None and labels.get(view.id.split("-", 1)[1])]
    return links + [(view.id, labels[view.id]) for view in end if view.missing is None and view.id in labels]


def page_title(runs: list[RunData]) -> str:
    """What the page is, from the runs' categories: a simulated run never reads as a GPU benchmark."""
    titles = [(run.derived.get("overview") or {}).get("title") or "Benchmark" for run in runs]
    if len(runs) == 1:
        gpu = (runs[0].derived.get("category") or {}).get("devices") == "real GPU"
        return f"Keras {'GPU ' if gpu else ''}benchmark · {runs[0].config.get('name', runs[0].run_id)} · {titles[0]}"
    kinds = {(run.derived.get("category") or {}).get("devices") for run in runs}
    what = "GPU runs" if kinds == {"real GPU"} else "runs, not all on real GPUs" if "real GPU" in kinds else \
        "CPU runs (simulated devices: not GPU speed)"
    return f"Keras benchmark — {len(runs)} {what}"


def build_page(runs: list[RunData], generated_utc: str, comparison: ComparisonView | None = None) -> str:
    warnings: list[list[ReportWarning]] = [run_warnings(run) for run in runs]
    page = PageData(runs, comparison, warnings)
    first, run_views = [], []
    for index, run in enumerate(runs, start=1):
        rid = f"r{index}"
        first.append({"rid": rid, "run_id": run.run_id, "view": _view(
            FIRST_SECTION, f"{rid}-overview", 2, overview.prepare(run, rid, comparison), rid)})
        run_views.append({"rid": rid, "run_id": run.run_id, "sections": [
            _view(s, f"{rid}-{s.key}", 3, s.prepare(run, rid), rid) for s in RUN_SECTIONS]})
    top = [_view(s, s.key, 2, s.prepare(page)) for s in TOP_SECTIONS]
    end = [_view(s, s.key, 2, s.prepare(page)) for s in PAGE_SECTIONS]
    return ENVIRONMENT.get_template("page.html.j2").render(
        title=page_title(runs), generated_utc=generated_utc, run_count=len(runs), csp=CONTENT_SECURITY_POLICY,
        toc=_toc(top, run_views, end), first=first, runs=run_views, top=top, end=end,
    )
