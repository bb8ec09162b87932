"""The dashboard's web server on a real socket, watching a peer that never answers: only GET routes, requests for
a DNS name refused on loopback, the page's assets served by itself under a policy that allows nothing else, and the
fleet (here: one board gone) in `/api/fleet` and on the event stream."""

import asyncio
import json
from collections.abc import Awaitable, Callable

from aiohttp.test_utils import TestClient, TestServer

from edge_agent.agent.launcher import free_loopback_ports
from edge_agent.discovery.mdns import SERVICE_TYPE
from edge_agent.fleet.dashboard.feed import FeedConfig, FleetFeed
from edge_agent.fleet.dashboard.server import CONTENT_SECURITY_POLICY, STATIC, dashboard_app

Check = Callable[[TestClient, str], Awaitable[None]]  # the client and the silent peer's address


def _serve(check: Check, loopback_only: bool = True) -> None:
    """Serve a dashboard watching one --peers address nobody listens on, run `check`, stop everything."""
    port, = free_loopback_ports(1)
    async def main() -> None:
        feed = FleetFeed(FeedConfig(None, SERVICE_TYPE, (("127.0.0.1", port),), sweep_s=1.0, interval_s=0.5), None)
        async with TestServer(dashboard_app(feed, loopback_only), host="127.0.0.1") as server, \
                TestClient(server) as client:
            feeding = asyncio.create_task(feed.run())
            try:
                await check(client, f"127.0.0.1:{port}")
            finally:
                await feed.close()
                await asyncio.wait_for(feeding, 10)
    asyncio.run(main())


def test_every_route_only_reads() -> None:
    async def check(client: TestClient, _: str) -> None:
        methods = {route.method for route in client.app.router.routes()} if client.app else set()
        assert methods == {"GET", "HEAD"}
        for path in ("/", "/api/fleet", "/api/events", "/static/dashboard.js"):
            for method in ("POST", "PUT", "DELETE", "PATCH"):
                answer = await client.request(method, path)
                assert answer.status == 405, (method, path)
    _serve(check)


def test_on_loopback_only_requests_for_an_address_or_localhost_are_answered() -> None:
    async def check(client: TestClient, _: str) -> None:
        for host, status in (("127.0.0.1:8080", 200), ("localhost:8080", 200), ("[::1]:8080", 200),
                             ("fleet.example.com:8080", 403), ("attacker.example", 403)):
            answer = await client.get("/api/fleet", headers={"Host": host})
            assert answer.status == status, host
    _serve(check)

    async def anywhere(client: TestClient, _: str) -> None:
        assert (await client.get("/api/fleet", headers={"Host": "ops-laptop.lan:8080"})).status == 200
    _serve(anywhere, loopback_only=False)


def test_the_page_and_its_vendored_scripts_come_from_the_dashboard_under_a_self_only_policy() -> None:
    async def check(client: TestClient, _: str) -> None:
        page = await client.get("/")
        assert page.status == 200 and page.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
        html = await page.text()
        assert "http://" not in html and "https://" not in html
        for path in ("vendor/uplot/uPlot.iife.min.js", "vendor/uplot/uPlot.min.css", "dashboard.js",
                     "dashboard.css"):
            assert f"/static/{path}" in html
            asset = await client.get(f"/static/{path}")
            assert asset.status == 200 and await asset.read() == (STATIC / path).read_bytes()
            assert asset.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
        assert (await client.get("/static/vendor/uplot/LICENSE")).status == 200
        assert (await client.get("/static/../server.py")).status in (403, 404)
    _serve(check)


def test_a_peer_that_never_answers_is_gone_in_the_json_and_on_the_event_stream() -> None:
    async def check(client: TestClient, silent: str) -> None:
        stream = await client.get("/api/events")
        assert stream.headers["Content-Type"] == "text/event-stream"
        lines = []
        while not lines or lines[-1] != "":
            lines.append((await asyncio.wait_for(stream.content.readline(), 15)).decode().rstrip("\n"))
        assert lines[0] == "event: fleet" and lines[1].startswith("data: ")
        pushed = json.loads(lines[1][len("data: "):])
        fetched = await (await client.get("/api/fleet")).json()
        for document in (pushed, fetched):
            assert document["agents"] == [] and document["discovery"] == "peers"
            gone, = document["gone"]
            assert (gone["id"], gone["address"]) == (None, silent) and "nothing answers" in gone["reason"]
            assert document["graph"]["nodes"] == [{"id": silent, "state": "gone", "address": silent,
                                                   "since": gone["since"], "reason": gone["reason"]}]
        stream.close()
    _serve(check)
