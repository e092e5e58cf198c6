"""One composition root: only ``bootstrap.py`` reads the process environment; settings and the
container are built from the mapping they are given."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from patronlink import bootstrap
from patronlink.bootstrap import build_container
from patronlink.domain.errors import ConfigError
from patronlink.services.secrets import resolve
from patronlink.settings import Settings

SRC = Path(bootstrap.__file__).resolve().parent
READS = re.compile(r"\bos\.environ\b|\bgetenv\b|\bfrom\s+os\s+import\b[^\n]*\benviron\b")

# Reads outside the composition root, each with its reason. Keep this list short.
ALLOWED = {
    # The reader child process inherits the parent's environment plus PYTHONPATH: that is the
    # environment of a process, not configuration patronlink reads.
    "sources/reader_process.py",
}


def test_only_bootstrap_reads_the_environment() -> None:
    readers = {
        path.relative_to(SRC).as_posix()
        for path in SRC.rglob("*.py")
        if READS.search(path.read_text(encoding="utf-8"))
    }
    assert "bootstrap.py" in readers  # the check finds what it looks for
    assert readers - ALLOWED == {"bootstrap.py"}
    assert len(READS.findall((SRC / "bootstrap.py").read_text(encoding="utf-8"))) == 1


def test_settings_come_from_the_mapping_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATRONLINK_PORT", "9001")
    monkeypatch.setenv("PATRONLINK_COOKIE_SECURE", "true")
    settings = Settings.from_environ(
        {"PATRONLINK_HOST": "10.0.0.1", "patronlink_metrics_public": "1"},
        database_url="postgres://db.example/patrons",
    )
    assert settings.host == "10.0.0.1"
    assert settings.metrics_public is True
    # Nothing of the process's own environment leaks in.
    assert settings.port == 8000
    assert settings.cookie_secure is False
    assert settings.database_url == "postgresql+psycopg://db.example/patrons"
    # Read the way Settings() reads the process's environment.
    same = Settings.from_environ({"PATRONLINK_PORT": "9001", "PATRONLINK_COOKIE_SECURE": "true"})
    assert same == Settings()
    assert Settings.from_environ({}) != Settings()
    with pytest.raises(ValueError, match="port"):
        Settings.from_environ({"PATRONLINK_PORT": "0"})


def test_the_container_carries_one_environment(tmp_path: Path) -> None:
    environ = {
        "PATRONLINK_DATABASE_URL": f"sqlite:///{tmp_path / 'p.db'}",
        "KANNEL_PASSWORD": "s3cret",
    }
    container = build_container(environ, application_name="patronlink test")
    assert container.environ is environ
    assert container.settings.sqlite_path() == tmp_path / "p.db"
    assert resolve("${KANNEL_PASSWORD}", container.environ) == "s3cret"
    with pytest.raises(ConfigError, match="OTHER"):
        resolve("${OTHER}", container.environ)
    # The database is built on first use, once.
    assert not (tmp_path / "p.db").exists()
    db = container.database
    assert container.database is db
    container.close()
