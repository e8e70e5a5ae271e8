"""The comparison document (``python -m bench compare --json``): its model, its kind and version, its loader.

Built by ``bench.analyze.compare.compare_runs``, written by ``bench.commands.compare``, read by the HTML
report; prose in ``docs/results.md`` ("Comparison document"), JSON Schema in ``docs/schema/``. Checked
against :class:`ComparisonDocument` when written and when read, with the run schema's rules
(:mod:`bench.store.schema`: strict types, unknown fields kept on read) except one: writing does not
refuse undeclared fields. A comparison is a view computed from two run documents and can be rebuilt from
them at any time, so its shape may grow with the compare code; a run's measurements cannot be remade.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError

from bench.errors import ResultsError
from bench.store.schema import Model, Tool, Utc, validation_message

COMPARISON_KIND = "keras-gpu-bench/comparison"
COMPARISON_SCHEMA_VERSION = 1
Verdict = Literal["regression", "improvement", "no change", "new", "missing", "failed"]


class ComparisonMethod(Model):
    """How the rows were judged."""

    name: str | None = Field(None, description="rounds, runs, history, changepoint or interleaved.")
    effect: str = Field(description="What the ratio is, in words.")
    test: str = Field(description="The significance test, in words.")
    trim: float = Field(description="Share trimmed from each end of the samples (0 where the values are process "
                                    "or run values).")
    alpha: float = Field(description="False-alarm budget of the whole comparison (one-sided), split over the cases "
                                     "with Holm's step-down (changepoint: per horizon runs; interleaved: also split "
                                     "equally over the looks).")
    case_alpha: float | None = Field(None, description="The most one case may take of alpha.")
    normalize: str | None = Field(None, description="auto, control or none (--normalize).")
    thresholds: dict[str, float] = Field(description="Smallest change that can count, per metric (a fraction).")
    rule: str = Field(description="The regression rule, in words.")
    looks: list[int] | None = Field(None, description="interleaved: the pair counts after which the session decided "
                                                      "which cases still needed more pairs.")
    pairs: int | None = Field(None, description="interleaved: pairs measured, all cases together.")
    minutes: float | None = Field(None, description="interleaved: wall minutes of all the session's processes.")
    reference_runs: int | None = Field(None, description="changepoint: runs that set each case's level and spread.")
    horizon: int | None = Field(None, description="changepoint: monitored runs the false-alarm budget covers.")


class RunReference(Model):
    """One side of the comparison."""

    run_id: str | None = Field(description="The run's id.")
    path: str | None = Field(description="The file it was read from.")
    baseline_name: str | None = Field(description="Name under results/baselines/ (null unless given by name).")
    created_utc: str | None = Field(description="When that run started.")
    complete: bool | None = Field(description="The run's complete flag.")
    config_name: str | None = Field(description="Its config's name.")


class FieldDifference(Model):
    """A fingerprint or environment field that differs."""

    field: str = Field(description="Field name.")
    baseline: Any = Field(description="Value in the baseline.")
    current: Any = Field(description="Value in the current run.")


class ComparisonEnvironment(Model):
    """The two fingerprints and what differs between them."""

    baseline: dict[str, Any] = Field(description="Baseline fingerprint (bench.analyze.compare.fingerprint).")
    current: dict[str, Any] = Field(description="Current fingerprint.")
    differs: list[FieldDifference] = Field(description="Fingerprint fields that differ.")
    allowed: list[str] = Field(description="Of them, accepted with --allow-diff.")
    forced: bool = Field(description="True when --force was needed.")
    info: list[FieldDifference] = Field(description="Driver, CUDA, Python, host, commit, config differences.")


class ComparisonSummary(Model):
    """The outcome."""

    counts: dict[str, int] = Field(description="Rows per verdict, every verdict listed.")
    fails_build: bool = Field(description="True when any row fails the build.")
    exit_code: int = Field(description="0, or 1 on a regression.")
    judged: int | None = Field(None, description="Measured rows the method could judge.")
    not_judged: int | None = Field(None, description="Measured rows it could not (no spread: e.g. one process per "
                                                     "run with two files); never a regression.")
    blind: int | None = Field(None, description="Quiet rows (no change) whose threshold is below what they can see "
                                                "(detect.blind_below): labelled 'blind below X %'.")


class ComparisonSide(Model):
    """A case on one side of a row."""

    status: str = Field(description="The case's status.")
    reason: str | None = Field(description="Its reason.")
    flags: list[str] = Field(description="Names of its true flags.")
    n: int | None = Field(None, description="Samples (when ok).")
    median: float | None = Field(None, description="Median of the samples.")
    q1: float | None = Field(None, description="First quartile.")
    q3: float | None = Field(None, description="Third quartile.")
    iqr: float | None = Field(None, description="q3 - q1.")
    cv: float | None = Field(None, description="Coefficient of variation.")
    samples: list[float] | None = Field(None, description="The samples shown: per round (rounds), per process (runs), "
                                                          "per run (history, changepoint), per pair (interleaved).")
    processes: int | None = Field(None, description="Processes that measured the case on this side (runs, history).")
    runs: int | None = Field(None, description="Runs (history, changepoint) or pairs (interleaved) behind this side.")


class SecondaryMetric(Model):
    """A single-value metric shown next to the row, never tested."""

    unit: str = Field(description="Unit.")
    baseline: float | None = Field(description="Baseline value.")
    current: float | None = Field(description="Current value.")
    ratio: float | None = Field(description="current / baseline.")


class Detection(Model):
    """What a row can see at its spread (bench.analyze.judge, bench.analyze.cusum)."""

    judged: bool = Field(description="False when the method could not judge the case (no spread to judge it by).")
    spread: float | None = Field(None, description="Standard deviation of the log values the method judges.")
    spread_of: str | None = Field(None, description="What that spread is between: rounds, processes, runs or pairs.")
    evidence: str | None = Field(None, description="What the estimate rests on, e.g. '10 history runs'.")
    level: float | None = Field(None, description="The one-sided level this case got from Holm's split.")
    quoted_level: float | None = Field(None, description="The strictest case's level (budget / cases): what mde, "
                                                         "after_runs and ab_pairs_10pct are quoted at.")
    se_log: float | None = Field(None, description="Standard error of the log change.")
    df: float | None = Field(None, description="Degrees of freedom of the t reference (null: normal).")
    bound: float | None = Field(None, description="The change at which this row starts failing (the 50 % detection "
                                                  "point), as a fraction in the bad direction (-0.12: 12 % slower).")
    mde: float | None = Field(None, description="The change caught with 90 % probability by this comparison "
                                                "(history: one run), as a fraction in the bad direction.")
    blind_below: float | None = Field(None, description="abs(mde) when it exceeds the threshold: the row is labelled "
                                                        "'blind below' this.")
    after_runs: dict[str, float | None] | None = Field(None, description="history, changepoint: the slowdown the "
        "change-point mode catches with 90 % probability within m runs, m = 4, 8, 16 (null: out of reach).")
    ab_pairs_10pct: int | None = Field(None, description="Interleaved pairs a paired t-test needs to catch a 10 % "
                                                         "slowdown with 90 % probability at this spread.")
    runs: int | None = Field(None, description="Runs behind the spread (history, changepoint).")
    pairs: int | None = Field(None, description="interleaved: pairs this case used.")
    minutes: float | None = Field(None, description="interleaved: wall minutes of this case's processes.")


class Normalization(Model):
    """Whether the row was judged relative to the control workload, and why (bench.analyze.normalize)."""

    used: bool = Field(description="True: values were divided by the control timed next to the case.")
    mode: str = Field(description="--normalize: auto, control or none.")
    chosen: bool = Field(False, description="auto picked between raw and divided by their spreads; the row's level is "
                                            "halved for that choice (Bonferroni over the two candidates).")
    sd_raw: float | None = Field(None, description="Spread of the log values the decision looked at, raw.")
    sd_control: float | None = Field(None, description="The same divided by the control.")
    p: float | None = Field(None, description="Pitman-Morgan one-sided p-value for 'dividing lowers the spread'.")
    why: str = Field(description="The decision in words.")


class ComparisonRow(Model):
    """One case of the comparison."""

    case_id: str = Field(description="The case (matched by case_id, else by suite + params).")
    suite: str = Field(description="Its suite.")
    params: dict[str, Any] | None = Field(description="Its params.")
    metric: str | None = Field(description="The metric tested (null for a suite with none).")
    unit: str | None = Field(description="Its unit.")
    bigger_is_better: bool | None = Field(description="Direction of the metric.")
    threshold: float | None = Field(description="Threshold the row was judged with.")
    alpha: float = Field(description="Significance level the row was judged with.")
    baseline: ComparisonSide | None = Field(description="The baseline case (null when absent).")
    current: ComparisonSide | None = Field(description="The current case (null when absent).")
    ratio: float | None = Field(description="Ratio of trimmed geometric means, current / baseline.")
    median_ratio: float | None = Field(description="current median / baseline median.")
    p_worse: float | None = Field(description="One-sided p-value for 'worse'.")
    p_better: float | None = Field(description="One-sided p-value for 'better'.")
    verdict: Verdict = Field(description="The verdict.")
    fails_build: bool = Field(description="True when this row fails the build.")
    reason: str | None = Field(description="One line behind the verdict.")
    notes: list[str] = Field(description="Extra lines.")
    secondary: dict[str, SecondaryMetric] = Field(description="Single-value metrics shown, never tested.")
    raw_ratio: float | None = Field(None, description="The ratio before dividing by the control.")
    normalization: Normalization | None = Field(None, description="The control normalisation chosen for this row.")
    detect: Detection | None = Field(None, description="What this row can see (null for rows decided by status).")
    changepoint: dict[str, Any] | None = Field(None, description="changepoint: reference_runs, monitored_runs, and "
        "for 'worse' and 'better' the CUSUM statistic per monitored run, its peak, threshold, allowance, p, the alarm "
        "and start runs ({index, position, run_id, created_utc}) and the shift since the start.")


class ComparisonDocument(Model):
    """``python -m bench compare BASELINE [CURRENT] --json PATH``."""

    kind: Literal["keras-gpu-bench/comparison"] = Field(description="Always keras-gpu-bench/comparison.")
    schema_version: Literal[1] = Field(description="This schema's version.")
    created_utc: Utc = Field(description="When the comparison was made.")
    tool: Tool = Field(description="The program that wrote it.")
    method: ComparisonMethod = Field(description="How the rows were judged.")
    baseline: RunReference = Field(description="The baseline run.")
    current: RunReference = Field(description="The current run.")
    environment: ComparisonEnvironment = Field(description="Fingerprints and their differences.")
    summary: ComparisonSummary = Field(description="Counts and the exit code.")
    rows: list[ComparisonRow] = Field(description="One per case, current-run order, then baseline-only cases.")
    suite: dict[str, Any] | None = Field(None, description="changepoint: the suite series (the geometric mean of every "
                                                           "case's relative speed), with a row's verdict fields.")


def check_comparison(document: Any, where: str) -> ComparisonDocument:
    """Validate comparison data (kind, version, every declared field's type); one line otherwise."""
    if not isinstance(document, dict) or document.get("kind") != COMPARISON_KIND:
        raise ResultsError(f"{where}: not a comparison document (no kind = {COMPARISON_KIND!r}); "
                           "pass the file written by `python -m bench compare --json`")
    if document.get("schema_version") != COMPARISON_SCHEMA_VERSION:
        raise ResultsError(f"{where}: comparison schema_version {document.get('schema_version')!r} is not supported "
                           f"(this tool reads {COMPARISON_SCHEMA_VERSION}); rerun python -m bench compare")
    try:
        return ComparisonDocument.model_validate(document)
    except ValidationError as exc:
        raise ResultsError(f"{where}: {validation_message(exc)}; rerun python -m bench compare") from None


def load_comparison(path: str | Path) -> dict[str, Any]:
    """The one loader of comparison documents: checked, as plain JSON data."""
    path = Path(path)
    if not path.is_file():
        raise ResultsError(f"comparison file not found: {path} (write one with "
                           "`python -m bench compare ... --json FILE`)")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResultsError(f"{path}: not a readable JSON comparison ({exc})") from None
    return check_comparison(document, str(path)).to_dict()
