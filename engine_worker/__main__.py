"""`python -m engine_worker`: settings from AUGSERVE_* environment variables."""

import asyncio
import logging
import signal

from common import tracing
from engine_worker.main import EngineWorker
from engine_worker.settings import WorkerSettings


async def _main() -> None:
    settings = WorkerSettings()
    tracing.setup("engine-worker", settings.otlp_endpoint)
    worker_task = asyncio.create_task(EngineWorker(settings).run())
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker_task.cancel)
    try:
        await worker_task
    except asyncio.CancelledError:
        pass


if __name__ == "__main__":  # vLLM spawns processes: the guard is required
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(_main())
