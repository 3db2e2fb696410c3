"""`dho-gateway demo` serves the nurses' worklist beside the patient's page and prints its address; the
demo's red and yellow readings are alerts on it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from central.store import Database
from central.worklist import Worklist


def test_the_demo_prints_the_worklist_and_its_reds_are_alerts_on_it(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-m", "gateway.service.cli", "demo", "--readings", "6", "--interval", "0.2",
                          "--data-dir", str(tmp_path / "demo")], capture_output=True, text=True, timeout=120,
                         check=False)
    assert run.returncode == 0, run.stderr
    assert "demo: the nurses' worklist is at http://127.0.0.1:" in run.stdout
    assert "user demo-sykepleier" in run.stdout
    database = Database(str(tmp_path / "demo" / "central.sqlite3"))
    try:
        alerts = Worklist(database).alerts("demo-kommune")
        assert [(a.severity, a.subject) for a in alerts] == [("red", "blood_pressure"), ("yellow", "blood_pressure")]
        user = Worklist(database).user("demo-sykepleier")
        assert user is not None and user.tenant == "demo-kommune"
    finally:
        database.close()
