"""Closed-loop HTTP load, bounded in time and in count: wrk when installed, else a generator of ours.

``N`` connections each send a request, wait for the whole answer, and send the next one, until
``duration`` seconds have passed or ``max_requests`` answers have come back. Both generators run
in their own process, so they take neither the event loop nor the GIL of a server under test.

* wrk (Debian package ``wrk``): one thread; ``bench/endpoint_wrk.lua`` prints the counts and the
  latency percentiles as one JSON line. wrk is bounded by its duration only (stopping a thread
  early leaves wrk's clock running, and a Lua ``response()`` callback slows it by ~15%): with
  ``N`` connections and a duration, its count is bounded too.
* ours: ``python -m bench.endpoint_load URL --connections N ...``: aiohttp on uvloop, one
  coroutine per connection, every latency kept (exact percentiles). It can also send a POST body
  (``{n}`` in it becomes the request's number), fixed headers (``--header NAME:VALUE``), give each
  request a unique header value (``--unique-header NAME``: ``<prefix>-<n>``) and write every
  answer to a file (``--answers``): the webhook benchmark checks each delivery's run with it.

Pick one with ``MASHPIPE_BENCH_LOADGEN=wrk|python`` (default: wrk when on the PATH).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

WRK_SCRIPT = Path(__file__).resolve().with_name("endpoint_wrk.lua")
WRK_MARKER = "MASHPIPE_WRK "
OURS_MARKER = "MASHPIPE_LOAD "
Tool = Literal["wrk", "python"]


class LoadError(RuntimeError):
    """The load generator failed or printed nothing usable."""


@dataclass(slots=True)
class LoadResult:
    """What one bounded load run measured (times in seconds)."""

    tool: str
    connections: int
    requests: int  # answers received
    errors: int  # non-2xx answers + socket errors + timeouts
    duration_s: float
    p50_s: float
    p90_s: float
    p99_s: float
    max_s: float
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        """Answers per second."""
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return dict(asdict(self), rps=self.rps)


def default_tool() -> Tool:
    """``MASHPIPE_BENCH_LOADGEN`` when set, else wrk when it is installed, else ours."""
    chosen = os.environ.get("MASHPIPE_BENCH_LOADGEN", "").strip().lower()
    if chosen in ("wrk", "python"):
        return "wrk" if chosen == "wrk" else "python"
    if chosen:
        raise LoadError(f"MASHPIPE_BENCH_LOADGEN must be wrk or python, not {chosen!r}")
    return "wrk" if shutil.which("wrk") else "python"


def percentile(sorted_values: list[float], fraction: float) -> float:
    """The ``fraction`` percentile (nearest rank) of already sorted values; 0 for none."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


# -- wrk ------------------------------------------------------------------------------------------


def wrk_command(url: str, connections: int, duration: float, timeout: float) -> list[str]:
    """The wrk command line of one run (one thread: the machine's cores belong to the servers)."""
    seconds = max(1, math.ceil(duration))
    return [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        f"--timeout={max(1, math.ceil(timeout))}s",
        "-s",
        str(WRK_SCRIPT),
        url,
    ]


def parse_wrk(output: str, connections: int) -> LoadResult:
    """The :class:`LoadResult` of wrk's output (the JSON line printed by ``endpoint_wrk.lua``)."""
    for line in output.splitlines():
        if line.startswith(WRK_MARKER):
            data = json.loads(line[len(WRK_MARKER) :])
            break
    else:
        raise LoadError(f"wrk printed no result line:\n{output[-2000:]}")
    socket_errors = sum(data[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts"))
    return LoadResult(
        tool="wrk",
        connections=connections,
        requests=int(data["requests"]),
        errors=int(data["status_errors"]) + socket_errors,
        duration_s=data["duration_us"] / 1e6,
        p50_s=data["p50_us"] / 1e6,
        p90_s=data["p90_us"] / 1e6,
        p99_s=data["p99_us"] / 1e6,
        max_s=data["max_us"] / 1e6,
        details={key: data[key] for key in data if key.endswith("errors") or key == "timeouts"},
    )


def run_wrk(
    url: str,
    *,
    connections: int,
    duration: float,
    timeout: float = 10.0,
    method: str | None = None,
    body: str | None = None,
    content_type: str | None = None,
) -> LoadResult:
    """One wrk run against ``url`` (a POST of ``body`` when ``method`` says so)."""
    env = dict(os.environ)
    for name, value in (("WRK_METHOD", method), ("WRK_BODY", body), ("WRK_CONTENT_TYPE", content_type)):
        if value is not None:
            env[name] = value
    done = subprocess.run(
        wrk_command(url, connections, duration, timeout),
        capture_output=True,
        text=True,
        env=env,
        timeout=duration + timeout + 30,
        check=False,
    )
    if done.returncode != 0:
        raise LoadError(f"wrk exited with {done.returncode}: {done.stderr.strip()[-2000:]}")
    return parse_wrk(done.stdout, connections)


# -- ours -----------------------------------------------------------------------------------------


def ours_command(
    url: str,
    *,
    connections: int,
    duration: float,
    max_requests: int,
    timeout: float = 10.0,
    method: str = "GET",
    body: str | None = None,
    content_type: str | None = None,
    headers: dict[str, str] | None = None,
    unique_header: str | None = None,
    unique_prefix: str = "delivery",
    answers: Path | None = None,
    retries: int = 0,
) -> list[str]:
    """The command line of our generator."""
    command = [
        sys.executable,
        "-m",
        "bench.endpoint_load",
        url,
        f"--connections={connections}",
        f"--duration={duration}",
        f"--max-requests={max_requests}",
        f"--timeout={timeout}",
        f"--method={method}",
    ]
    if body is not None:
        command.append(f"--body={body}")
    if content_type is not None:
        command.append(f"--content-type={content_type}")
    for name, value in (headers or {}).items():
        command.append(f"--header={name}:{value}")
    if unique_header is not None:
        command += [f"--unique-header={unique_header}", f"--unique-prefix={unique_prefix}"]
    if answers is not None:
        command.append(f"--answers={answers}")
    if retries:
        command.append(f"--retries={retries}")
    return command


def run_ours(url: str, *, connections: int, duration: float, max_requests: int, **options: Any) -> LoadResult:
    """One run of our generator against ``url`` (``options``: see :func:`ours_command`)."""
    command = ours_command(
        url, connections=connections, duration=duration, max_requests=max_requests, **options
    )
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
        timeout=duration + float(options.get("timeout", 10.0)) + 60,
        check=False,
    )
    for line in done.stdout.splitlines():
        if line.startswith(OURS_MARKER):
            data = json.loads(line[len(OURS_MARKER) :])
            data.pop("rps", None)
            return LoadResult(**data)
    raise LoadError(f"load generator exited with {done.returncode}: {(done.stdout + done.stderr)[-2000:]}")


def run_load(
    url: str, *, connections: int, duration: float, max_requests: int, tool: Tool | None = None
) -> LoadResult:
    """A bounded closed-loop GET load on ``url`` with wrk or ours (see :func:`default_tool`);
    ``max_requests`` bounds ours (wrk is bounded by ``duration``)."""
    if (tool or default_tool()) == "wrk":
        return run_wrk(url, connections=connections, duration=duration)
    return run_ours(url, connections=connections, duration=duration, max_requests=max_requests)


async def generate(
    url: str,
    *,
    connections: int,
    duration: float,
    max_requests: int,
    request_timeout: float = 10.0,
    method: str = "GET",
    body: str | None = None,
    content_type: str | None = None,
    headers: dict[str, str] | None = None,
    unique_header: str | None = None,
    unique_prefix: str = "delivery",
    keep_answers: bool = False,
    retries: int = 0,
) -> tuple[LoadResult, list[dict[str, Any]]]:
    """Our closed loop, in this process; also returns every answer when ``keep_answers``.

    ``retries``: a request whose answer is lost (socket error, timeout) or a 5xx is sent again, up
    to that many times, like a webhook sender; errors still count every failed attempt."""
    import aiohttp

    latencies: list[float] = []
    answers: list[dict[str, Any]] = []
    errors = {"status": 0, "socket": 0, "timeout": 0}
    retried = {"count": 0}
    issued = 0
    templated = body is not None and "{n}" in body
    fixed_payload = body.encode() if body is not None and not templated else None
    base_headers = dict(headers or {})
    if content_type:
        base_headers["Content-Type"] = content_type
    client_timeout = aiohttp.ClientTimeout(total=request_timeout)
    connector = aiohttp.TCPConnector(limit=connections, force_close=False)
    started = time.perf_counter()
    deadline = started + duration

    async with aiohttp.ClientSession(connector=connector, timeout=client_timeout) as session:

        async def attempt(number: int) -> tuple[int, bytes] | None:
            """One request; its status and body, or None after a socket error or a timeout."""
            request_headers = dict(base_headers)
            if unique_header:
                request_headers[unique_header] = f"{unique_prefix}-{number}"
            payload = fixed_payload
            if templated and body is not None:
                payload = body.replace("{n}", str(number)).encode()
            sent = time.perf_counter()
            try:
                async with session.request(method, url, data=payload, headers=request_headers) as response:
                    text = await response.read()
                    status = response.status
            except TimeoutError:
                errors["timeout"] += 1
                return None
            except aiohttp.ClientError:
                errors["socket"] += 1
                return None
            latencies.append(time.perf_counter() - sent)
            if not 200 <= status < 300:
                errors["status"] += 1
            return status, text

        async def worker() -> None:
            nonlocal issued
            while issued < max_requests and time.perf_counter() < deadline:
                number = issued
                issued += 1
                outcome = await attempt(number)
                tries = 1
                # Like a webhook sender: a lost answer or a 5xx is sent again (same number, same
                # unique header: a deduplicating receiver starts nothing twice).
                while tries <= retries and (outcome is None or outcome[0] >= 500):
                    retried["count"] += 1
                    await asyncio.sleep(0.05 * tries)
                    outcome = await attempt(number)
                    tries += 1
                if keep_answers:
                    status, text = outcome if outcome is not None else (0, b"")
                    answer = text.decode(errors="replace")
                    answers.append({"number": number, "status": status, "body": answer, "tries": tries})

        await asyncio.gather(*(worker() for _ in range(connections)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    result = LoadResult(
        tool="python",
        connections=connections,
        requests=len(latencies),
        errors=sum(errors.values()),
        duration_s=elapsed,
        p50_s=percentile(latencies, 0.50),
        p90_s=percentile(latencies, 0.90),
        p99_s=percentile(latencies, 0.99),
        max_s=latencies[-1] if latencies else 0.0,
        details={**errors, "retried": retried["count"]} if retries else errors,
    )
    return result, answers


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Closed-loop HTTP load, bounded in time and count.")
    parser.add_argument("url")
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds, at most")
    parser.add_argument("--max-requests", type=int, default=1_000_000, help="answers, at most")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per request")
    parser.add_argument("--method", default="GET")
    parser.add_argument("--body", default=None)
    parser.add_argument("--content-type", default=None)
    parser.add_argument("--header", action="append", default=[], help="NAME:VALUE, sent with every request")
    parser.add_argument("--unique-header", default=None, help="header given <prefix>-<n>, unique per request")
    parser.add_argument("--unique-prefix", default="delivery", help="prefix of the unique header values")
    parser.add_argument("--answers", type=Path, default=None, help="write every answer here (JSON)")
    parser.add_argument(
        "--retries", type=int, default=0, help="send a lost or 5xx request again, up to N times"
    )
    args = parser.parse_args(argv)
    if args.connections < 1 or args.duration <= 0 or args.max_requests < 1:
        parser.error("--connections, --duration and --max-requests must be positive")
    fixed: dict[str, str] = {}
    for item in args.header:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            parser.error(f"--header expects NAME:VALUE, got {item!r}")
        fixed[name.strip()] = value.strip()

    from bench.endpoint_procs import run_fast

    result, answers = run_fast(
        generate(
            args.url,
            connections=args.connections,
            duration=args.duration,
            max_requests=args.max_requests,
            request_timeout=args.timeout,
            method=args.method.upper(),
            body=args.body,
            content_type=args.content_type,
            headers=fixed,
            unique_header=args.unique_header,
            unique_prefix=args.unique_prefix,
            keep_answers=args.answers is not None,
            retries=max(0, args.retries),
        )
    )
    if args.answers is not None:
        args.answers.write_text(json.dumps(answers), encoding="utf-8")
    print(OURS_MARKER + json.dumps(result.to_json()), flush=True)


if __name__ == "__main__":
    main()
