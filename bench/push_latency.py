"""Time from a till's confirm to the wallet pass push leaving the worker (p50/p99), with the worker running.

    python bench/push_latency.py [--sales 200] [--members 50] [--concurrency 8]

Starts an embedded PostgreSQL and Valkey under a temporary directory, the app
under uvicorn, the fake APNs (HTTP/2, TLS) and the fake Google (FCM), and the
outbox worker in this process. Each member has the app (APNs) with push
consent and the card in Wallet. The clock starts when confirm returns and
stops when the fake APNs receives the pass push for that member's card.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from backend import infra
from loyalty_core import db


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "backend.app:create_app", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning"],
        cwd=ROOT, env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not start")


async def main(args: argparse.Namespace) -> None:
    from backend.push.settings import ApnsSettings, PushSettings, WorkerSettings
    from backend.push.worker import WorkerConfig, run_worker
    from loyalty_core.tables import Consent, PassRegistration, PushDevice
    from tests.factories import make_member, make_shop, sale_body
    from tests.fakes.apns import FakeApns
    from tests.fakes.fixtures import APP_TOPIC, PASS_TYPE_ID, TEAM_ID
    from tests.fakes.pki import make_fake_pki
    from wallet_passes.assets import ASSETS_DIR
    from wallet_passes.certs import ensure_test_pass_chain
    from wallet_passes.settings import AppleWalletSettings, WalletSettings

    work = Path(tempfile.mkdtemp(prefix="kopilka-push-bench-"))
    pki = make_fake_pki(work / "pki")
    chain = ensure_test_pass_chain(work / "chain", PASS_TYPE_ID, TEAM_ID)
    arrivals: dict[str, float] = {}
    waiting: dict[str, asyncio.Event] = {}

    class TimedApns(FakeApns):
        def handle(self, headers, body, client_cert):  # type: ignore[no-untyped-def]
            answer = super().handle(headers, body, client_cert)
            if answer[0] == 200 and self.received[-1].auth == "cert":
                token = self.received[-1].device_token
                arrivals.setdefault(token, time.perf_counter())
                if token in waiting:
                    waiting[token].set()
            return answer

    apns = TimedApns(server_cert_path=pki.server_cert_path, server_key_path=pki.server_key_path,
                     client_ca_paths=[chain.root_path, chain.wwdr_path], team_id=TEAM_ID)
    await apns.start()
    key_path = work / "AuthKey.p8"
    key_path.write_text(apns.provider_key_pem)
    config = WorkerConfig(
        push=PushSettings(apns=ApnsSettings(base_url=apns.base_url, team_id=TEAM_ID, key_id=apns.key_id,
                                            key_path=key_path, topic=APP_TOPIC, verify=str(pki.ca_path)), fcm=None),
        wallet=WalletSettings(apple=AppleWalletSettings(
            pass_type_id=PASS_TYPE_ID, team_id=TEAM_ID, signing=chain, web_service_url="https://bench/passkit",
            assets_dir=ASSETS_DIR, apns_base_url=apns.base_url, apns_verify=str(pki.ca_path)), google=None),
        tuning=WorkerSettings(pass_pushes=True, quiet_start_hour=0, quiet_end_hour=0,
                              poll_seconds=args.poll, batch_size=100),
    )

    async with db.pool():
        shop = await make_shop()
        members, pass_tokens = [], {}
        for _ in range(args.members):
            member = await make_member(shop, points=10_000)
            token = secrets.token_hex(32)
            await Consent.insert(Consent(customer=member.customer_id, channel="push", granted=True, source="app"))
            await PushDevice.insert(PushDevice(customer=member.customer_id, platform="apns", token=secrets.token_hex(32)))
            await PassRegistration.insert(PassRegistration(card=member.card_id, device_library_id=secrets.token_hex(8),
                                                           push_token=token))
            members.append(member)
            pass_tokens[member.card] = token

        stop = asyncio.Event()
        worker = asyncio.create_task(run_worker(stop, config=config))
        latencies: list[float] = []
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(args.sales):
            queue.put_nowait(i)

        async def till(client: httpx.AsyncClient) -> None:
            while not queue.empty():
                i = queue.get_nowait()
                member = members[i % len(members)]
                token = pass_tokens[member.card]
                while token in waiting:  # one sale in flight per member, so each push is this sale's
                    await waiting[token].wait()
                    await asyncio.sleep(0)
                arrived = waiting[token] = asyncio.Event()
                arrivals.pop(token, None)
                sale = sale_body(shop, [("milk", 1, 10_000)], card=member.card)
                response = await client.post("/pos/v1/sales/confirm", json=sale, headers=shop.headers)
                response.raise_for_status()
                confirmed = time.perf_counter()
                await arrived.wait()
                latencies.append(max(0.0, arrivals[token] - confirmed))
                del waiting[token]

        started = time.perf_counter()
        async with httpx.AsyncClient(base_url=os.environ["BENCH_BASE"], timeout=30) as client:
            await asyncio.gather(*(till(client) for _ in range(args.concurrency)))
        elapsed = time.perf_counter() - started
        stop.set()
        await worker
    await apns.stop()

    latencies.sort()
    p = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000
    print(f"{len(latencies)} sales, {args.concurrency} tills, {args.members} members, {elapsed:.1f} s "
          f"({len(latencies) / elapsed:.0f} sales/s), worker poll {args.poll * 1000:.0f} ms")
    print(f"confirm -> pass push at APNs: p50 {p(0.50):.1f} ms, p90 {p(0.90):.1f} ms, p99 {p(0.99):.1f} ms, "
          f"max {latencies[-1] * 1000:.1f} ms, mean {statistics.mean(latencies) * 1000:.1f} ms")


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sales", type=int, default=200)
    parser.add_argument("--members", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--poll", type=float, default=0.2, help="worker idle poll interval, seconds")
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="kopilka-push-bench-data-"))
    db_url = infra.start_embedded_postgres(data_dir, "kopilka_push_bench")
    valkey_url = infra.start_embedded_valkey(data_dir)
    port = _free_port()
    os.environ.update(KOPILKA_DATABASE_URL=db_url, KOPILKA_VALKEY_URL=valkey_url, KOPILKA_DATA_DIR=str(data_dir),
                      KOPILKA_PORT=str(port), KOPILKA_PUBLIC_URL=f"http://127.0.0.1:{port}",
                      KOPILKA_SECRET_KEY="bench", BENCH_BASE=f"http://127.0.0.1:{port}")
    db.configure(db_url, 1, 20)
    db.migrate_sync()
    server = start_server(port)
    try:
        asyncio.run(main(args))
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    run()
