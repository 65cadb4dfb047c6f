"""How long a till-like write of a membership waits while a big segment recompute writes it (docs/marketing.md).

Run after bench/segments_bench.py filled the database: empties the 'lapsing-gold' segment, recomputes it (about
90 000 members join) and meanwhile writes nine of the joining memberships every 50 ms from another connection, as a
till's confirm would; prints the waits.

    KOPILKA_DATABASE_URL=postgresql://postgres@127.0.0.1/bench python bench/segments_lock_probe.py
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg  # noqa: E402

from loyalty_core import db  # noqa: E402

async def main() -> None:
    url = os.environ["KOPILKA_DATABASE_URL"]
    db.configure(url, 1, 4)
    async with db.pool():
        from loyalty_core.marketing import segments
        c = await asyncpg.connect(url)
        print("emptying the segment ...", file=sys.stderr, flush=True)
        await c.execute("UPDATE membership SET segments = array_remove(segments, 'lapsing-gold') "
                        "WHERE segments @> ARRAY['lapsing-gold']::varchar[]")
        ids = [r[0] for r in await c.fetch(
            "SELECT m.id FROM membership m JOIN tier t ON t.id = m.tier WHERE t.code = 'gold' "
            "AND m.last_purchase_at <= now() - interval '60 days' ORDER BY m.id")]
        probes = [ids[len(ids) // 10 * k] for k in range(1, 10)]
        waits = []
        async def probe() -> None:
            await asyncio.sleep(1.0)
            t_end = time.monotonic() + 60
            while time.monotonic() < t_end and not done.is_set():
                for mid in probes:
                    t = time.perf_counter()
                    await c.execute("UPDATE membership SET purchases_count = purchases_count WHERE id = $1", mid)
                    waits.append(time.perf_counter() - t)
                await asyncio.sleep(0.05)
        done = asyncio.Event()
        task = asyncio.create_task(probe())
        t0 = time.monotonic()
        print("recomputing while probing ...", file=sys.stderr, flush=True)
        result = await segments.recompute_segment("bench-segments", "lapsing-gold", dt.datetime.now(dt.UTC))
        done.set(); await task
        waits.sort()
        print(f"recompute: {result.members} members, +{result.added} -{result.removed} in {time.monotonic()-t0:.1f} s")
        print(f"{len(waits)} probe writes: p50 {1000*waits[len(waits)//2]:.1f} ms, p99 {1000*waits[int(len(waits)*0.99)]:.1f} ms, max {1000*waits[-1]:.1f} ms")
if __name__ == "__main__":
    asyncio.run(main())
