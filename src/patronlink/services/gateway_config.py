"""From an agency's stored ``[agencies.sms]`` settings to a driver's configuration.

Secrets are resolved here, at use time, from ``${VAR}`` references; they are never stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from patronlink.domain.agency import Agency
from patronlink.gateways.base import GatewayConfig
from patronlink.services.secrets import resolve


def sms_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    sms = settings.get("sms") or {"driver": "console"}
    return dict(sms)


def gateway_config(
    agency: Agency, sms: Mapping[str, Any], environ: Mapping[str, str], public_url: str = ""
) -> GatewayConfig:
    """Build the driver configuration; ``ConfigError`` when a referenced variable is not set.

    ``public_url`` is where providers reach this server (``Settings.callback_base``): drivers
    build their callback URLs from it.
    """

    def secret(key: str) -> str:
        value = sms.get(key)
        return resolve(str(value), environ) if value else ""

    return GatewayConfig(
        driver=str(sms.get("driver", "console")),
        url=str(sms.get("url") or ""),
        username=secret("username"),
        password=secret("password"),
        platform_id=str(sms.get("platform_id") or ""),
        platform_partner_id=str(sms.get("platform_partner_id") or ""),
        source=str(sms.get("source") or ""),
        country_code=agency.country_code,
        timezone=agency.timezone,
        connect_timeout=float(sms.get("connect_timeout", 5.0)),
        read_timeout=float(sms.get("read_timeout", 15.0)),
        agency_id=agency.id,
        public_url=public_url,
        token=secret("token"),
        webhook_secret=secret("webhook_secret"),
        dlr_gate_id=str(sms.get("dlr_gate_id") or ""),
        source_ton=str(sms.get("source_ton") or ""),
    )
