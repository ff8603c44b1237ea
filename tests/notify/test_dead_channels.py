"""A dead channel changes nothing in the engine (issue 18): one refusing connections and
one that accepts and never answers, on every kind of notice, while triggers fire. Every
trigger still fires and places exactly one order; the notice queue stays within its
bound, dropping the oldest and counting it."""

from __future__ import annotations

from tests.support.eventually import eventually
from tests.support.receivers import free_port, http_receiver
from tests.support.system import running_system

INFY = 408065
QUEUE = 10


async def test_dead_and_slow_channels_change_nothing_in_the_engine(sqlite_url: str) -> None:
    async with (
        http_receiver(hang=True) as slow,
        running_system(
            sqlite_url,
            secret_key="DeadChannelSealingKey01234",
            notify_allow_nets="127.0.0.1/32",
            notify_queue=QUEUE,
            notify_timeout_ms=3000,
        ) as system,
    ):
        for url in (f"json://127.0.0.1:{free_port()}/refused", f"json://{slow.url}/slow"):
            response = await system.client.post(
                "/notifications/channels", json={"name": "dead", "url": url}, headers=system.auth()
            )
            assert response.status_code == 201, response.text
        notifier = system.runtime.notifier
        assert notifier is not None
        system.push(INFY, "1600.00")
        await system.create(trigger_price_1="9999.00")  # keeps INFY's ticks coming to the end
        triggers = [
            (await system.create(trigger_price_1=f"{1601 + i}.00"))["id"] for i in range(20)
        ]
        system.push(INFY, "1625.00")
        most = 0

        async def all_placed() -> bool:
            nonlocal most
            most = max(most, notifier.stats.queued)
            records = [await system.trigger(t) for t in triggers]
            return all(r["status"] == "placed" for r in records)

        await eventually(all_placed, within=30, interval=0.05)
        assert len(system.sim.orders()) == 20  # one order each
        assert system.runtime.engine.stats.triggered_orders == 20
        # The slow receiver was reached and holds its senders; the notices kept coming.
        await eventually(lambda: len(slow.requests) >= 1)
        assert most <= QUEUE
        assert notifier.stats.queued <= QUEUE
        await eventually(lambda: notifier.stats.dropped > 0)
        # Still firing and placing while the senders are stuck.
        after = await system.create(trigger_price_1="1630.00")
        system.push(INFY, "1630.00")
        assert (await system.settled(after["id"]))["status"] == "placed"
        system.push(INFY, "1631.50")
        await eventually(lambda: system.runtime.engine.last_ltp.get(INFY) == 163_150)
        metrics = await system.client.get("/metrics", headers=system.auth(system.operator_token))
        dropped = [
            line
            for line in metrics.text.splitlines()
            if line.startswith("hmt_notify_dropped_total")
        ]
        assert dropped
        assert float(dropped[0].split()[1]) > 0
