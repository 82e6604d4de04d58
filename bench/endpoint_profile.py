"""Where a server's time goes under load: a py-spy sampling profile, summarised as text.

``py-spy record --pid PID --format raw --threads --gil`` samples the Python stack of the thread
holding the GIL (native code shows as the Python frame that called it) without touching the
server; the raw output is one line per distinct stack, ``thread;frame;...;frame COUNT``. (Without
``--gil``, py-spy counts aiosqlite's worker threads waiting for work or for the GIL as busy: they
showed as 60% of the samples while ``/proc`` gave them under 2% of the process's CPU time; see
:func:`thread_cpu` for that split.) :func:`summarize` turns it into the
share of samples per area of the code base (by the innermost frame: its "own time"), the share
of samples inside a few marked functions (inclusive), and the top frames by own time.
"""

from __future__ import annotations

import concurrent.futures
import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# Areas, by a fragment of the frame's file path; the first that matches wins.
AREAS: tuple[tuple[str, str], ...] = (
    ("sqlalchemy/", "SQLAlchemy"),  # first: sqlalchemy/connectors/ is not a Mashpipe connector
    ("app/engine/", "engine (app.engine)"),
    ("app/pipelines/", "expressions and specs (app.pipelines)"),
    ("celpy", "CEL evaluation (cel library)"),
    ("cel_", "CEL evaluation (cel library)"),
    ("app/runtime/", "runtime (app.runtime)"),
    ("app/storage/", "storage (app.storage)"),
    ("app/api/", "API layer (app.api)"),
    ("app/sdk/", "connector SDK (app.sdk)"),
    ("app/security/", "egress guard (app.security)"),
    ("connectors/", "connectors"),
    ("app/", "other app code"),
    ("aiosqlite/", "aiosqlite + sqlite3"),
    ("sqlite3/", "aiosqlite + sqlite3"),
    ("alembic/", "alembic"),
    ("httpx/", "httpx"),
    ("httpcore/", "httpcore"),
    ("httpx_aiohttp/", "httpx-aiohttp"),
    ("aiohttp/", "aiohttp"),
    ("anyio/", "anyio"),
    ("http/cookiejar", "http.cookiejar (stdlib)"),
    ("uvicorn/", "uvicorn"),
    ("starlette/", "starlette"),
    ("fastapi/", "fastapi"),
    ("pydantic", "pydantic"),
    ("orjson", "orjson"),
    ("json/", "json (stdlib)"),
    ("asyncio/", "asyncio"),
    ("uvloop", "asyncio"),
    ("threading.py", "threads (idle waits)"),
    ("queue.py", "threads (idle waits)"),
)
MARKERS: tuple[tuple[str, str], ...] = (
    ("RunService.create_run", "recording a queued run (create_run)"),
    ("RunExecutor._claim", "claiming a queued run (_claim)"),
    ("RunExecutor._finish", "finishing a queued run (_finish)"),
    ("DirectRuns._execute", "an endpoint run executed in memory (DirectRuns)"),
    ("RunRecorder._run", "recording endpoint runs write-behind (RunRecorder)"),
    ("execute_plan", "engine execute (steps, incl. the HTTP call)"),
    ("get_json", "the http.get_json step"),
    ("EgressGuardTransport", "egress guard transport"),
)
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>.*?)(?::\d+)?\)$")


@dataclass(frozen=True, slots=True)
class Profile:
    """A summarised profile."""

    samples: int
    by_area: list[tuple[str, float]]  # share of all samples, by own time
    markers: list[tuple[str, float]]  # share of main-thread samples inside the function
    top_frames: list[tuple[str, float]]  # share of all samples, own time
    threads: list[tuple[str, float]]  # share of all samples per thread


def py_spy() -> str | None:
    """The py-spy executable next to this interpreter, or on the PATH."""
    local = Path(sys.executable).with_name("py-spy")
    return str(local) if local.exists() else shutil.which("py-spy")


def record(pid: int, seconds: float, output: Path, rate: int = 250) -> str:
    """Sample ``pid`` for ``seconds``; the raw profile text ('' and a reason when py-spy fails)."""
    executable = py_spy()
    if executable is None:
        raise RuntimeError("py-spy is not installed (pip install py-spy)")
    command = [
        executable,
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(max(1, round(seconds))),
        "--rate",
        str(rate),
        "--format",
        "raw",
        "--threads",
        "--gil",
        "--nonblocking",
        "-o",
        str(output),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, check=False)
    if done.returncode != 0 or not output.exists():
        raise RuntimeError(
            f"py-spy failed ({done.returncode}): {(done.stderr or done.stdout).strip()[-800:]}"
        )
    return output.read_text(encoding="utf-8", errors="replace")


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds (user + system) used so far by the main thread of ``pid`` and by all its other threads
    together, from ``/proc``; {} elsewhere.

    The other threads' share is the process's total (``/proc/PID/stat``, which keeps the time of threads
    that ended: aiosqlite's come and go) minus the main thread's: summing the live threads would lose
    the time of those that ended between two readings (and give a negative share)."""
    import os

    ticks = os.sysconf("SC_CLK_TCK")

    def seconds(path: str) -> float:
        fields = Path(path).read_text(encoding="ascii").rsplit(")", 1)[-1].split()
        return (int(fields[11]) + int(fields[12])) / ticks

    try:
        process = seconds(f"/proc/{pid}/stat")
        main = seconds(f"/proc/{pid}/task/{pid}/stat")
    except OSError:
        return {}
    return {
        "main thread (event loop)": main,
        "other threads (mashpipe: aiosqlite...)": max(0.0, process - main),
    }


def _area(file: str) -> str:
    for fragment, area in AREAS:
        if fragment in file:
            return area
    return "other"


def _split(frame: str) -> tuple[str, str]:
    match = _FRAME.match(frame.strip())
    return (match.group("func"), match.group("file")) if match else (frame.strip(), "")


def summarize(raw: str, top: int = 15) -> Profile:
    """Summarise py-spy's raw output (see the module docstring)."""
    total = 0
    areas: Counter[str] = Counter()
    frames: Counter[str] = Counter()
    markers: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    main_total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        parts = stack.split(";")
        thread, frame_list = parts[0], parts[1:]
        if not frame_list:
            continue
        total += count
        threads[thread] += count
        func, file = _split(frame_list[-1])
        areas[_area(file)] += count
        frames[f"{func} ({file})"] += count
        if "MainThread" in thread or "main" in thread.lower():
            main_total += count
            names = {_split(frame)[0] for frame in frame_list}
            for needle, label in MARKERS:
                if any(needle in name for name in names):
                    markers[label] += count
    share = (lambda n: n / total) if total else (lambda n: 0.0)
    main_share = (lambda n: n / main_total) if main_total else (lambda n: 0.0)
    return Profile(
        samples=total,
        by_area=[(area, share(n)) for area, n in areas.most_common()],
        markers=[(label, main_share(markers[label])) for _, label in MARKERS],
        top_frames=[(frame, share(n)) for frame, n in frames.most_common(top)],
        threads=[(thread, share(n)) for thread, n in threads.most_common()],
    )


def render(profile: Profile, title: str) -> str:
    """The profile as the text block of the report."""
    lines = [f"py-spy profile of {title}: {profile.samples} samples (thread holding the GIL)"]
    lines.append("  threads:")
    lines += [f"    {share:6.1%}  {thread}" for thread, share in profile.threads[:6]]
    lines.append("  own time by area:")
    lines += [f"    {share:6.1%}  {area}" for area, share in profile.by_area if share >= 0.005]
    lines.append("  inside (share of the main thread's samples):")
    lines += [f"    {share:6.1%}  {label}" for label, share in profile.markers]
    lines.append("  top frames by own time:")
    lines += [f"    {share:6.1%}  {frame}" for frame, share in profile.top_frames]
    return "\n".join(lines)


def profile_while(
    pid: int, output: Path, load: Callable[[], object], title: str, seconds: float = 4.0
) -> str:
    """Run ``load`` (a blocking call lasting a little longer than ``seconds``) in a thread while
    py-spy samples ``pid``; the rendered profile plus the CPU split by thread, or why there is none."""
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            running = pool.submit(load)
            before = thread_cpu(pid)
            raw = record(pid, seconds, output)
            after = thread_cpu(pid)
            running.result()
    except Exception as exc:  # a profile is a bonus: say why there is none
        return f"no py-spy profile: {exc}"
    used = {name: after[name] - before.get(name, 0.0) for name in after}
    total = sum(used.values()) or 1.0
    ranked = sorted(used.items(), key=lambda item: -item[1])
    split = ", ".join(f"{name} {cpu / total:.0%}" for name, cpu in ranked if cpu > 0)
    return f"{render(summarize(raw), title)}\n  CPU time by thread (/proc): {split}"
