"""What a device run left in $OUT, checked as the device tool would bring it back (`nox -s device_rehearsal`).

    python scripts/device_rehearsal_check.py [--converge] OUT_DIR CONSOLE_LOG

Fails (exit 1, one line per problem) unless: at most 8 files come back, none over 16 MiB, each named in letters,
digits, '.', '_' and '-' and at most 2 folders down; one complete results file that ``bench.store.results.load_run``
reads, in which no case failed or was skipped; and the console's last section is the verdict
(scripts/gpu_summary.py) with a line for at least one batch — or, with ``--converge``, the case table of
scripts/device_converge.sh.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

MAX_FILES, MAX_BYTES, MAX_DEPTH = 8, 16 * 1024 * 1024, 3  # the device tool's limits on $OUT
NAME = re.compile(r"^[A-Za-z0-9._-]+$")
VERDICT_HEADER = "=== verdict"
# What scripts/gpu_summary.py prints: nothing else may follow the verdict's header.
VERDICT_LINE = re.compile(r"^(run \S+: data |\w+ batch +\d+ |bottleneck: |profile: )")


def check_out(out: Path) -> tuple[list[str], list[Path]]:
    problems = []
    files = sorted(p for p in out.rglob("*") if p.is_file())
    if len(files) > MAX_FILES:
        problems.append(f"{len(files)} files in $OUT, but the device tool brings back {MAX_FILES}: "
                        f"{', '.join(p.name for p in files)}")
    for path in files:
        relative = path.relative_to(out)
        if path.stat().st_size > MAX_BYTES:
            problems.append(f"{relative} is {path.stat().st_size / 2**20:.1f} MiB, over the 16 MiB that comes back")
        if len(relative.parts) > MAX_DEPTH or not all(NAME.match(part) for part in relative.parts):
            problems.append(f"{relative}: a name or depth the device tool does not bring back")
    return problems, files


def check_results(files: list[Path]) -> list[str]:
    from bench.store.results import load_run

    runs = [p for p in files if p.suffix == ".json" and p.name != "profile.json"]
    if len(runs) != 1:
        return [f"expected one results file in $OUT, found {[p.name for p in runs]}"]
    document = load_run(runs[0])
    statuses = [case["status"] for case in document["cases"]]
    print(f"results: {runs[0].name}, complete {document.get('complete')}, {len(statuses)} cases: "
          + ", ".join(f"{statuses.count(s)} {s}" for s in sorted(set(statuses))))
    problems = []
    if document.get("complete") is False:
        problems.append(f"{runs[0].name} is incomplete (the sweep ran past its budget)")
    bad = [c for c in document["cases"] if c["status"] not in ("ok", "not_converged")]
    if bad or not statuses:
        problems.append(f"{runs[0].name}: every case must run on the CPU too: " + ("; ".join(
            f"{c['case_id']}: {c['status']} {c.get('reason') or ''}".strip() for c in bad[:3]) or "no case"))
    return problems


def check_verdict(console: str) -> list[str]:
    lines = [line.rstrip() for line in console.splitlines()]
    headers = [i for i, line in enumerate(lines) if line.startswith(VERDICT_HEADER)]
    if not headers:
        return ["the console has no verdict (=== verdict ...): the script ended before it"]
    after = [line for line in lines[headers[-1] + 1:] if line.strip()]
    problems = [f"printed after the verdict: {line!r}" for line in after if not VERDICT_LINE.match(line)]
    if not any(re.match(r"^\w+ batch +\d+ ", line) for line in after):
        problems.append("the verdict names no batch (no row of where_the_time_goes for the batches asked)")
    return problems


def check_converge_table(console: str) -> list[str]:
    """scripts/device_converge.sh ends with its case table (bench.report.convergence.case_table)."""
    lines = [line for line in console.splitlines() if line.strip()]
    headers = [i for i, line in enumerate(lines) if line.split()[:2] == ["global_batch", "precision"]]
    if not headers:
        return ["the console has no converge table (global_batch precision ...): the script ended before it"]
    return [] if len(lines) - headers[-1] > 1 else ["the converge table has no rows"]


def main(argv: list[str]) -> int:
    converge = "--converge" in argv
    argv = [a for a in argv if a != "--converge"]
    if len(argv) != 2:
        print("usage: python scripts/device_rehearsal_check.py [--converge] OUT_DIR CONSOLE_LOG", file=sys.stderr)
        return 2
    out, console = Path(argv[0]), Path(argv[1])
    problems, files = check_out(out)
    print(f"$OUT: {len(files)} files, largest {max((p.stat().st_size for p in files), default=0) / 2**20:.2f} MiB: "
          + ", ".join(p.name for p in files))
    problems += check_results(files)
    text = console.read_text(encoding="utf-8", errors="replace")
    problems += check_converge_table(text) if converge else check_verdict(text)
    for problem in problems:
        print(f"device rehearsal: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
