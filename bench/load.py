"""Load generator: tills confirming realistic receipts over HTTP/1.1 keep-alive, for a fixed time.

Run by bench/run.py as a separate process: `python -m bench.load CONFIG.json RESULT.json`.

Closed loop (`"mode": "closed"`): each till is one coroutine with its own connection and its own till key;
it sends the next receipt when the previous one is answered (a cashier does not scan the next basket
before the receipt prints). It finds the maximum rate; its latency is what N busy tills see.

Open loop (`"mode": "open"`): receipts arrive at a fixed rate (Poisson or evenly spaced arrivals),
whatever the server does: a late answer never delays the next arrival. Each arrival is its own task
on a keep-alive connection from a pool (a new one is opened when none is idle, up to a limit; past it
the arrival waits for one). Latency is counted from the arrival's scheduled time, not from when it was
written to a socket, so the time it waited for a connection or for a late event loop is counted too
(no coordinated omission). The till keys are used in turn.

Clients: `raw` (default) writes the request bytes on an asyncio stream and reads the response by
Content-Length: the cheapest honest HTTP/1.1 client, so on a 2-core box the load generator takes as
little CPU from the server as possible. `httpx` is the ordinary client, for comparison.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import random
import resource
import sys
import time
from dataclasses import dataclass, field

import msgspec

MSK = dt.timezone(dt.timedelta(hours=3))
CONFIRM = "/pos/v1/sales/confirm"


@dataclass
class Stats:
    statuses: dict[str, int] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    error_samples: dict[str, list[str]] = field(default_factory=dict)
    lags_ms: list[float] = field(default_factory=list)  # open loop: scheduled time to the arrival's task starting
    lines: int = 0
    carded: int = 0
    redeemed: int = 0
    answered: int = 0  # every answer, warm-up included: the progress display
    failed: int = 0

    def record(self, status: str, ms: float, body: bytes) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1
        if status == "200":
            self.latencies_ms.append(ms)
        else:
            samples = self.error_samples.setdefault(status, [])
            if len(samples) < 3:
                samples.append(body[:400].decode(errors="replace"))


class RawConnection:
    """HTTP/1.1 with keep-alive over one TCP connection; responses framed by Content-Length."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, headers: bytes, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(
            b"POST %s HTTP/1.1\r\nHost: %s:%d\r\n%sContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
            % (path.encode(), self.host.encode(), self.port, headers, len(body), body)
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length, close = 0, False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                raise RuntimeError("chunked responses are not expected from the till API")
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
        payload = await self.reader.readexactly(length) if length else b""
        if close:
            await self.close()
        return status, payload

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except OSError:
                pass
        self.reader = self.writer = None


class HttpxConnection:
    def __init__(self, host: str, port: int) -> None:
        import httpx

        self.client = httpx.AsyncClient(
            base_url=f"http://{host}:{port}", limits=httpx.Limits(max_connections=1, max_keepalive_connections=1), timeout=None
        )

    async def post(self, path: str, headers: bytes, body: bytes) -> tuple[int, bytes]:
        name, _, value = headers.decode().strip().partition(": ")
        r = await self.client.post(path, content=body, headers={name: value, "content-type": "application/json"})
        return r.status_code, r.content

    async def close(self) -> None:
        await self.client.aclose()


class Shop:
    """What a till knows: the catalog; and what the bench knows: cards and the points they may still spend."""

    def __init__(self, config: dict, rnd: random.Random) -> None:
        self.products = config["products"]  # [sku, price, excluded, weighted]
        self.cards = [c[0] for c in config["cards"]]
        self.active = {c[0]: c[1] for c in config["cards"]}  # points not yet spent by this run
        self.rnd = rnd

    def receipt(self, receipt_id: str) -> tuple[bytes, str | None, int]:
        rnd = self.rnd
        n = min(30, 1 + int(rnd.expovariate(1 / 7)))  # most baskets are small, a few are a full trolley
        lines, eligible = [], 0
        for no, (sku, price, excluded, weighted) in enumerate(rnd.sample(self.products, n), start=1):
            if weighted:
                qty = round(rnd.uniform(0.1, 2.5), 3)  # kilograms off the scale, e.g. 0.734
            else:
                qty = rnd.choices((1, 2, 3, 4, 6), weights=(70, 15, 7, 5, 3))[0]
            amount = round(qty * price)
            lines.append({"line_no": no, "sku": sku, "quantity": qty, "price": price, "amount": amount})
            if not excluded:
                eligible += amount
        now = dt.datetime.now(MSK)
        body: dict = {
            "receipt_id": receipt_id, "business_date": now.date().isoformat(), "occurred_at": now.isoformat(),
            "channel": "store", "lines": lines,
        }
        card, redeem = None, 0
        if rnd.random() < 0.8:
            card = rnd.choice(self.cards)
            body["card"] = card
            most = min(eligible * 3000 // 10_000 // 100, self.active[card])  # 30% of the receipt, 1 point = 1 RUB
            if most >= 1 and rnd.random() < 0.15:
                redeem = rnd.randint(1, most)
                self.active[card] -= redeem  # reserved; given back if the confirm fails
                body["redeem_points"] = redeem
        total = sum(ln["amount"] for ln in lines)
        body["payments"] = [{"type": "bank_card", "amount": max(0, total - redeem * 100)}]
        return msgspec.json.encode(body), card, redeem


ERRORS = (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, RuntimeError, ValueError)


def connection(config: dict) -> RawConnection | HttpxConnection:
    return (RawConnection if config["client"] == "raw" else HttpxConnection)(config["host"], config["port"])


async def till(i: int, key: str, config: dict, shop: Shop, stats: Stats, warm_end: float, end: float) -> None:
    conn = connection(config)
    headers = b"Authorization: Bearer %s\r\n" % key.encode()
    prefix = f"{config['run_id']}-{config['proc']}-{i}-"
    seq = 0
    try:
        while time.time() < end:
            seq += 1
            body, card, redeem = shop.receipt(prefix + str(seq))
            t0 = time.perf_counter()
            try:
                status, payload = await asyncio.wait_for(conn.post(CONFIRM, headers, body), config["timeout"])
                label = str(status)
            except ERRORS as exc:
                label, payload = type(exc).__name__, repr(exc).encode()
                await conn.close()
            ms = (time.perf_counter() - t0) * 1000
            stats.answered += 1
            stats.failed += label != "200"
            if label != "200" and redeem:
                shop.active[card] += redeem  # type: ignore[index]
            if warm_end <= time.time() <= end:
                stats.record(label, ms, payload)
                stats.lines += body.count(b'"line_no"')
                stats.carded += card is not None
                stats.redeemed += redeem > 0
    finally:
        await conn.close()


# uvicorn closes a keep-alive connection after 5 s idle; like any HTTP client (httpx: keepalive_expiry) the pool
# drops connections idle longer than this before the server does, so a request never goes out on a closed socket
KEEPALIVE_EXPIRY = 4.0


class Pool:
    """Idle keep-alive connections; a new one when none is idle, at most `limit` in use (then an arrival waits)."""

    def __init__(self, config: dict, limit: int) -> None:
        self.config = config
        self.idle: list[tuple[float, RawConnection | HttpxConnection]] = []
        self.free = asyncio.Semaphore(limit)
        self.opened = self.in_use = self.most_in_use = 0

    async def acquire(self) -> RawConnection | HttpxConnection:
        await self.free.acquire()
        self.in_use += 1
        self.most_in_use = max(self.most_in_use, self.in_use)
        now = asyncio.get_running_loop().time()
        while self.idle:
            since, conn = self.idle.pop()
            if now - since < KEEPALIVE_EXPIRY:
                return conn
            await conn.close()
        self.opened += 1
        return connection(self.config)

    async def release(self, conn: RawConnection | HttpxConnection, broken: bool) -> None:
        self.in_use -= 1
        self.free.release()
        if broken:
            await conn.close()
        else:
            self.idle.append((asyncio.get_running_loop().time(), conn))

    async def close(self) -> None:
        for _, conn in self.idle:
            await conn.close()


async def arrival(
    scheduled: float, key: str, receipt_id: str, config: dict, shop: Shop, pool: Pool, stats: Stats, counted: bool,
) -> None:
    """One receipt at its scheduled (loop) time; its latency runs from then, its timeout too."""
    loop = asyncio.get_running_loop()
    if counted:
        stats.lags_ms.append((loop.time() - scheduled) * 1000)
    body, card, redeem = shop.receipt(receipt_id)
    headers = b"Authorization: Bearer %s\r\n" % key.encode()
    conn, broken = None, True
    try:
        async with asyncio.timeout_at(scheduled + config["timeout"]):
            conn = await pool.acquire()
            status, payload = await conn.post(CONFIRM, headers, body)
        label, broken = str(status), False
    except ERRORS as exc:
        label, payload = type(exc).__name__, repr(exc).encode()
    finally:
        if conn is not None:
            await pool.release(conn, broken)
    ms = (loop.time() - scheduled) * 1000
    stats.answered += 1
    stats.failed += label != "200"
    if label != "200" and redeem:
        shop.active[card] += redeem  # type: ignore[index]
    if counted:
        stats.record(label, ms, payload)
        stats.lines += body.count(b'"line_no"')
        stats.carded += card is not None
        stats.redeemed += redeem > 0


async def open_loop(config: dict, shop: Shop, stats: Stats, pool: Pool) -> int:
    """Schedule arrivals at config["rate"] per second from start to end; returns how many fell in the window."""
    loop = asyncio.get_running_loop()
    offset = loop.time() - time.time()  # config times are wall-clock, the schedule runs on the loop's clock
    start, warm_end = config["start"] + offset, config["start"] + config["warmup"] + offset
    end = warm_end + config["duration"]
    rate, keys = config["rate"], config["keys"]
    rnd = random.Random(config["seed"] ^ 0x5EED)
    poisson = config["arrivals"] == "poisson"
    prefix = f"{config['run_id']}-{config['proc']}-o"
    tasks: set[asyncio.Task] = set()
    t, seq, in_window = start + (0.0 if poisson else rnd.uniform(0, 1 / rate)), 0, 0
    while True:
        t += rnd.expovariate(rate) if poisson else 1 / rate
        if t >= end:
            break
        if (delay := t - loop.time()) > 0:
            await asyncio.sleep(delay)
        counted = warm_end <= t < end
        in_window += counted
        task = loop.create_task(arrival(t, keys[seq % len(keys)], prefix + str(seq), config, shop, pool, stats, counted))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        seq += 1
    if tasks:  # each arrival ends by its own timeout; this is a backstop
        await asyncio.wait(set(tasks), timeout=config["timeout"] + 5)
    return in_window


async def report_progress(path: str, stats: Stats) -> None:
    """Counts for the parent's progress display, twice a second (a rename: never half a file)."""
    tmp = path + ".tmp"
    while True:
        with open(tmp, "w") as f:
            json.dump({"answered": stats.answered, "failed": stats.failed}, f)
        os.replace(tmp, path)
        await asyncio.sleep(0.5)


async def main(config: dict) -> dict:
    stats = Stats()
    rnd = random.Random(config["seed"])
    shop = Shop(config, rnd)
    start, warm_end, end = config["start"], config["start"] + config["warmup"], config["start"] + config["warmup"] + config["duration"]
    progress = asyncio.create_task(report_progress(config["progress"], stats)) if config.get("progress") else None
    await asyncio.sleep(max(0.0, start - time.time()))
    extra: dict = {}
    if config.get("mode") == "open":
        pool = Pool(config, config["connections"])
        window_start: list = []

        async def mark_window() -> None:
            await asyncio.sleep(max(0.0, warm_end - time.time()))
            window_start.append(resource.getrusage(resource.RUSAGE_SELF))

        marker = asyncio.create_task(mark_window())
        extra["scheduled_in_window"] = await open_loop(config, shop, stats, pool)
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        await marker
        cpu0 = window_start[0]
        await pool.close()
        lags = sorted(stats.lags_ms)
        extra |= {
            "connections_opened": pool.opened, "most_connections_in_use": pool.most_in_use,
            "dispatch_lag_ms": {"p99": round(lags[int(len(lags) * 0.99)], 2), "max": round(lags[-1], 2)} if lags else None,
        }
    else:
        tasks = [asyncio.create_task(till(i, key, config, shop, stats, warm_end, end)) for i, key in enumerate(config["keys"])]
        await asyncio.sleep(max(0.0, warm_end - time.time()))
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        await asyncio.wait(tasks, timeout=max(0.0, end - time.time()) + config["timeout"] + 5)
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        for t in tasks:
            t.cancel()
    if progress is not None:
        progress.cancel()
    return {
        "statuses": stats.statuses,
        "latencies_ms": stats.latencies_ms,
        "error_samples": stats.error_samples,
        "lines": stats.lines,
        "carded": stats.carded,
        "redeemed": stats.redeemed,
        "cpu_seconds": (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime),
    } | extra


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        cfg = json.load(f)
    try:
        import uvloop

        result = uvloop.run(main(cfg))
    except ImportError:
        result = asyncio.run(main(cfg))
    with open(sys.argv[2], "w") as f:
        json.dump(result, f)
