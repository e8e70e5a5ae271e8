"""Child processes of this tool: started in their own session, killed as a group, talking through event files.

Shared by the sweep's workers (:mod:`bench.run.sweep`), the multi-worker launcher (:mod:`bench.run.launcher`)
and the framework probes (:mod:`bench.environment.frameworks`), which each held a copy of this before.
Framework-free.

Why a session per child: a framework spawns helpers of its own (XLA compilers, gloo, tf.data threads as
processes on some builds); killing the process group takes them down with it, so a timed-out or abandoned
case never leaves a process that keeps loading the machine while the next case is timed.

The event protocol: a child appends one JSON object per line to its progress file (``write_event``; an
``event`` name, the wall time ``t`` and its ``pid`` plus the event's own fields) and the parent polls the
file from the offset it last read (``read_events``), skipping a half-written last line until it is complete.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any


def spawn(command: Sequence[str], env: Mapping[str, str] | None, stdout: IO[Any] | int | None,
          stderr: IO[Any] | int | None = subprocess.STDOUT, text: bool = False) -> subprocess.Popen:
    """Start ``command`` in a new session (its own process group), stdin closed."""
    return subprocess.Popen(list(command), env=None if env is None else dict(env), stdout=stdout, stderr=stderr,
                            stdin=subprocess.DEVNULL, start_new_session=True, text=text)


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the child's whole process group (it was started by :func:`spawn`) and reap it."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            proc.kill()
    proc.wait()


def write_event(path: str | Path, event: str, **fields: Any) -> None:
    """Append one progress event (the child's side of the protocol)."""
    line = json.dumps({"event": event, "t": time.time(), "pid": os.getpid(), **fields})
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(line + "\n")


def read_events(path: str | Path, offset: int) -> tuple[list[dict[str, Any]], int]:
    """The complete events after byte ``offset`` and the offset to read from next (the parent's side)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            chunk = fh.read()
    except OSError:
        return [], offset
    events = []
    consumed = 0
    for line in chunk.splitlines(keepends=True):
        if not line.endswith(b"\n"):
            break  # half-written; read it next time
        consumed += len(line)
        try:
            events.append(json.loads(line))
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
    return events, offset + consumed


def last_line(path: str | Path, limit: int = 300) -> str:
    """The last non-blank line of a log file, cut to ``limit`` characters ("" when there is none)."""
    try:
        lines = [ln for ln in Path(path).read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1][:limit] if lines else ""
