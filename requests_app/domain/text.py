"""What people may type: free text (comments, justifications) and single-line fields.

The use cases check these, so the API, the pages, the admin and the commands refuse the same
input with the same words. A single-line field (a ticket reference, a token's name) ends up in
e-mail subjects, log lines and CSV cells: a line break there forges a header or a log line, so
every control character is refused. Free text may hold line breaks and tabs, nothing else of
that kind (a NUL byte, for one, breaks PostgreSQL text and most tools downstream).
"""

from __future__ import annotations

import unicodedata

MAX_TEXT = 4000  # comments and justifications
MAX_LINE = 100  # ticket references and names

_TEXT_BREAKS = frozenset("\n\r\t")
# Unicode's own line and paragraph separators break a line as surely as CR/LF do.
_LINE_BREAKING = frozenset({"Cc", "Zl", "Zp"})


def _describe(char: str) -> str:
    name = unicodedata.name(char, "")
    return f"U+{ord(char):04X}" + (f" {name}" if name else "")


def text_problem(value: str, *, max_length: int = MAX_TEXT) -> str | None:
    """Why `value` is not acceptable free text, or None."""
    if len(value) > max_length:
        return f"at most {max_length} characters are allowed (this has {len(value)})"
    for char in value:
        if unicodedata.category(char) == "Cc" and char not in _TEXT_BREAKS:
            return f"contains a control character ({_describe(char)})"
    return None


def line_problem(value: str, *, max_length: int = MAX_LINE) -> str | None:
    """Why `value` is not an acceptable single-line value, or None."""
    if len(value) > max_length:
        return f"at most {max_length} characters are allowed (this has {len(value)})"
    for char in value:
        if unicodedata.category(char) in _LINE_BREAKING:
            return f"must be a single line without control characters (it contains {_describe(char)})"
    return None


def one_line(value: str) -> str:
    """`value` with every line-breaking or control character replaced by a space.

    For text the portal writes into a header from rows made before these checks existed.
    """
    return "".join(" " if unicodedata.category(c) in _LINE_BREAKING else c for c in value)
