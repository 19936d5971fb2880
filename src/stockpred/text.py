"""Text from users or a shared store made safe to print: control characters shown escaped."""

from __future__ import annotations

import unicodedata

# Cc: C0/C1 controls (newline, ESC of colour codes); Cf: format characters (bidi overrides
# that reorder a line); Zl/Zp: line and paragraph separators
UNPRINTABLE = {"Cc", "Cf", "Zl", "Zp"}


def printable(text: object) -> str:
    """``text`` with every control or format character escaped (``\\n``, ``\\x1b``, ``\\u202e``),
    so a run name cannot forge or recolour a line of the terminal."""
    out = []
    for char in str(text):
        if unicodedata.category(char) in UNPRINTABLE:
            escaped = char.encode("unicode_escape").decode("ascii")
            out.append(escaped if escaped != char else f"\\x{ord(char):02x}")
        else:
            out.append(char)
    return "".join(out)
