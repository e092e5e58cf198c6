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


@dataclass(frozen=True)
class LoadedConfig:
    config: ConfigFile
    lines: dict[KeyPath, int]

    def error(self, path: KeyPath, message: str) -> ConfigError:
        return ConfigError(message, key=dotted(path), line=line_of(self.lines, path))


def load_config(
    path: Path, environ: Mapping[str, str], known_agencies: Iterable[str] = ()
) -> LoadedConfig:
    """Parse, validate and check references; raises ``ConfigError`` on the first problem found.

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

    try:
        config = ConfigFile.model_validate(document)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        loc = tuple(first["loc"])
        # Union members and model validators add a segment that is not a TOML key.
        loc_keys = tuple(p for p in loc if isinstance(p, int) or p in _keys_at(document, loc))
        message = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            message = f"unknown key {loc[-1]!r}"
        elif first["type"] == "missing":
            message = f"required key {loc[-1]!r} is missing"
        elif first["type"] == "literal_error" and "driver" in loc:
            message = f"unknown SMS driver; {message.lower()}"
        raise ConfigError(message, key=dotted(loc), line=line_of(lines, loc_keys or loc)) from exc
    loaded = LoadedConfig(config, lines)

    for key_path, value in _strings(document):
        try:
            resolve(value, environ)
        except ConfigError as exc:
            raise loaded.error(key_path, str(exc)) from None

    agencies = {a.id for a in config.agencies} | set(known_agencies)
    for index, source in enumerate(config.import_sources):
        if source.agency not in agencies:
            raise loaded.error(
                ("import_sources", index, "agency"),
                f"agency {source.agency!r} is neither in this file nor in the database",
            )
    return loaded


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
