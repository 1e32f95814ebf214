"""A fault-injecting proxy between the pods and the real API server.

It terminates TLS with the API server's own certificate (so in-cluster clients trust it
unchanged), forwards each request with the caller's own credentials (RBAC still
applies), and injects the faults that clients of a real API server must survive, at
random with a fixed seed and up to a budget:

* writes (PATCH, PUT): 409 Conflict, without applying them;
* any non-watch request: 429 Too Many Requests (Retry-After: 1) or 500, not applied;
  a stall of several seconds before it is forwarded; or a lost answer: applied, then
  the connection is dropped before the client reads the result;
* watches: a 400 (scripted once, for the operator), an ERROR event with 410 Gone (the client must list again), a stream cut after
  a few seconds, or a stream that sends nothing for a while and then ends.

``injected`` counts what was done, so a test can show the faults really happened.
"""
from __future__ import annotations

import asyncio
import json
import random
import ssl
import threading
from collections import Counter
from dataclasses import dataclass

import aiohttp
from aiohttp import web

HOP_HEADERS = {"host", "content-length", "transfer-encoding", "connection", "keep-alive"}


@dataclass
class FaultPlan:
    write_conflict: float = 0.05
    throttle: float = 0.04
    server_error: float = 0.04
    stall: float = 0.02
    lost_answer: float = 0.02
    watch_gone: float = 0.15
    watch_cut: float = 0.15
    watch_stall: float = 0.05
    stall_seconds: tuple[float, float] = (2.0, 8.0)
    # The first watches get these faults in this order (watches are few and long, so
    # chance alone may leave a kind untried), then chance decides.
    # "kind@agent" applies to the first watch of a client whose User-Agent starts with
    # agent: a 400 on the operator's (kopf's) first watch is a failure kopf does not
    # retry by itself (as the float timeoutSeconds was); the operator must list and
    # watch again without exiting.
    first_watches: tuple[str, ...] = ("watch_rejected@kopf", "watch_gone", "watch_cut", "watch_stall",
                                      "watch_gone", "watch_cut")
    max_faults: int = 400
    seed: int = 1


class FaultProxy:
    def __init__(self, upstream_port: int, ca_file: str, cert_file: str, key_file: str, plan: FaultPlan):
        self.upstream = f"https://127.0.0.1:{upstream_port}"
        self.plan = plan
        self.rng = random.Random(plan.seed)
        self.injected: Counter = Counter()
        self._scripted = list(plan.first_watches)
        self.client_ssl = ssl.create_default_context(cafile=ca_file)
        self.server_ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.server_ssl.load_cert_chain(cert_file, key_file)
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, daemon=True, name="fault-proxy")

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> "FaultProxy":
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("the fault proxy did not start")
        return self

    def stop(self) -> None:
        if self._loop and self._stop:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
                                             auto_decompress=False)
        app = web.Application(client_max_size=64 << 20)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=self.server_ssl)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        self._ready.set()
        await self._stop.wait()
        await runner.cleanup()
        await self.session.close()

    # ------------------------------------------------------------------ faults

    def _fault(self, name: str, p: float, agent: str = "") -> bool:
        if sum(self.injected.values()) >= self.plan.max_faults:
            return False
        if name.startswith("watch_") and self._scripted:
            kind, _, who = self._scripted[0].partition("@")
            if kind != name or not agent.startswith(who):
                return False
            self._scripted.pop(0)
        elif self.rng.random() >= p:
            return False
        self.injected[name] += 1
        return True

    @staticmethod
    def _status(code: int, reason: str, message: str, headers: dict | None = None) -> web.Response:
        body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": f"injected by the test proxy: {message}", "reason": reason, "code": code}
        return web.json_response(body, status=code, headers=headers)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        watch = request.query.get("watch") in ("true", "1")
        method = request.method
        if watch:
            agent = request.headers.get("User-Agent", "")
            kind = next((k for k in ("watch_rejected", "watch_gone", "watch_cut", "watch_stall")
                         if self._fault(k, getattr(self.plan, k, 0.0), agent)), None)
            if kind == "watch_rejected":
                return self._status(400, "BadRequest", 'strconv.ParseInt: parsing "600.0": invalid syntax')
            if kind == "watch_gone":
                response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
                await response.prepare(request)
                event = {"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                                     "reason": "Expired", "code": 410,
                                                     "message": "injected: too old resource version"}}
                await response.write(json.dumps(event).encode() + b"\n")
                await response.write_eof()
                return response
            cut = self.rng.uniform(0.5, 5.0) if kind == "watch_cut" else None
            stall = self.rng.uniform(*self.plan.stall_seconds) if kind == "watch_stall" else None
            return await self._forward_stream(request, cut, stall)
        if method in ("PATCH", "PUT") and self._fault("write_conflict", self.plan.write_conflict):
            return self._status(409, "Conflict", "the object has been modified; please apply your changes "
                                                 "to the latest version and try again")
        if self._fault("throttle", self.plan.throttle):
            return self._status(429, "TooManyRequests", "too many requests", {"Retry-After": "1"})
        if self._fault("server_error", self.plan.server_error):
            return self._status(500, "InternalError", "an internal error")
        if self._fault("stall", self.plan.stall):
            await asyncio.sleep(self.rng.uniform(*self.plan.stall_seconds))
        lose = method != "GET" and self._fault("lost_answer", self.plan.lost_answer)
        status, headers, body = await self._forward(request)
        if lose:
            request.transport.close()  # applied, but the client never hears of it
            raise asyncio.CancelledError()
        return web.Response(status=status, headers=headers, body=body)

    def _headers(self, request: web.Request) -> dict:
        return {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}

    async def _forward(self, request: web.Request):
        data = await request.read()
        # As sent: the Python client posts JSON without a Content-Type (the API server
        # takes JSON then), where aiohttp would add application/octet-stream (a 415).
        skip = () if "Content-Type" in request.headers else ("Content-Type",)
        async with self.session.request(request.method, self.upstream + request.path_qs, data=data or None,
                                        headers=self._headers(request), ssl=self.client_ssl,
                                        skip_auto_headers=skip) as answer:
            body = await answer.read()
            headers = {k: v for k, v in answer.headers.items() if k.lower() not in HOP_HEADERS}
            return answer.status, headers, body

    async def _forward_stream(self, request: web.Request, cut: float | None, stall: float | None):
        loop = asyncio.get_running_loop()
        async with self.session.request(request.method, self.upstream + request.path_qs,
                                        headers=self._headers(request), ssl=self.client_ssl) as answer:
            headers = {k: v for k, v in answer.headers.items() if k.lower() not in HOP_HEADERS}
            response = web.StreamResponse(status=answer.status, headers=headers)
            await response.prepare(request)
            if stall is not None:
                await asyncio.sleep(stall)  # nothing at all for a while, then the stream ends
                await response.write_eof()
                return response
            deadline = loop.time() + cut if cut is not None else None
            while True:
                timeout = None if deadline is None else max(0.0, deadline - loop.time())
                try:
                    chunk = await asyncio.wait_for(answer.content.readany(), timeout)
                except asyncio.TimeoutError:
                    request.transport.close()  # the connection drops mid-stream
                    return response
                if not chunk:
                    break
                await response.write(chunk)
            await response.write_eof()
            return response
