"""Sets of S3 keys as finite automata: which keys a step's trigger accepts, which it writes.

Pure. ``pipeline check`` asks questions like "can a key written by step A pass step B's
notification filter and ``MATCH_KEY``?"; answering them by trying sample keys would miss
loops, so keys are handled as regular languages: a Python regex (search semantics, as
``MATCH_KEY`` is applied) becomes a nondeterministic automaton over character ranges,
and the questions become intersections and an emptiness test.

Every construction over-approximates when it cannot be exact (look-arounds and
back-references are ignored, ``\\d`` admits every non-ASCII character, huge repeat counts
become ``*``), so a loop is never missed; ``KeySet.approximate`` says when that happened.
"""

from __future__ import annotations

import importlib
import itertools
import re
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

_parser: Any = importlib.import_module("re._parser")  # the parser behind `re`; no stubs

MAX_CHAR = 0x10FFFF
SLASH = ord("/")
_REPEAT_LIMIT = 20  # larger repeat counts are widened to `*`

Ranges = tuple[tuple[int, int], ...]
ANY: Ranges = ((0, MAX_CHAR),)


def _normalize(ranges: Iterable[tuple[int, int]]) -> Ranges:
    merged: list[tuple[int, int]] = []
    for low, high in sorted(r for r in ranges if r[0] <= r[1]):
        if merged and low <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(high, merged[-1][1]))
        else:
            merged.append((low, high))
    return tuple(merged)


def _intersect(a: Ranges, b: Ranges) -> Ranges:
    out = []
    for low_a, high_a in a:
        for low_b, high_b in b:
            low, high = max(low_a, low_b), min(high_a, high_b)
            if low <= high:
                out.append((low, high))
    return _normalize(out)


def _complement(a: Ranges) -> Ranges:
    out, start = [], 0
    for low, high in a:
        if low > start:
            out.append((start, low - 1))
        start = high + 1
    if start <= MAX_CHAR:
        out.append((start, MAX_CHAR))
    return tuple(out)


def _chars(text: str) -> Ranges:
    return _normalize((ord(c), ord(c)) for c in text)


def _pick(ranges: Ranges) -> str:
    """A readable character of ``ranges``, for example keys in messages."""
    for preferred in ("a", "0", "x", "_", "-", "."):
        if _intersect(ranges, _chars(preferred)):
            return preferred
    for low, high in ranges:
        if high >= 0x21 and low <= 0x7E:  # printable ASCII first, lower case if possible
            char = chr(max(low, 0x21))
            lower = ord(char.lower())
            return chr(lower) if any(lo <= lower <= hi for lo, hi in ranges) else char
    return chr(ranges[0][0])


_NON_ASCII: Ranges = ((0x80, MAX_CHAR),)
# (under, over) approximations of the categories: exact on ASCII, and for the over side
# every non-ASCII character (Unicode digits, letters and spaces are many).
_DIGITS = _chars("0123456789")
_WORD = _normalize([(ord("a"), ord("z")), (ord("A"), ord("Z")), (ord("_"), ord("_")), *_DIGITS])
_SPACE = _chars(" \t\n\r\f\v\x1c\x1d\x1e\x1f")
_CATEGORIES: dict[str, tuple[Ranges, Ranges]] = {
    "CATEGORY_DIGIT": (_DIGITS, _normalize([*_DIGITS, *_NON_ASCII])),
    "CATEGORY_NOT_DIGIT": (_complement(_normalize([*_DIGITS, *_NON_ASCII])), _complement(_DIGITS)),
    "CATEGORY_WORD": (_WORD, _normalize([*_WORD, *_NON_ASCII])),
    "CATEGORY_NOT_WORD": (_complement(_normalize([*_WORD, *_NON_ASCII])), _complement(_WORD)),
    "CATEGORY_SPACE": (_SPACE, _normalize([*_SPACE, *_NON_ASCII])),
    "CATEGORY_NOT_SPACE": (_complement(_normalize([*_SPACE, *_NON_ASCII])), _complement(_SPACE)),
}


def _casefold(ranges: Ranges) -> Ranges:
    """``ranges`` plus the other case of its ASCII letters (and all of non-ASCII, widened)."""
    extra: list[tuple[int, int]] = []
    for low, high in ranges:
        for first, last, shift in ((ord("a"), ord("z"), -32), (ord("A"), ord("Z"), 32)):
            lo, hi = max(low, first), min(high, last)
            if lo <= hi:
                extra.append((lo + shift, hi + shift))
        if high >= 0x80:
            extra.append((0x80, MAX_CHAR))
    return _normalize([*ranges, *extra])


# --- automata ---------------------------------------------------------------------------


@dataclass
class _Builder:
    """A Thompson automaton under construction: character moves and guarded empty moves.

    A guard on an empty move is ``"begin"`` (only before any character: ``^``) or ``"end"``
    (no character may follow: ``$``).
    """

    moves: list[list[tuple[Ranges, int]]] = field(default_factory=list)
    empty: list[list[tuple[str | None, int]]] = field(default_factory=list)
    approximate: bool = False

    def state(self) -> int:
        self.moves.append([])
        self.empty.append([])
        return len(self.moves) - 1

    def char(self, ranges: Ranges) -> tuple[int, int]:
        start, end = self.state(), self.state()
        if ranges:
            self.moves[start].append((ranges, end))
        return start, end

    def link(self, source: int, target: int, guard: str | None = None) -> None:
        self.empty[source].append((guard, target))

    def epsilon(self, guard: str | None = None) -> tuple[int, int]:
        start, end = self.state(), self.state()
        self.link(start, end, guard)
        return start, end

    def star(self, inner: tuple[int, int]) -> tuple[int, int]:
        start, end = self.state(), self.state()
        self.link(start, inner[0])
        self.link(inner[1], start)
        self.link(start, end)
        return start, end

    def sequence(self, parts: list[tuple[int, int]]) -> tuple[int, int]:
        if not parts:
            return self.epsilon()
        for left, right in itertools.pairwise(parts):
            self.link(left[1], right[0])
        return parts[0][0], parts[-1][1]

    def branch(self, alternatives: list[tuple[int, int]]) -> tuple[int, int]:
        start, end = self.state(), self.state()
        for first, last in alternatives:
            self.link(start, first)
            self.link(last, end)
        return start, end


@dataclass(frozen=True)
class _Flags:
    ignore_case: bool
    dot_all: bool
    multi_line: bool


def _compile(builder: _Builder, items: Any, flags: _Flags) -> tuple[int, int]:
    return builder.sequence([_compile_item(builder, op, arg, flags) for op, arg in items])


def _compile_item(builder: _Builder, op: Any, arg: Any, flags: _Flags) -> tuple[int, int]:
    name = str(op)
    fold = _casefold if flags.ignore_case else (lambda r: r)
    if name == "LITERAL":
        return builder.char(fold(((arg, arg),)))
    if name == "NOT_LITERAL":
        return builder.char(_complement(((arg, arg),)))
    if name == "ANY":
        return builder.char(ANY if flags.dot_all else _complement(_chars("\n")))
    if name == "IN":
        return builder.char(_char_class(arg, fold))
    if name == "BRANCH":
        return builder.branch([_compile(builder, alt, flags) for alt in arg[1]])
    if name == "SUBPATTERN":
        _group, add, remove, pattern = arg
        inner = _Flags(
            (flags.ignore_case or bool(add & re.IGNORECASE)) and not remove & re.IGNORECASE,
            (flags.dot_all or bool(add & re.DOTALL)) and not remove & re.DOTALL,
            (flags.multi_line or bool(add & re.MULTILINE)) and not remove & re.MULTILINE,
        )
        return _compile(builder, pattern, inner)
    if name == "ATOMIC_GROUP":
        return _compile(builder, arg, flags)
    if name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
        low, high, pattern = arg
        unbounded = high == _parser.MAXREPEAT or high > _REPEAT_LIMIT
        if (unbounded and high != _parser.MAXREPEAT) or low > _REPEAT_LIMIT:
            builder.approximate = True
        low = min(low, _REPEAT_LIMIT)
        parts = [_compile(builder, pattern, flags) for _ in range(low)]
        if unbounded:
            parts.append(builder.star(_compile(builder, pattern, flags)))
        else:
            for _ in range(high - low):
                parts.append(builder.branch([_compile(builder, pattern, flags), builder.epsilon()]))
        return builder.sequence(parts)
    if name == "AT":
        where = str(arg)
        if where in ("AT_BEGINNING_STRING",) or (where == "AT_BEGINNING" and not flags.multi_line):
            return builder.epsilon("begin")
        if where in ("AT_END_STRING",) or (where == "AT_END" and not flags.multi_line):
            return builder.epsilon("end")
        return builder.epsilon()  # word boundaries, multi-line anchors: widened
    if name in ("ASSERT", "ASSERT_NOT"):
        builder.approximate = True  # a look-around only narrows a match: ignoring it widens
        return builder.epsilon()
    if name == "GROUPREF_EXISTS":
        builder.approximate = True
        _group, yes, no = arg
        options = [_compile(builder, yes, flags)]
        options.append(_compile(builder, no, flags) if no is not None else builder.epsilon())
        return builder.branch(options)
    # Back-references and anything newer: any string at all.
    builder.approximate = True
    return builder.star(builder.char(ANY))


def _char_class(items: Any, fold: Any) -> Ranges:
    negate = bool(items) and str(items[0][0]) == "NEGATE"
    parts: list[tuple[int, int]] = []
    for op, arg in items[1:] if negate else items:
        name = str(op)
        if name == "LITERAL":
            parts.append((arg, arg))
        elif name == "RANGE":
            parts.append((arg[0], arg[1]))
        elif name == "CATEGORY":
            under, over = _CATEGORIES.get(str(arg), (ANY, ANY))
            parts.extend(under if negate else over)
        else:
            parts.extend(ANY)
    ranges = _normalize(parts)
    # Negated classes use under-approximations before the complement, so they widen too.
    return _complement(ranges) if negate else fold(ranges)


@dataclass(frozen=True)
class KeySet:
    """A set of keys: an automaton without empty moves over character ranges."""

    starts: frozenset[int]
    finals: frozenset[int]
    moves: tuple[tuple[tuple[Ranges, int], ...], ...]
    approximate: bool = False

    # --- constructors ---------------------------------------------------------------

    @classmethod
    def everything(cls) -> KeySet:
        """Every key."""
        return cls(frozenset({0}), frozenset({0}), (((ANY, 0),),))

    @classmethod
    def exactly(cls, text: str) -> KeySet:
        """The one key ``text`` (possibly empty)."""
        moves = (*(((_chars(c), i + 1),) for i, c in enumerate(text)), ())
        return cls(frozenset({0}), frozenset({len(text)}), moves)

    @classmethod
    def starting_with(cls, prefix: str) -> KeySet:
        """Keys that start with ``prefix``."""
        return cls.exactly(prefix).concat(cls.everything())

    @classmethod
    def ending_with(cls, suffix: str) -> KeySet:
        """Keys that end with ``suffix``."""
        return cls.everything().concat(cls.exactly(suffix))

    @classmethod
    def searched(cls, pattern: str | re.Pattern[str]) -> KeySet:
        """Keys in which ``re.search(pattern, key)`` finds a match (how MATCH_KEY applies)."""
        regex = pattern if isinstance(pattern, re.Pattern) else re.compile(pattern)
        builder = _Builder()
        flags = _Flags(
            bool(regex.flags & re.IGNORECASE),
            bool(regex.flags & re.DOTALL),
            bool(regex.flags & re.MULTILINE),
        )
        parsed = _parser.parse(regex.pattern, regex.flags)
        body = _compile(builder, parsed, flags)
        # Search semantics: anything may come before and after the match.
        head, tail = builder.state(), builder.state()
        builder.moves[head].append((ANY, head))
        builder.link(head, body[0])
        builder.link(body[1], tail)
        builder.moves[tail].append((ANY, tail))
        return _without_empty_moves(builder, head, tail)

    # --- operations -----------------------------------------------------------------

    def intersect(self, other: KeySet) -> KeySet:
        """Keys in both sets."""
        index: dict[tuple[int, int], int] = {}
        moves: list[list[tuple[Ranges, int]]] = []
        queue: deque[tuple[int, int]] = deque()

        def state(pair: tuple[int, int]) -> int:
            if pair not in index:
                index[pair] = len(moves)
                moves.append([])
                queue.append(pair)
            return index[pair]

        starts = {state((a, b)) for a in self.starts for b in other.starts}
        while queue:
            a, b = pair = queue.popleft()
            source = index[pair]
            for ranges_a, target_a in self.moves[a]:
                for ranges_b, target_b in other.moves[b]:
                    common = _intersect(ranges_a, ranges_b)
                    if common:
                        moves[source].append((common, state((target_a, target_b))))
        finals = {i for (a, b), i in index.items() if a in self.finals and b in other.finals}
        return KeySet(
            frozenset(starts),
            frozenset(finals),
            tuple(tuple(m) for m in moves),
            self.approximate or other.approximate,
        )

    def union(self, other: KeySet) -> KeySet:
        """Keys in either set."""
        shift = len(self.moves)
        moved = tuple(tuple((r, t + shift) for r, t in m) for m in other.moves)
        return KeySet(
            self.starts | {s + shift for s in other.starts},
            self.finals | {f + shift for f in other.finals},
            self.moves + moved,
            self.approximate or other.approximate,
        )

    def concat(self, other: KeySet) -> KeySet:
        """Keys made of a key of this set followed by a key of ``other``."""
        shift = len(self.moves)
        moved = [[(r, t + shift) for r, t in m] for m in other.moves]
        other_starts = {s + shift for s in other.starts}
        start_moves = [move for s in other_starts for move in moved[s - shift]]
        moves = [list(m) for m in self.moves] + moved
        for final in self.finals:
            moves[final].extend(start_moves)
        finals = {f + shift for f in other.finals}
        if other_starts & finals:
            finals |= self.finals
        starts = set(self.starts)
        if self.starts & self.finals:
            starts |= other_starts
        return KeySet(
            frozenset(starts),
            frozenset(finals),
            tuple(tuple(m) for m in moves),
            self.approximate or other.approximate,
        )

    def is_empty(self) -> bool:
        """True when no key is in the set."""
        return self.example() is None

    def example(self) -> str | None:
        """A shortest key of the set (readable characters preferred), or None if empty."""
        previous: dict[int, tuple[int, str] | None] = {s: None for s in self.starts}
        queue = deque(sorted(self.starts))
        while queue:
            state = queue.popleft()
            if state in self.finals:
                chars = []
                step = previous[state]
                while step is not None:
                    state, char = step
                    chars.append(char)
                    step = previous[state]
                return "".join(reversed(chars))
            for ranges, target in self.moves[state]:
                if target not in previous:
                    previous[target] = (state, _pick(ranges))
                    queue.append(target)
        return None

    def group_prefixes(self, parent_dirs: int) -> KeySet:
        """The group prefixes of these keys: each key minus its last ``parent_dirs + 1``
        parts, joined with ``/`` and ending with ``/`` unless empty (docs/design.md §2)."""
        if parent_dirs < 0:
            return KeySet.exactly("")
        # can[c]: states from which a key rest with exactly c slashes reaches a final state.
        can: list[set[int]] = []
        for count in range(parent_dirs + 1):
            reach = set(self.finals) if count == 0 else set()
            changed = True
            while changed:
                changed = False
                for state, moves in enumerate(self.moves):
                    if state in reach:
                        continue
                    for ranges, target in moves:
                        other = _intersect(ranges, _complement(((SLASH, SLASH),)))
                        if (other and target in reach) or (
                            count > 0
                            and _intersect(ranges, ((SLASH, SLASH),))
                            and target in can[-1]
                        ):
                            reach.add(state)
                            changed = True
                            break
            can.append(reach)
        cut = KeySet(self.starts, frozenset(can[parent_dirs]), self.moves, self.approximate)
        prefixes = cut.intersect(KeySet.ending_with("/"))
        if not self.intersect(_at_most_slashes(parent_dirs)).is_empty():
            prefixes = prefixes.union(KeySet.exactly(""))
        return prefixes


def _at_most_slashes(count: int) -> KeySet:
    """Keys with at most ``count`` slashes."""
    not_slash = _complement(((SLASH, SLASH),))
    moves = tuple(
        ((not_slash, i), *(((((SLASH, SLASH),), i + 1),) if i < count else ()))
        for i in range(count + 1)
    )
    return KeySet(frozenset({0}), frozenset(range(count + 1)), moves)


def _without_empty_moves(builder: _Builder, start: int, final: int) -> KeySet:
    """Remove empty moves, tracking (state, read anything yet, passed an end anchor)."""
    Node = tuple[int, bool, bool]

    def closure(node: Node) -> set[Node]:
        seen = {node}
        stack = [node]
        while stack:
            state, started, ended = stack.pop()
            for guard, target in builder.empty[state]:
                if guard == "begin" and started:
                    continue
                nxt = (target, started, ended or guard == "end")
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        return seen

    index: dict[Node, int] = {}
    moves: list[list[tuple[Ranges, int]]] = []
    finals: set[int] = set()
    queue: deque[Node] = deque()

    def number(node: Node) -> int:
        if node not in index:
            index[node] = len(moves)
            moves.append([])
            queue.append(node)
        return index[node]

    number((start, False, False))
    while queue:
        node = queue.popleft()
        source = index[node]
        for state, _started, ended in closure(node):
            if state == final:
                finals.add(source)
            if ended:
                continue
            for ranges, target in builder.moves[state]:
                moves[source].append((ranges, number((target, True, False))))
    return KeySet(
        frozenset({0}), frozenset(finals), tuple(tuple(m) for m in moves), builder.approximate
    )
