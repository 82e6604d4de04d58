"""Server processes of the endpoint and webhook benchmarks: start, wait until ready, measure, stop.

Every server under test runs in its own process on 127.0.0.1 (a free port picked here), with its
output going to a log file (a pipe nobody reads could block a chatty server); the tail of that log
is shown when a server does not come up. Memory is read from ``/proc/<pid>/status``: ``VmRSS``
(resident now) and ``VmHWM`` (the peak), and CPU time from ``/proc/<pid>/stat``; Linux only
(``None`` elsewhere).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 60.0
T = TypeVar("T")


class ServiceFailed(RuntimeError):
    """A server did not start (or died): the message ends with the tail of its log."""


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def run_fast(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on uvloop when it is installed (what uvicorn picks too), else the default loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


def proc_status_kib(pid: int, field_name: str) -> int | None:
    """A ``kB`` field of ``/proc/<pid>/status`` (``VmRSS``, ``VmHWM``), or None when unavailable."""
    try:
        text = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(field_name + ":"):
            parts = line.split()
            return int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else None
    return None


def proc_cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (all its threads), from ``/proc/<pid>/stat``."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    except OSError:
        return None
    fields = text.rsplit(")", 1)[-1].split()  # after "pid (comm)": state is fields[0]
    try:
        ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of the line)
    except (IndexError, ValueError):
        return None
    return ticks / os.sysconf("SC_CLK_TCK")


@dataclass(slots=True)
class Service:
    """A server process started by :meth:`start`; stop it with :meth:`stop` (or use :func:`started`)."""

    name: str
    process: subprocess.Popen[bytes]
    base_url: str
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def start(
        cls,
        name: str,
        command: Sequence[str],
        *,
        port: int,
        ready_path: str,
        log_dir: Path,
        env: Mapping[str, str] | None = None,
        timeout: float = START_TIMEOUT,
    ) -> Service:
        """Start ``command`` and wait until ``GET http://127.0.0.1:<port><ready_path>`` answers 200."""
        log_path = log_dir / f"{name.replace(' ', '_').replace('/', '_')}.log"
        full_env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                list(command), stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=full_env
            )
        service = cls(name, process, f"http://127.0.0.1:{port}", log_path, dict(env or {}))
        try:
            service.wait_ready(ready_path, timeout)
        except BaseException:
            service.stop()
            raise
        return service

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the server's output."""
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")[-chars:]
        except OSError:
            return ""

    def wait_ready(self, path: str, timeout: float) -> None:
        """Poll ``path`` until it answers 200; :class:`ServiceFailed` on exit or timeout."""
        deadline = time.monotonic() + timeout
        url = self.base_url + path
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServiceFailed(
                    f"{self.name} exited with status {self.process.returncode}:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        raise ServiceFailed(f"{self.name} did not answer {url} within {timeout:.0f} s:\n{self.log_tail()}")

    def check_alive(self) -> None:
        """:class:`ServiceFailed` when the process has exited."""
        if self.process.poll() is not None:
            raise ServiceFailed(f"{self.name} died (status {self.process.returncode}):\n{self.log_tail()}")

    def cpu_seconds(self) -> float | None:
        """CPU time used so far (user + system, every thread)."""
        return proc_cpu_seconds(self.pid)

    def rss_bytes(self) -> int | None:
        """Resident memory now."""
        kib = proc_status_kib(self.pid, "VmRSS")
        return None if kib is None else kib * 1024

    def peak_rss_bytes(self) -> int | None:
        """The highest resident memory so far."""
        kib = proc_status_kib(self.pid, "VmHWM")
        return None if kib is None else kib * 1024

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout)


def python_command(module: str, *args: str) -> list[str]:
    """``python -m module args`` with this interpreter."""
    return [sys.executable, "-m", module, *args]


def mashpipe_command(*args: str) -> list[str]:
    """The ``mashpipe`` console script next to this interpreter (or ``python -m app.cli``)."""
    script = Path(sys.executable).with_name("mashpipe")
    if script.exists():
        return [str(script), *args]
    return python_command("app.cli", *args)
