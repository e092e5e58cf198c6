"""A scripted in-process gateway for dispatcher logic tests (real HTTP tests use the servers)."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from patronlink.domain.errors import GatewayError
from patronlink.gateways.base import GatewayConfig, OutgoingSms, SendResult

Reply = SendResult | GatewayError | Callable[[OutgoingSms], SendResult]


class ScriptedGateway:
    name = "scripted"
    can_schedule = True

    def __init__(self, default: Reply | None = None, delay: float = 0.0) -> None:
        self.script: deque[Reply] = deque()
        self.default: Reply = default or SendResult(gateway_message_id="ok", code="0")
        self.sent: list[OutgoingSms] = []
        self.configs: list[GatewayConfig] = []
        self.delay = delay
        self.in_flight = 0
        self.max_in_flight = 0

    def factory(self, config: GatewayConfig) -> ScriptedGateway:
        self.configs.append(config)
        return self

    async def send(self, message: OutgoingSms) -> SendResult:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            reply = self.script.popleft() if self.script else self.default
            self.sent.append(message)
            if isinstance(reply, GatewayError):
                raise reply
            if callable(reply):
                return reply(message)
            return reply
        finally:
            self.in_flight -= 1

    async def aclose(self) -> None:
        return None
