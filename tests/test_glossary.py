"""The glossary (术语表): one Chinese rendering per English term, which every notebook agrees with.

``lectures/GLOSSARY.md`` is a table ``| English | 中文 | lecture |``. The checks below read the markdown
cells of every notebook (``lectures/``, ``solutions/``, ``assignments/``) and find each pair written
"English term (中文)" (also "(English term, 中文)" and lists such as "kernel size, stride (卷积核大小,
步长)"):

* every pair's Chinese must be the glossary's rendering of its English term, and every pair's term
  must be in the glossary (so the glossary covers every term any notebook pairs with Chinese);
* in the lectures, read in course order (00, 01, ...), the first use of each glossary term must carry
  its Chinese, and the ``lecture`` column must name the lecture of that first use. Text in quotation
  marks (a paper's title) does not count as a use.

The ``lecture`` column holds ``NN`` (first used, with its Chinese, in lecture NN), ``NN†`` (an everyday
English word before lecture NN, e.g. "value" or "key"; a key term from NN on, where its first use is
checked) or ``—`` (no lecture uses it; only assignments pair it). ``—†`` marks an everyday word that
only an assignment pairs: the lectures' use of it is not checked.

Lectures must agree exactly. Assignment notebooks (``solutions/`` and the generated ``assignments/``)
are checked the same way, but their known disagreements are listed in ``ASSIGNMENT_EXCEPTIONS`` until
their authors fix them; a new disagreement fails. Run ``python tests/test_glossary.py`` for a report.
"""
from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parent.parent
GLOSSARY = REPO / "lectures" / "GLOSSARY.md"
LECTURES = sorted((REPO / "lectures").glob("[0-9][0-9]_*.ipynb"))
ASSIGNMENT_NOTEBOOKS = sorted(p for d in ("solutions", "assignments") for p in (REPO / d).glob("*/*.ipynb")
                              if ".ipynb_checkpoints" not in p.parts)

# Known disagreements in assignment notebooks, as (notebook stem, English term, Chinese written there).
# The assignments' authors should make these agree with the glossary and then delete the entries; the
# same pair is accepted in both solutions/ and assignments/ (the release copies the source's markdown).
ASSIGNMENT_EXCEPTIONS: set[tuple[str, str, str]] = set()

# Terms that the primer (lecture 00, another author's file) uses before giving their Chinese. If lecture
# 00 gives the Chinese further down, that counts as the first use; if it never does, the check moves on
# to the first use in lectures 01-07, which must carry the Chinese. Delete an entry once lecture 00
# pairs the term at its first use.
LECTURE_00_EXCEPTIONS: set[str] = {
    "backward pass", "bias", "dimension", "feature", "gradient descent", "Hessian", "leaf tensor",
    "mini-batch", "noise", "padding", "parameter", "shape", "training loop", "weight",
}

CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
PAREN = re.compile(r"[(（]([^()（）]*)[)）]")
WORD_GAP = r"[\s\-‐–/]*"   # between the words of a term: spaces, hyphens ("mini-batch" = "mini batch"), "/"


# ---------------------------------------------------------------------------------------------------
# the glossary


@dataclass(frozen=True)
class Term:
    english: str             # the first spelling, for messages
    spellings: tuple[str, ...]   # "a; b" in the English column: other spellings of the same term
    chinese: str
    lecture: int | None      # lecture of the first use, None for "—"
    everyday: bool           # † : an everyday word before `lecture` (or everywhere, for "—†")
    line: int


def _canon(text: str) -> str:
    """Lower case, British -ise spelt -ize (same length, so offsets stay valid)."""
    text = text.lower()
    return re.sub(r"(?<=[a-z])is(?=ation|e\b|ed\b|es\b|ing\b|er\b)", "iz", text)


def read_glossary(path: Path = GLOSSARY) -> list[Term]:
    terms = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.lstrip().startswith("|") else []
        if len(cells) != 3 or not CJK.search(cells[1]) or cells[2].lower() == "lecture":
            continue   # not a row of the table, or its header
        english, chinese, lecture = cells
        spellings = tuple(s.strip() for s in english.replace("**", "").replace("`", "").split(";") if s.strip())
        everyday = lecture.endswith("†")
        number = lecture.rstrip("†").strip()
        if not re.fullmatch(r"\d\d|—", number):
            raise ValueError(f"{path.name} line {n}: the lecture column must be NN, NN†, — or —†, not {lecture!r}")
        terms.append(Term(spellings[0], spellings, chinese, None if number == "—" else int(number),
                          everyday, n))
    return terms


@lru_cache(maxsize=None)
def _glossary() -> tuple[Term, ...]:
    return tuple(read_glossary())


def _term_pattern(english: str) -> str:
    words = [w for w in re.split(r"[\s\-‐–/]+", _canon(english)) if w]
    *head, last = words
    if re.search(r"[^aeiou]y$", last):
        last_pat = re.escape(last[:-1]) + r"(?:y|ies)"
    elif re.search(r"[a-z]$", last):
        last_pat = re.escape(last) + r"(?:s|es)?"
    else:
        last_pat = re.escape(last)
    body = WORD_GAP.join([re.escape(w) for w in head] + [last_pat])
    return r"(?<![\w\-])" + body + r"(?![\w\-])"


def _first_key(text: str) -> str:
    return text[:3]


@lru_cache(maxsize=None)
def _index() -> dict[str, tuple[tuple[int, str, Term], ...]]:
    """Every spelling of every term, numbered longest first, by the first three letters of its first word."""
    spellings = sorted(((s, t) for t in _glossary() for s in t.spellings), key=lambda st: -len(st[0]))
    index: dict[str, list] = {}
    for n, (spelling, term) in enumerate(spellings):
        first = re.split(r"[\s\-‐–/]+", _canon(spelling).strip())[0]
        index.setdefault(_first_key(first), []).append((n, spelling, term))
    return {k: tuple(v) for k, v in index.items()}


@lru_cache(maxsize=None)
def _pattern(spelling: str) -> re.Pattern:
    return re.compile(_term_pattern(spelling))


@lru_cache(maxsize=None)
def find_terms(text: str) -> tuple[tuple[Term, int, int], ...]:
    """Non-overlapping glossary terms in ``text``, leftmost first and, at one place, the longest."""
    canon = _canon(text)
    index = _index()
    words = {_first_key(w) for w in re.findall(r"[a-z0-9][a-z0-9'’_]*", canon)}
    hits = [(m.start(), -(m.end() - m.start()), n, m.end(), term)
            for k in words for n, spelling, term in index.get(k, ())
            for m in _pattern(spelling).finditer(canon)]
    found, pos = [], 0
    for start, _, _, end, term in sorted(hits, key=lambda h: h[:3]):
        if start >= pos:
            found.append((term, start, end))
            pos = end
    return tuple(found)


# ---------------------------------------------------------------------------------------------------
# the notebooks' text


def _math_text(math: str) -> str:
    """The prose inside a formula: the arguments of \\text{...}, for "\\text{forget gate (遗忘门)}"."""
    return " ; ".join(re.findall(r"\\(?:text|textbf|textit|mathrm)\{([^{}]*)\}", math)) or " ⟨math⟩ "


def prose_segments(markdown: str, *, code: bool = False) -> list[str]:
    """Paragraphs, list items, table cells and headings of a markdown cell, as plain one-line text.

    Inline code becomes "⟨code⟩", or with ``code`` its text (for pairs such as "`padding` (填充)").
    """
    text = re.sub(r"```.*?```", " ", markdown, flags=re.S)
    text = re.sub(r"`([^`\n]*)`", (lambda m: m.group(1)) if code else " ⟨code⟩ ", text)
    text = re.sub(r"!\[[^\]]*\]\([^)]*\)", " ", text)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"<[^>\n]+>", " ", text)
    text = re.sub(r"\$\$(.*?)\$\$", lambda m: _math_text(m.group(1)), text, flags=re.S)
    text = re.sub(r"\$([^$\n]+)\$", lambda m: _math_text(m.group(1)), text)
    text = text.replace("*", "")
    segments = []
    for block in re.split(r"\n\s*\n", text):
        for piece in re.split(r"\n(?=\s*(?:[-*+] |\d+\. |#|\|))", block):
            for cell in piece.split("|"):
                cell = " ".join(cell.split())
                if cell.strip("-: "):
                    segments.append(cell)
    return segments


@dataclass(frozen=True)
class Pair:
    """One parenthesis holding Chinese, with the English around it."""
    where: str            # notebook stem and cell number, for messages
    notebook: str         # notebook stem
    chinese: tuple[str, ...]
    terms_near: tuple[Term, ...]    # glossary terms in the parenthesis and just before it
    adjacent: Term | None           # the term right before "(" or alone inside it
    left: str                       # the words before "(", for messages
    start: int
    end: int
    segment: str


def _chinese_parts(inside: str) -> tuple[list[str], list[str]]:
    inside = re.sub(r"《[^》]*》", " ", inside)          # a book title, not a term: 《动手学深度学习》
    parts = [p.strip(" \"'“”‘’.") for p in re.split(r"[,，;；、:：]|\s—\s", inside)]
    chinese = [" ".join(p.split()) for p in parts if CJK.search(p)]
    english = [p for p in parts if p and not CJK.search(p)]
    return chinese, english


def pairs_in_segment(segment: str, where: str, notebook: str) -> list[Pair]:
    pairs, previous_end = [], 0
    for m in PAREN.finditer(segment):
        chinese, english = _chinese_parts(m.group(1))
        if not chinese:
            continue
        left = segment[previous_end:m.start()]
        left_words = left.split()
        window = " ".join(left_words[-10:])
        near = [t for t, _, _ in find_terms(window)]
        adjacent = None
        before = find_terms(window)
        if before and not window[before[-1][2]:].strip(" ,:;\"'“”‘’"):
            adjacent = before[-1][0]
        for part in english:
            inside = find_terms(part)
            near += [t for t, _, _ in inside]
            if len(inside) == 1 and not part[:inside[0][1]].strip(" the") and not part[inside[0][2]:].strip():
                adjacent = adjacent or inside[0][0]
        pairs.append(Pair(where, notebook, tuple(chinese), tuple(near), adjacent,
                          " ".join(left_words[-6:]), m.start(), m.end(), segment))
        previous_end = m.end()
    return pairs


def _cells(path: Path):
    nb = nbformat.read(str(path), as_version=4)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown" and not cell.metadata.get("dlcourse", {}).get("role"):
            yield i, cell.source


@lru_cache(maxsize=None)
def notebook_pairs(path: Path) -> tuple[Pair, ...]:
    return tuple(p for i, src in _cells(path) for seg in prose_segments(src, code=True)
                 for p in pairs_in_segment(seg, f"{path.stem} cell {i}", path.stem))


def pair_problems(pair: Pair) -> list[tuple[str, str, str]]:
    """(term or "?", Chinese, message) for each Chinese part of ``pair`` the glossary does not back."""
    out = []
    for chinese in pair.chinese:
        if any(t.chinese == chinese for t in pair.terms_near):
            continue
        if pair.adjacent is not None:
            out.append((pair.adjacent.english, chinese,
                        f"{pair.where}: '{pair.left} ({chinese})': the glossary writes "
                        f"'{pair.adjacent.english}' as '{pair.adjacent.chinese}' (GLOSSARY.md line {pair.adjacent.line})"))
        else:
            out.append(("?", chinese, f"{pair.where}: '{pair.left} ({chinese})': no glossary term before "
                                      f"'({chinese})'; add the term to lectures/GLOSSARY.md"))
    return out


# ---------------------------------------------------------------------------------------------------
# first use in the lectures


def _paired(term: Term, start: int, end: int, segment: str) -> bool:
    """Is the use of ``term`` at segment[start:end] given its Chinese (inside or right after it)?"""
    for m in PAREN.finditer(segment):
        chinese, _ = _chinese_parts(m.group(1))
        if term.chinese not in chinese:
            continue
        if m.start() < start and end <= m.end():                      # "(the receptive field, 感受野)"
            return True
        gap = segment[end:m.start()]
        if m.start() >= end and len(gap.split()) <= 6 and not re.search(r"[.!?:;]\s", gap + " ") \
                and not PAREN.search(gap) and all(t is not term for t, _, _ in find_terms(gap)):
            return True                                               # "kernel size, stride (卷积核大小, 步长)"
    return False


def lecture_number(path: Path) -> int:
    return int(path.name[:2])


@lru_cache(maxsize=None)
def first_uses() -> dict[str, tuple[Path, str, bool, str]]:
    """English term -> (lecture, where, paired, context) of its first checked use in the lectures."""
    out = {}
    for path in LECTURES:
        number = lecture_number(path)
        for i, src in _cells(path):
            for segment in prose_segments(src):
                # quoted text (a paper's title, someone's phrase) is not the lecture's own use of a term
                unquoted = re.sub(r'"[^"]*"|“[^”]*”', lambda m: " " * len(m.group()), segment)
                for term, start, end in find_terms(unquoted):
                    if term.english in out:
                        continue
                    if term.everyday and (term.lecture is None or number < term.lecture):
                        continue
                    paired = _paired(term, start, end, segment)
                    if number == 0 and term.english in LECTURE_00_EXCEPTIONS and not paired:
                        continue   # lecture 00 may give it further down; else the check moves on
                    context = segment[max(0, start - 40):end + 40]
                    out[term.english] = (path, f"{path.stem} cell {i}", paired, context)
    return out


# ---------------------------------------------------------------------------------------------------
# the tests


def test_glossary_is_well_formed():
    """Every row has an English term, a Chinese term and a lecture; no English term appears twice."""
    terms = read_glossary()
    assert len(terms) > 50, "lectures/GLOSSARY.md has (almost) no table rows"
    seen = {}
    problems = []
    for t in terms:
        for spelling in t.spellings:
            key = " ".join(re.split(r"[\s\-‐–/]+", _canon(spelling)))
            if key in seen:
                problems.append(f"line {t.line}: '{spelling}' is already on line {seen[key]}: one rendering per term")
            seen[key] = t.line
        if t.lecture is not None and not any(lecture_number(p) == t.lecture for p in LECTURES):
            problems.append(f"line {t.line}: '{t.english}': there is no lecture {t.lecture:02d}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", LECTURES, ids=lambda p: p.name)
def test_lecture_agrees_with_glossary(path):
    """Every "term (中文)" pair in the lecture uses the glossary's rendering, and the term is in it."""
    problems = [msg for pair in notebook_pairs(path) for _, _, msg in pair_problems(pair)]
    assert not problems, "\n".join(problems)


def test_first_use_in_the_lectures_has_its_chinese():
    """Read in course order, each glossary term's first use in a lecture carries its Chinese."""
    uses = first_uses()
    problems = []
    for t in _glossary():
        use = uses.get(t.english)
        if use is None:
            if t.lecture is not None:
                problems.append(f"'{t.english}': GLOSSARY.md line {t.line} says lecture {t.lecture:02d}, "
                                f"but no lecture uses it" + (f" from lecture {t.lecture:02d} on" if t.everyday else ""))
            continue
        path, where, paired, context = use
        if not paired:
            problems.append(f"{where}: first use of '{t.english}' without '({t.chinese})': …{context}…")
        if t.lecture is None and not t.everyday:
            problems.append(f"'{t.english}': GLOSSARY.md line {t.line} says no lecture uses it, but {where} does")
        elif t.lecture is not None and lecture_number(path) != t.lecture:
            problems.append(f"'{t.english}': GLOSSARY.md line {t.line} says lecture {t.lecture:02d}, "
                            f"but its first use is in {where}")
    assert not problems, "\n".join(problems)


def assignment_problems() -> tuple[list[str], set[tuple[str, str, str]]]:
    """Messages for new disagreements in assignment notebooks, and the exceptions still needed."""
    new, used = [], set()
    for path in ASSIGNMENT_NOTEBOOKS:
        for pair in notebook_pairs(path):
            for term, chinese, msg in pair_problems(pair):
                key = (path.stem, term, chinese)
                if key in ASSIGNMENT_EXCEPTIONS:
                    used.add(key)
                else:
                    new.append(f"{path.parent.parent.name}/{msg}")
    return new, used


def test_assignments_agree_with_glossary():
    """Solutions and released assignments agree with the glossary, apart from the listed exceptions."""
    new, _ = assignment_problems()
    assert not new, "\n".join(new)


def test_assignment_exceptions_are_still_needed():
    """Every entry of ASSIGNMENT_EXCEPTIONS still matches a notebook: fixed ones must be deleted."""
    _, used = assignment_problems()
    stale = sorted(ASSIGNMENT_EXCEPTIONS - used)
    assert not stale, "delete these fixed entries from ASSIGNMENT_EXCEPTIONS:\n" + "\n".join(map(str, stale))


if __name__ == "__main__":   # a report for authors: python tests/test_glossary.py
    for path in LECTURES:
        for pair in notebook_pairs(path):
            for _, _, msg in pair_problems(pair):
                print("LECTURE   ", msg)
    for t in _glossary():
        use = first_uses().get(t.english)
        if use and not use[2]:
            print("FIRST USE ", f"{use[1]}: '{t.english}' without '({t.chinese})': …{use[3]}…")
        elif use and t.lecture != lecture_number(use[0]):
            print("COLUMN    ", f"'{t.english}' line {t.line}: lecture {t.lecture} -> {use[1]}")
        elif not use and t.lecture is not None:
            print("COLUMN    ", f"'{t.english}' line {t.line}: lecture {t.lecture} but unused")
    new, used = assignment_problems()
    for msg in new:
        print("ASSIGNMENT", msg)
    sys.exit(1 if new else 0)
