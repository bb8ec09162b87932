"""The dashboard's web server (aiohttp): the page and its vendored scripts, `GET /api/fleet` (the fleet as JSON) and
`GET /api/events` (the same, pushed after every refresh as server-sent events). Every route is a GET: nothing it
serves changes an agent."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import signal
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from edge_agent.fleet.dashboard.feed import FeedConfig, FleetFeed
from edge_agent.transport.tls import ClusterTls

STATIC = Path(__file__).with_name("static")
KEEPALIVE_S = 15.0  # a comment line on an idle event stream, so proxies and browsers keep it open
FINISH_S = 30.0  # the longest a refresh in progress takes to end: a few calls' timeouts
# The page loads only what this server serves: no CDN, no inline script, nothing framed elsewhere.
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                           "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; form-action 'none'")
FEED = web.AppKey("feed", FleetFeed)
LOOPBACK_ONLY = web.AppKey("loopback_only", bool)


def dashboard_app(feed: FleetFeed, loopback_only: bool) -> web.Application:
    """The routes, all GET (HEAD too); with `loopback_only`, requests must name the host by IP or `localhost`,
    so a web page elsewhere cannot read the fleet through a DNS name rebound to 127.0.0.1."""
    app = web.Application(middlewares=[_host_guard])
    app[FEED] = feed
    app[LOOPBACK_ONLY] = loopback_only
    app.router.add_get("/", _index)
    app.router.add_get("/api/fleet", _fleet)
    app.router.add_get("/api/events", _events)
    app.router.add_static("/static/", STATIC)
    app.on_response_prepare.append(_security_headers)
    return app


async def serve(config: FeedConfig, tls: ClusterTls | None, host: str, port: int,
                announce: Callable[[str], None]) -> None:
    """Listen on host:port (OSError when it cannot), call `announce(url)`, and serve until SIGINT or SIGTERM or
    until the feed fails (its error is raised, e.g. OSError when mDNS cannot be browsed)."""
    feed = FleetFeed(config, tls)
    runner = web.AppRunner(dashboard_app(feed, ipaddress.ip_address(host).is_loopback), access_log=None,
                           shutdown_timeout=2.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_host, bound_port = runner.addresses[0][:2]
        announce(f"http://{f'[{bound_host}]' if ':' in bound_host else bound_host}:{bound_port}/")
        await _until_stopped(feed)
    finally:
        await feed.close()
        await runner.cleanup()


async def _until_stopped(feed: FleetFeed) -> None:
    """Run the feed until a stop signal, then close it and let it finish; an error of the feed is raised."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    feeding = asyncio.create_task(feed.run())
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({feeding, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        stopping.cancel()
        await feed.close()  # ends an mDNS sweep, the refreshes and every event stream
        await asyncio.wait_for(feeding, FINISH_S)  # raises the feed's own error


@web.middleware
async def _host_guard(request: web.Request,
                      handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    if request.app[LOOPBACK_ONLY] and not _local_host(request.host):
        raise web.HTTPForbidden(text="this dashboard answers only requests for an IP address or localhost\n")
    return await handler(request)


def _local_host(host_header: str) -> bool:
    """Whether a Host header names an IP address or localhost (a DNS name could have been rebound to us)."""
    bracketed = host_header.startswith("[")  # [IPv6]:port
    host = (host_header[1:].split("]", 1)[0] if bracketed else host_header.rsplit(":", 1)[0]).lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"


async def _index(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})


async def _fleet(request: web.Request) -> web.Response:
    document = request.app[FEED].state.document(datetime.now(UTC))
    return web.json_response(document, dumps=_dumps, headers={"Cache-Control": "no-store"})


async def _events(request: web.Request) -> web.StreamResponse:
    """`event: fleet` after every refresh, its history holding only the rounds this stream has not sent yet."""
    feed = request.app[FEED]
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"})
    await response.prepare(request)
    sent: dict[str, int | None] = {}  # agent id -> the last round this stream has sent
    seen = 0  # version 0: no refresh yet, nothing to show
    try:
        while not feed.closed:
            version = await feed.next_version(seen, KEEPALIVE_S)
            if feed.closed:
                break
            if version == seen:
                await response.write(b": keepalive\n\n")
                continue
            seen = version
            document = feed.state.document(datetime.now(UTC), after=sent)
            sent = feed.state.last_rounds()
            await response.write(f"event: fleet\ndata: {_dumps(document)}\n\n".encode())
    except ConnectionResetError:  # the page went away
        pass
    return response


def _dumps(document: Any) -> str:
    return json.dumps(document, separators=(",", ":"))
