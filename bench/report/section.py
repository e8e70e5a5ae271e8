"""The types a report section is made of: what a prepare function returns and what a template receives.

See :mod:`bench.report.page` for how sections are registered and how to add one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bench.report.comparison import ComparisonView
from bench.report.load import RunData


@dataclass(frozen=True)
class Missing:
    """A section without data: the page says "Not measured in this run: <why>." instead of dropping it.
    ``data`` is whatever the section can still show next to that line (the template's ``missing`` block)."""

    why: str
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Figure:
    """One chart: an inline SVG (or None, then ``missing`` says why) and its caption."""

    chart_id: str
    svg: str | None
    caption: str
    missing: str = ""


@dataclass(frozen=True)
class PageData:
    """What a page-level section's prepare function gets: every run on the page, and the comparison."""

    runs: list[RunData]
    comparison: ComparisonView | None
    warnings: list[list[Any]]


RunPrepare = Callable[[RunData, str], "Mapping[str, Any] | Missing"]
PagePrepare = Callable[[PageData], "Mapping[str, Any] | Missing"]


@dataclass(frozen=True)
class Section:
    """A registered section. ``key``: its id (``r1-<key>`` inside run 1, ``<key>`` at page level);
    ``template``: under ``templates/sections/``; ``prepare``: the one function that computes its data;
    ``title``: the heading (empty: none); ``toc``: the table-of-contents label (None: not listed)."""

    key: str
    template: str
    prepare: Callable[..., Any]
    title: str = ""
    toc: str | None = None


@dataclass(frozen=True)
class SectionView:
    """A section ready to render: what every section template sees as ``section`` (and ``data``)."""

    id: str
    title: str
    level: int
    template: str
    data: Mapping[str, Any]
    missing: str | None = None
    prefix: str = ""  # the run's id ("r1") for run sections, so templates can name their tables and charts
