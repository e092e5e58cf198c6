"""The composition root: settings in, engine and database out. Tests build their own."""

from __future__ import annotations

from patronlink.settings import Settings
from patronlink.storage.database import Database
from patronlink.storage.engine import make_engine


def build_database(settings: Settings, application_name: str = "patronlink") -> Database:
    return Database(make_engine(settings, application_name))
