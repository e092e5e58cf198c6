"""The composition root: the one place that reads the process environment and builds what the
entry points run on (settings, database, clock, gateway factory). The CLI builds a ``Container``
once; ``serve`` hands its parts to ``web.app.create_app``, ``worker`` to
``worker.runner.run_worker``. Tests build their own parts and pass them in the same way."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from patronlink.gateways.base import GatewayConfig, SmsGateway
from patronlink.gateways.registry import build_gateway
from patronlink.services.clock import Clock, system_clock
from patronlink.settings import Settings
from patronlink.storage.database import Database
from patronlink.storage.engine import make_engine

GatewayFactory = Callable[[GatewayConfig], SmsGateway]


def process_environ() -> Mapping[str, str]:
    """The process's environment, read here and nowhere else in patronlink. Settings come
    from its ``PATRONLINK_*`` variables, ``${VAR}`` secrets of the configuration from the rest."""
    return os.environ


def build_database(settings: Settings, application_name: str = "patronlink") -> Database:
    return Database(make_engine(settings, application_name))


@dataclass(frozen=True)
class Container:
    """What a process runs on. The database is built on first use, so ``--help`` (and a
    command that fails before it needs one) opens no engine."""

    settings: Settings
    environ: Mapping[str, str]
    clock: Clock = system_clock
    gateways: GatewayFactory = build_gateway
    application_name: str = "patronlink"
    _built: dict[str, Database] = field(default_factory=dict, repr=False, compare=False)

    @property
    def database(self) -> Database:
        if "db" not in self._built:
            self._built["db"] = build_database(self.settings, self.application_name)
        return self._built["db"]

    def close(self) -> None:
        db = self._built.pop("db", None)
        if db is not None:
            db.dispose()


def build_container(
    environ: Mapping[str, str] | None = None,
    *,
    application_name: str = "patronlink",
    database_url: str | None = None,
) -> Container:
    """The container of a process, from ``environ`` (the process's environment by default);
    ``database_url`` (``--database-url``) wins over ``PATRONLINK_DATABASE_URL``."""
    env = process_environ() if environ is None else environ
    overrides = {"database_url": database_url} if database_url else {}
    return Container(
        settings=Settings.from_environ(env, **overrides),
        environ=env,
        application_name=application_name,
    )
