"""`dho-central ingest --workers N`: N worker processes on this machine, each restarted if it dies.

Workers are independent processes (no shared memory, no coordination but the broker's shared
subscription and the database), so the same command on several machines grows one group.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import time

log = logging.getLogger(__name__)


async def supervise(worker_argv: list[list[str]], *, restart_after_s: float = 1.0) -> None:
    """Run one process per argv; a process that exits is started again (after a pause if it keeps dying)."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stopping.set)
    processes: dict[int, asyncio.subprocess.Process] = {}

    async def keep(index: int, argv: list[str]) -> None:
        pause = restart_after_s
        while not stopping.is_set():
            started = time.monotonic()
            process = await asyncio.create_subprocess_exec(sys.executable, "-m", "central.cli", *argv)
            processes[index] = process
            log.info("worker %d started (pid %d)", index, process.pid)
            code = await process.wait()
            if stopping.is_set():
                return
            pause = restart_after_s if time.monotonic() - started > 30 else min(pause * 2, 30.0)
            log.error("worker %d (pid %d) exited with %s; starting it again in %.0f s", index, process.pid, code, pause)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(pause):
                    await stopping.wait()

    async with asyncio.TaskGroup() as tasks:
        for index, argv in enumerate(worker_argv):
            tasks.create_task(keep(index, argv))
        await stopping.wait()
        log.info("stopping %d worker(s)", len(processes))
        for process in processes.values():
            if process.returncode is None:
                process.terminate()
        for process in processes.values():
            with contextlib.suppress(ProcessLookupError):
                await process.wait()
