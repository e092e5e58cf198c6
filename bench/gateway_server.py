"""A fast loopback XML-family gateway for benchmarks, run in its own process.

It answers every POST with the spec's success reply, so the client side is what is measured.
``python -m bench.gateway_server PORT``
"""

from __future__ import annotations

import sys

from aiohttp import web

SUCCESS = (
    b'<?xml version="1.0" encoding="iso-8859-1"?>\n<root>\n<msg_id>1</msg_id>\n<status>\n'
    b"<statusline>\n<code>0</code>\n<description>SMS afsendt.</description>\n</statusline>\n"
    b"</status>\n</root>\n"
)


async def reply(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(body=SUCCESS, content_type="text/xml", charset="iso-8859-1")


def main() -> None:
    app = web.Application()
    app.router.add_post("/", reply)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)


if __name__ == "__main__":
    main()
