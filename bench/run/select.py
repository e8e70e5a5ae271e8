"""``-k EXPR``: choose cases by their ids, the way ``pytest -k`` chooses tests.

An expression combines words with ``and``, ``or``, ``not`` and parentheses; a word matches a case when
it occurs in the case id, ignoring case (``-k "gpus=2 and not jit=true"``, ``-k "cpu_predict or native"``).
pytest's own matcher (``_pytest.mark.expression``) is private API and does not accept ``=``, which every
case id contains, so this is a small parser for the same grammar with any run of characters other than
spaces and parentheses as a word. Being substrings, ``gpus=1`` also matches ``gpus=16``; write
``gpus=1/`` to mean exactly one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, TypeVar

from bench.errors import UserError

_TOKEN = re.compile(r"\s*(\(|\)|[^\s()]+)")
KEYWORDS = ("and", "or", "not")

Matcher = Callable[[str], bool]
Case = TypeVar("Case")


class SelectionError(UserError):
    """A ``-k`` expression that does not parse, or that selects nothing."""


def compile_expression(expression: str) -> Matcher:
    """A function ``case_id -> bool`` for the expression; raises :class:`SelectionError` (one line)."""
    tokens = _tokens(expression)
    if not tokens:
        raise SelectionError('-k needs an expression, e.g. -k "gpus=2 and not jit=true"')
    parser = _Parser(expression, tokens)
    matcher = parser.expr()
    if parser.pos != len(tokens):
        parser.fail(f"unexpected {tokens[parser.pos][0]!r}")
    return matcher


def select_cases(cases: Sequence[Case], expression: str, case_id: Callable[[Case], str] | None = None) -> list[Case]:
    """The cases whose id matches; raises :class:`SelectionError` when none does."""
    matcher = compile_expression(expression)
    get_id: Callable[[Any], str] = case_id or (lambda c: c.case_id)
    chosen = [c for c in cases if matcher(get_id(c))]
    if not chosen:
        raise SelectionError(f"-k {expression!r} selects none of the {len(cases)} planned cases "
                             "(python -m bench run --list shows their ids)")
    return chosen


def _tokens(expression: str) -> list[tuple[str, int]]:
    found, pos = [], 0
    while True:
        match = _TOKEN.match(expression, pos)
        if not match:
            return found
        found.append((match.group(1), match.start(1)))
        pos = match.end()


class _Parser:
    """expr := and ('or' and)* ; and := not ('and' not)* ; not := 'not' not | '(' expr ')' | word"""

    def __init__(self, expression: str, tokens: list[tuple[str, int]]):
        self.expression = expression
        self.tokens = tokens
        self.pos = 0

    def fail(self, what: str) -> NoReturn:
        column = self.tokens[self.pos][1] + 1 if self.pos < len(self.tokens) else len(self.expression) + 1
        raise SelectionError(f"-k {self.expression!r}: {what} at column {column}; write words of case ids joined by "
                             'and/or/not with parentheses, e.g. -k "gpus=2 and not jit=true"')

    def peek(self) -> str | None:
        return self.tokens[self.pos][0] if self.pos < len(self.tokens) else None

    def expr(self) -> Matcher:
        parts = [self.and_expr()]
        while self.peek() == "or":
            self.pos += 1
            parts.append(self.and_expr())
        return parts[0] if len(parts) == 1 else (lambda cid, ps=tuple(parts): any(p(cid) for p in ps))

    def and_expr(self) -> Matcher:
        parts = [self.not_expr()]
        while self.peek() == "and":
            self.pos += 1
            parts.append(self.not_expr())
        return parts[0] if len(parts) == 1 else (lambda cid, ps=tuple(parts): all(p(cid) for p in ps))

    def not_expr(self) -> Matcher:
        token = self.peek()
        if token is None:
            self.fail("expected a word, 'not' or '(' but the expression ended")
        if token == "not":
            self.pos += 1
            inner = self.not_expr()
            return lambda cid: not inner(cid)
        if token == "(":
            self.pos += 1
            inner = self.expr()
            if self.peek() != ")":
                self.fail("expected ')'")
            self.pos += 1
            return inner
        if token in (")", "and", "or"):
            self.fail(f"expected a word, 'not' or '(' but found {token!r}")
        self.pos += 1
        word = token.lower()
        return lambda cid: word in cid.lower()
