"""The QA bot as ``qabot serve`` runs it, on a free loopback port, for the benchmarks.

Same settings (from the environment), same ``init_app`` factory, same in-process outbox
sender; the differences from ``qabot serve`` are only what a benchmark needs: it binds
127.0.0.1 port 0 and prints ``{"ready": true, "port": ..., "pid": ...}``, logs at the
level in ``QABOT_LOG_LEVEL`` (WARNING by default), and stops on SIGTERM or when stdin
closes (so it never outlives the benchmark that started it).
"""

from __future__ import annotations

import asyncio
import logging
import os

from aiohttp import web

from bench.child import serve_until_stopped
from qabot.app import init_app, load_configured_framework
from qabot.logs import configure
from qabot.settings import Settings


async def main() -> None:
    settings = Settings.from_env()
    level = getattr(logging, os.environ.get("QABOT_LOG_LEVEL", "WARNING").upper(), logging.WARNING)
    configure(settings.log_format, level=level)
    framework = load_configured_framework(settings)
    app = init_app(settings, framework=framework, run_scheduler=False)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=5)
    await serve_until_stopped(runner)


if __name__ == "__main__":
    asyncio.run(main())
