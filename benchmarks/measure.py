"""Runs one measured command in its own process: wall time and that process's peak resident memory."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Measurement:
    seconds: float
    peak_rss_mb: float
    output: dict


def measure(command: list[str], env: dict[str, str], cwd: Path | None = None) -> Measurement:
    """Wall time from spawn to exit, and the peak RSS that `wait4` reports for exactly this child.

    The last stdout line that is a JSON object is returned as the command's own report.
    """
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        process = subprocess.Popen(command, env=env, cwd=cwd, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if process.returncode != 0:
        failed = f"{' '.join(command[:5])} failed ({process.returncode})"
        raise RuntimeError(f"{failed}:\n{stderr[-3000:]}\n{stdout[-1500:]}")
    report: dict = {}
    for line in reversed(stdout.strip().splitlines()):
        if line.startswith("{"):
            report = json.loads(line)
            break
    return Measurement(seconds, usage.ru_maxrss / 1024, report)
