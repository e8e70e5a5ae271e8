"""What a device run left in $OUT, checked as the device tool would bring it back (`nox -s device_rehearsal`).

    python scripts/device_rehearsal_check.py OUT_DIR CONSOLE_LOG

Fails (exit 1, one line per problem) unless: at most 8 files come back, none over 16 MiB, each named in letters,
digits, '.', '_' and '-' and at most 2 folders down; one complete results file that ``bench.store.results.load_run``
reads, with at least one ``ok`` case; and the console's last section is the verdict (scripts/gpu_summary.py),
with a line for at least one batch.
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
    if "ok" not in statuses:
        problems.append(f"{runs[0].name} has no ok case: " + "; ".join(
            f"{c['case_id']}: {c['status']} {c.get('reason') or ''}".strip() for c in document["cases"][:3]))
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


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    out, console = Path(argv[0]), Path(argv[1])
    problems, files = check_out(out)
    print(f"$OUT: {len(files)} files, largest {max((p.stat().st_size for p in files), default=0) / 2**20:.2f} MiB: "
          + ", ".join(p.name for p in files))
    problems += check_results(files)
    problems += check_verdict(console.read_text(encoding="utf-8", errors="replace"))
    for problem in problems:
        print(f"device rehearsal: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
