"""Find the line of a key in a TOML document, for error messages that point at the file.

``tomllib`` keeps no positions, so this scanner replays the document's table headers and keys and
records the line on which each path (``("agencies", 0, "sms", "driver")``) is defined. Values
inside inline tables and multi-line arrays are located at their key's line.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

Path = tuple[str | int, ...]

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*(\]\]?)\s*(#.*)?$")
_KEY = re.compile(
    r"""^\s*((?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*'))*)\s*="""
)
_SEGMENT = re.compile(r"""[A-Za-z0-9_-]+|"[^"]*"|'[^']*'""")


def _segments(dotted: str) -> list[str]:
    return [s.strip("\"'") for s in _SEGMENT.findall(dotted)]


def key_lines(document: str) -> dict[Path, int]:
    lines: dict[Path, int] = {}
    array_counts: dict[Path, int] = {}
    table: Path = ()
    depth = 0  # open brackets/braces of a multi-line value: keys inside belong to it
    for number, line in enumerate(document.splitlines(), start=1):
        stripped = line.strip()
        if depth > 0:
            depth += _balance(stripped)
            continue
        if not stripped or stripped.startswith("#"):
            continue
        header = _HEADER.match(line)
        if header and header.group(1) == header.group(3)[::-1].replace("]", "["):
            names = _segments(header.group(2))
            resolved: list[str | int] = []
            for name in names[:-1] if header.group(1) == "[[" else names:
                resolved.append(name)
                if tuple(resolved) in array_counts:
                    resolved.append(array_counts[tuple(resolved)] - 1)
            if header.group(1) == "[[":
                resolved.append(names[-1])
                key = tuple(resolved)
                array_counts[key] = array_counts.get(key, 0) + 1
                resolved.append(array_counts[key] - 1)
            table = tuple(resolved)
            lines.setdefault(table, number)
            continue
        assignment = _KEY.match(line)
        if assignment:
            path = table + tuple(_segments(assignment.group(1)))
            lines.setdefault(path, number)
            depth = _balance(line[assignment.end() :])
    return lines


def _balance(text: str) -> int:
    """Net open brackets, ignoring those inside strings and comments (good enough for config)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'[^\']*\'', "", text)
    text = text.split("#", 1)[0]
    return text.count("[") + text.count("{") - text.count("]") - text.count("}")


def line_of(lines: dict[Path, int], path: Sequence[str | int]) -> int | None:
    """The line of ``path``, or of its nearest located ancestor."""
    parts = tuple(path)
    while parts:
        if parts in lines:
            return lines[parts]
        parts = parts[:-1]
    return None


def dotted(path: Sequence[str | int]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out
