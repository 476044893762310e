"""How a benchmark's child server runs: announce its port, serve until told to stop.

Shared by the echo bot and the QA bot processes, so both are started and stopped the
same way (the comparison between them is the point of the click benchmark).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys

from aiohttp import web


async def serve_until_stopped(runner: web.AppRunner) -> None:
    """Serve on a free loopback port; print it as JSON; stop on SIGTERM, SIGINT or stdin EOF."""
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    sys.stdout.write(json.dumps({"ready": True, "port": port, "pid": os.getpid()}) + "\n")
    sys.stdout.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    # stdin closing (the benchmark went away) stops the server too
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    async def watch_stdin() -> None:
        while await reader.readline():
            pass
        stop.set()

    watcher = asyncio.create_task(watch_stdin())
    await stop.wait()
    watcher.cancel()
    await runner.cleanup()
