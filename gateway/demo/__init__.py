"""For a newcomer at a terminal: the end-to-end demo, the simulation commands, their console lines."""

from __future__ import annotations

from gateway.demo.broker import DemoError, embedded_broker, free_port
from gateway.demo.display import advice_lines, reading_line
from gateway.demo.run import run_demo
from gateway.demo.simulate import load_simulation, run_scenario

__all__ = [
    "DemoError",
    "advice_lines",
    "embedded_broker",
    "free_port",
    "load_simulation",
    "reading_line",
    "run_demo",
    "run_scenario",
]
