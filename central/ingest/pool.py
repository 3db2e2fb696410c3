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

from protocol import Backoff

log = logging.getLogger(__name__)

_RAN_A_WHILE_S = 30.0  # a worker that exits after running this long starts again after the first pause
_RESTART_MAX_S = 30.0


async def supervise(worker_argv: list[list[str]], *, restart_after_s: float = 1.0) -> None:
    """Run one process per argv; a process that exits is started again (after a pause if it keeps dying)."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stopping.set)
    processes: dict[int, asyncio.subprocess.Process] = {}

    async def keep(index: int, argv: list[str]) -> None:
        # Exact pauses (no jitter), as ever: `restart_after_s` after a process that ran a while, doubling up
        # to 30 s for each exit in a row that came sooner. A quick exit is counted on top of the start
        # (or of the last long run), so the first one already waits twice `restart_after_s`.
        backoff = Backoff(restart_after_s, _RESTART_MAX_S, jitter=False)
        quick_exits = 0
        while not stopping.is_set():
            started = time.monotonic()
            process = await asyncio.create_subprocess_exec(sys.executable, "-m", "central.cli", *argv)
            processes[index] = process
            log.info("worker %d started (pid %d)", index, process.pid)
            code = await process.wait()
            if stopping.is_set():
                return
            quick_exits = 0 if time.monotonic() - started > _RAN_A_WHILE_S else quick_exits + 1
            pause = backoff.delay(quick_exits + 1)
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
