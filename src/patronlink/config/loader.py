"""Read and validate a configuration file; every error names its key and line."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydantic

from patronlink.config.locate import Path as KeyPath
from patronlink.config.locate import dotted, key_lines, line_of
from patronlink.config.schema import ConfigFile
from patronlink.domain.errors import ConfigError
from patronlink.services.secrets import resolve

MAX_CONFIG_BYTES = 4 * 1024 * 1024
_TOML_POSITION = re.compile(r"\(at line (\d+), column \d+\)")


class ConfigProblems(ConfigError):
    """Every problem found in one file, in file order: one run of ``--check`` shows them all."""

    def __init__(self, problems: list[ConfigError]) -> None:
        ordered = sorted(problems, key=lambda p: (p.line or 0, p.key or ""))
        super().__init__(f"{len(ordered)} problems", key=None, line=ordered[0].line)
        self.problems = ordered

    def __str__(self) -> str:
        return f"{len(self.problems)} problems:\n" + "\n".join(f"  {p}" for p in self.problems)


def _raise(problems: list[ConfigError]) -> None:
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise ConfigProblems(problems)


@dataclass(frozen=True)
class LoadedConfig:
    config: ConfigFile
    lines: dict[KeyPath, int]

    def error(self, path: KeyPath, message: str) -> ConfigError:
        return ConfigError(message, key=dotted(path), line=line_of(self.lines, path))


def load_config(
    path: Path, environ: Mapping[str, str], known_agencies: Iterable[str] = ()
) -> LoadedConfig:
    """Parse, validate and check references; raises ``ConfigError`` naming every problem found.

    A file that is not TOML stops at the parse error; past that, the schema, the ``${VAR}``
    references and the agencies that import sources name are all checked, and more than one
    problem is raised as ``ConfigProblems`` listing each with its key and line.

    ``known_agencies``: agency ids already in the database, which import sources may name.
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path} is larger than {MAX_CONFIG_BYTES // (1024 * 1024)} MiB")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError("the file is not valid UTF-8", line=line) from exc
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = _TOML_POSITION.search(str(exc))
        message = _TOML_POSITION.sub("", str(exc)).strip()
        raise ConfigError(
            f"not valid TOML: {message}", line=int(match.group(1)) if match else None
        ) from exc
    lines = key_lines(text)

    problems: list[ConfigError] = []
    config: ConfigFile | None = None
    try:
        config = ConfigFile.model_validate(document)
    except pydantic.ValidationError as exc:
        seen: set[tuple[str | None, int | None]] = set()
        for error in exc.errors():
            found = _problem(error, document, lines)
            if (found.key, found.line) not in seen:  # a union reports each member's view
                seen.add((found.key, found.line))
                problems.append(found)

    problems += _string_problems(document, environ, lines)

    if config is not None:
        agencies = {a.id for a in config.agencies} | set(known_agencies)
        for index, source in enumerate(config.import_sources):
            if source.agency not in agencies:
                where: KeyPath = ("import_sources", index, "agency")
                problems.append(
                    ConfigError(
                        f"agency {source.agency!r} is neither in this file nor in the database",
                        key=dotted(where),
                        line=line_of(lines, where),
                    )
                )
    _raise(problems)
    assert config is not None  # no problem was found, so it validated
    return LoadedConfig(config, lines)


def _string_problems(
    document: Any, environ: Mapping[str, str], lines: dict[KeyPath, int]
) -> list[ConfigError]:
    """Every string value that cannot be used: a ``${VAR}`` that is not set, or a NUL."""
    problems = []
    for key_path, value in _strings(document):
        message = None
        if "\x00" in value:  # TOML's \u0000: PostgreSQL cannot store it, and no setting needs it
            message = "contains a NUL character (\\u0000), which no setting can hold"
        else:
            try:
                resolve(value, environ)
            except ConfigError as exc:
                message = str(exc)
        if message is not None:
            problems.append(
                ConfigError(message, key=dotted(key_path), line=line_of(lines, key_path))
            )
    return problems


def _problem(error: Any, document: Any, lines: dict[KeyPath, int]) -> ConfigError:
    loc = tuple(error["loc"])
    # Union members and model validators add a segment that is not a TOML key.
    loc_keys = tuple(p for p in loc if isinstance(p, int) or p in _keys_at(document, loc))
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = f"unknown key {loc[-1]!r}"
    elif error["type"] == "missing":
        message = f"required key {loc[-1]!r} is missing"
    elif error["type"] == "literal_error" and "driver" in loc:
        message = f"unknown SMS driver; {message.lower()}"
    return ConfigError(message, key=dotted(loc), line=line_of(lines, loc_keys or loc))


def _keys_at(document: Any, loc: tuple[Any, ...]) -> set[str]:
    """Every key name that appears along ``loc`` in the document (to drop pydantic-only parts)."""
    names: set[str] = set()
    node = document
    for part in loc:
        if isinstance(node, dict):
            names.update(node)
            node = node.get(part) if isinstance(part, str) else None
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            break
    return names


def _strings(node: Any, path: KeyPath = ()) -> Iterable[tuple[KeyPath, str]]:
    if isinstance(node, str):
        yield path, node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _strings(value, (*path, index))
