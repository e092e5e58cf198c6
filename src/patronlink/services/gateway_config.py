"""From an agency's stored ``[agencies.sms]`` settings to a driver's configuration.

Secrets are resolved here, at use time, from ``${VAR}`` references; they are never stored.
"""

from __future__ import annotations

from collections.abc import Mapping

from patronlink.config.schema import SmsConfig
from patronlink.domain.agency import Agency
from patronlink.gateways.base import GatewayConfig
from patronlink.services.secrets import resolve


def gateway_config(
    agency: Agency, sms: SmsConfig, environ: Mapping[str, str], public_url: str = ""
) -> GatewayConfig:
    """Build the driver configuration; ``ConfigError`` when a referenced variable is not set.

    ``public_url`` is where providers reach this server (``Settings.callback_base``): drivers
    build their callback URLs from it.
    """

    def secret(value: str | None) -> str:
        return resolve(value, environ) if value else ""

    return GatewayConfig(
        driver=sms.driver,
        url=sms.url or "",
        username=secret(sms.username),
        password=secret(sms.password),
        platform_id=sms.platform_id or "",
        platform_partner_id=sms.platform_partner_id or "",
        source=sms.source or "",
        country_code=agency.country_code,
        timezone=agency.timezone,
        connect_timeout=sms.connect_timeout,
        read_timeout=sms.read_timeout,
        agency_id=agency.id,
        public_url=public_url,
        token=secret(sms.token),
        webhook_secret=secret(sms.webhook_secret),
        dlr_gate_id=sms.dlr_gate_id or "",
        source_ton=sms.source_ton or "",
    )
