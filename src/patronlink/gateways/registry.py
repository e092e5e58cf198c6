"""The registry of SMS drivers: the one place that maps a configured driver name to a class.

The composition root calls ``build_gateway`` with an agency's ``GatewayConfig``; services only see
the ``SmsGateway`` port. Every entry of ``DRIVERS`` runs through the same contract test.
"""

from __future__ import annotations

from typing import Protocol

import aiohttp

from patronlink.domain.errors import ConfigError
from patronlink.gateways.base import GatewayConfig, SmsGateway
from patronlink.gateways.console import ConsoleGateway
from patronlink.gateways.gatewayapi import GatewayApiGateway
from patronlink.gateways.kannel import KannelGateway
from patronlink.gateways.linkmobility import LinkMobilityGateway
from patronlink.gateways.xml import XmlGateway


class DriverClass(Protocol):
    """How every driver class is constructed."""

    def __call__(
        self, config: GatewayConfig, client: aiohttp.ClientSession | None = None
    ) -> SmsGateway: ...


DRIVERS: dict[str, DriverClass] = {
    "xml": XmlGateway,
    "linkmobility": LinkMobilityGateway,
    "kannel": KannelGateway,
    "console": ConsoleGateway,
    "gatewayapi": GatewayApiGateway,
}


def build_gateway(config: GatewayConfig, client: aiohttp.ClientSession | None = None) -> SmsGateway:
    """A driver for ``config.driver``; ``client`` is a shared aiohttp session to borrow (optional).

    An unknown driver name is a ``ConfigError`` naming the known ones.
    """
    try:
        driver = DRIVERS[config.driver]
    except KeyError:
        known = ", ".join(sorted(DRIVERS))
        raise ConfigError(
            f"unknown SMS driver {config.driver!r} (known: {known})", key="sms.driver"
        ) from None
    return driver(config, client)


def can_schedule(driver: str) -> bool:
    """Whether the named driver's gateway can hold a text until a given time."""
    return bool(getattr(DRIVERS.get(driver), "can_schedule", False))
