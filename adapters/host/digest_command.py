"""`healthbot digest [--preview]`: the digest of the period that ends now — printed (offline on the
demo engine and the local store too), or posted to HEALTHBOT_DIGEST_CHANNELS through the outbox."""

from __future__ import annotations

import sys
import time

from bot.config import Settings


async def main(settings: Settings, *, preview: bool) -> int:
    from bot.alerts.digest import build_digest, channel_digest, digest_alert, digest_overview, with_overview
    from bot.alerts.schedule import on_demand_period

    period = on_demand_period(settings.digest, settings.digest_tz, time.time())
    if preview:
        from bot.engines import build_engine
        from bot.store import open_store_for

        store, engine = open_store_for(settings), build_engine(settings)
        try:
            digest = with_overview(await build_digest(store, period), await digest_overview(engine, period))
        finally:
            await engine.close()
            await store.close()
        print(digest.summary + ("\n\n" + digest.detail if digest.detail else ""))
        if digest.chart:  # drawn to a file, as `healthbot ask` does with an answer's chart
            from adapters.console import write_charts

            for path in await write_charts([digest.chart], what=f"digest {period.key}"):
                print(f"chart: {path}")
        return 0
    targets = [str(target) for target in settings.digest_targets]
    if not targets:
        print("healthbot: no channel to post to: set HEALTHBOT_DIGEST_CHANNELS (or HEALTHBOT_ALERT_CHANNELS)",
              file=sys.stderr)
        return 2
    from aiohttp import web

    from adapters.host.server import ALERTS, HANDLER, STORE, create_app

    app = create_app(settings)
    runner = web.AppRunner(app)
    await runner.setup()  # the adapters' clients and the outbox worker, as `serve` starts them
    try:
        overview = await digest_overview(app[HANDLER].engine, period)
        for target in targets:  # each channel its own threads and figures
            digest = await channel_digest(app[STORE], period, target, overview)
            alert = digest_alert(period, digest)
            await app[STORE].alerts.enqueue(alert.key, alert.model_dump(mode="json"), [(target, False)])
        await app[ALERTS].drain(60)
        status = await app[ALERTS].status()
        pending = (await app[STORE].alerts.counts())["pending"]
    finally:
        await runner.cleanup()
    failures = status.get("recent_failures") or []
    if failures or pending:
        print(f"digest not delivered yet: {failures[0][1] if failures else 'still pending'} "
              "(a running `healthbot serve` on the same database delivers it)", file=sys.stderr)
        return 1
    print(f"digest posted to {', '.join(targets)}")
    return 0
