"""``--set section.key=value``: change a config for one run without editing its TOML.

Each value is parsed as a TOML value (``10``, ``[256, 1024]``, ``true``, ``"auto"``; a bare word such as
``synthetic`` is taken as a string) and written into the raw TOML tables *before* validation, so an
override is checked exactly like the same line in the file and fails with the same one-line error.
The resolved config is what the run records; its ``sha256`` covers the file and the overrides.
"""

from __future__ import annotations

import copy
import hashlib
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

from bench.cases import check_cases
from bench.config import BenchConfig, ConfigError, load_config, parse_config

_KEY_PART = re.compile(r"[A-Za-z0-9_-]+")
_BARE_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_.:/+-]*")


class OverrideError(ConfigError):
    """A ``--set`` that is not ``section.key=value`` or whose value is not TOML."""


@dataclass(frozen=True)
class Override:
    keys: tuple[str, ...]  # ("measure", "rounds")
    value: Any
    text: str  # as the user wrote it, for messages and the results file

    @property
    def key(self) -> str:
        return ".".join(self.keys)


def parse_override(text: str) -> Override:
    key, sep, raw = text.partition("=")
    keys = tuple(part.strip() for part in key.split("."))
    if not sep or not all(_KEY_PART.fullmatch(part) for part in keys):
        raise OverrideError(f"--set {text!r}: expected section.key=value, e.g. --set measure.rounds=10")
    return Override(keys, parse_value(raw.strip(), text), text)


def parse_value(raw: str, text: str = "") -> Any:
    try:
        return tomllib.loads(f"value = {raw}")["value"]
    except tomllib.TOMLDecodeError:
        if _BARE_WORD.fullmatch(raw):
            return raw  # --set data.source=synthetic: no shell quoting gymnastics for a plain word
        raise OverrideError(f"--set {text or raw!r}: {raw!r} is not a TOML value (numbers, true/false, "
                            '"strings", [lists]; e.g. --set train.global_batch=[256,1024])') from None


def apply_overrides(raw: Mapping[str, Any], overrides: Sequence[Override]) -> dict[str, Any]:
    """A copy of the raw TOML tables with every override written in, in order (a later one wins)."""
    result = copy.deepcopy(dict(raw))
    for override in overrides:
        node = result
        for depth, part in enumerate(override.keys[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                where = ".".join(override.keys[: depth + 1])
                raise OverrideError(f"--set {override.text}: '{where}' is a value, not a table, so it has no keys")
            node = child
        node[override.keys[-1]] = override.value
    return result


def override_sha256(raw_bytes: bytes, overrides: Sequence[Override]) -> str:
    """The file's bytes followed by one ``--set`` line per override: different overrides, different hash."""
    digest = hashlib.sha256(raw_bytes)
    for override in overrides:
        digest.update(f"\n--set {override.text}".encode())
    return digest.hexdigest()


def load_config_with_overrides(path: str | Path, overrides: Sequence[str] = ()) -> BenchConfig:
    """:func:`bench.config.load_config`, then the overrides applied and the result validated again; the cases
    of either are checked (:func:`bench.cases.check_cases`). The way every command loads a sweep."""
    config = check_cases(load_config(path))  # the file's own mistakes are reported against the file alone
    if not overrides:
        return config
    parsed = [parse_override(text) for text in overrides]
    path = Path(path)
    raw_bytes = path.read_bytes()
    raw = apply_overrides(tomllib.loads(raw_bytes.decode("utf-8")), parsed)
    try:
        return check_cases(parse_config(raw, source=str(path), sha256=override_sha256(raw_bytes, parsed)))
    except ConfigError as exc:
        message = str(exc)
        prefix = f"{path}: "
        detail = message[len(prefix):] if message.startswith(prefix) else message
        sets = " ".join(f"--set {o.text}" for o in parsed)
        raise ConfigError(f"{path} with {sets}: {detail}") from None
