"""The console driver: logs each message instead of sending it.

It is the development and demo gateway (``make run`` uses it) and the fake that unit tests of the
outbox and dispatcher use: it keeps what it was asked to send in ``sent``, and failures can be
scripted with ``fail_next`` to drive retry and error-queue paths without a network.
"""

from __future__ import annotations

import logging
import uuid
from collections import deque

import aiohttp

from patronlink.domain.errors import GatewayError
from patronlink.gateways.base import GatewayConfig, OutgoingSms, SendResult

logger = logging.getLogger(__name__)


class ConsoleGateway:
    """Logs at INFO and records in ``sent``; ``fail_next`` makes the next sends raise."""

    name = "console"
    # It only logs, so it cannot hold a text until later: in quiet hours the outbox holds it,
    # as for Kannel, and the demo shows what a real gateway without scheduling would do.
    can_schedule = False

    def __init__(self, config: GatewayConfig, client: aiohttp.ClientSession | None = None) -> None:
        # ``client`` is accepted so that every driver is built the same way; nothing is sent.
        del client
        self._config = config
        self.sent: list[OutgoingSms] = []
        self._failures: deque[GatewayError] = deque()
        self.closed = False

    def fail_next(self, *errors: GatewayError) -> None:
        """Make the next ``len(errors)`` sends raise these errors, in order."""
        self._failures.extend(errors)

    async def send(self, message: OutgoingSms) -> SendResult:
        if self._failures:
            raise self._failures.popleft()
        self.sent.append(message)
        message_id = f"console-{uuid.uuid4().hex}"
        when = message.send_at.isoformat() if message.send_at else "now"
        logger.info(
            "console gateway: SMS %s to %s at %s: %s", message_id, message.to, when, message.text
        )
        return SendResult(gateway_message_id=message_id, description="logged to console")

    async def aclose(self) -> None:
        self.closed = True
