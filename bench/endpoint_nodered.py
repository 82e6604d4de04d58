"""Node-RED for the endpoint benchmark: installed into ``.bench-cache/nodered``, started headless.

The flow (``bench/nodered/flows.json``) is the one a Node-RED user draws for this mashup:
``http in`` (GET /top-items) -> ``http request`` (the upstream list, parsed JSON, keep-alive on)
-> ``function`` (filter, map, sort, top 10) -> ``http response``. The settings
(``bench/nodered/settings.js``) bind 127.0.0.1, turn the editor, admin API, diagnostics and
telemetry off and log warnings only. Both files are copied into a fresh user directory per run.

:func:`ensure_node_red` installs ``node-red@4.1.15`` with npm when it is not in the cache; when
Node.js or npm is missing or the install fails, it says why (the benchmark reports the reason and
measures the rest).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.endpoint_procs import ROOT, Service, free_port

NODE_RED_VERSION = "4.1.15"
CACHE_DIR = ROOT / ".bench-cache" / "nodered"
FLOW_DIR = Path(__file__).resolve().with_name("nodered")
FLOWS_FILE = FLOW_DIR / "flows.json"
SETTINGS_FILE = FLOW_DIR / "settings.js"
ROUTE = "/top-items"
MIN_NODE_MAJOR = 18  # Node-RED 4 needs Node.js 18 or later
INSTALL_TIMEOUT = 600.0


@dataclass(frozen=True, slots=True)
class NodeRed:
    """Where Node-RED is, or why it is not available."""

    red_js: Path | None
    node: str | None
    reason: str = ""

    @property
    def available(self) -> bool:
        return self.red_js is not None and self.node is not None


def installed_version(cache_dir: Path = CACHE_DIR) -> str | None:
    """The version of the Node-RED in ``cache_dir``, or None when there is none."""
    package = cache_dir / "node_modules" / "node-red" / "package.json"
    try:
        version = json.loads(package.read_text(encoding="utf-8")).get("version")
    except (OSError, ValueError):
        return None
    return version if isinstance(version, str) else None


def node_major(node: str) -> int | None:
    """The major version of the ``node`` executable, or None when it does not run."""
    try:
        done = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30, check=False)
    except OSError:
        return None
    match = re.match(r"v(\d+)\.", done.stdout.strip())
    return int(match.group(1)) if match else None


def ensure_node_red(*, install: bool = True, cache_dir: Path = CACHE_DIR) -> NodeRed:
    """Find (and when ``install``, install) Node-RED ``NODE_RED_VERSION`` in ``cache_dir``."""
    node = shutil.which("node")
    if node is None:
        return NodeRed(None, None, "Node.js is not installed (no `node` on the PATH)")
    major = node_major(node)
    if major is None or major < MIN_NODE_MAJOR:
        return NodeRed(None, node, f"Node-RED 4 needs Node.js >= {MIN_NODE_MAJOR}; `node` is v{major}")
    red_js = cache_dir / "node_modules" / "node-red" / "red.js"
    if installed_version(cache_dir) != NODE_RED_VERSION:
        if not install:
            return NodeRed(None, node, f"node-red@{NODE_RED_VERSION} is not installed in {cache_dir}")
        npm = shutil.which("npm")
        if npm is None:
            return NodeRed(None, node, "npm is not installed: cannot install Node-RED")
        cache_dir.mkdir(parents=True, exist_ok=True)
        command = [npm, "install", "--no-audit", "--no-fund", "--prefix", str(cache_dir)]
        try:
            done = subprocess.run(
                [*command, f"node-red@{NODE_RED_VERSION}"],
                capture_output=True,
                text=True,
                timeout=INSTALL_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return NodeRed(
                None, node, f"npm install node-red@{NODE_RED_VERSION} took over {INSTALL_TIMEOUT} s"
            )
        if done.returncode != 0 or installed_version(cache_dir) != NODE_RED_VERSION:
            tail = (done.stderr or done.stdout).strip()[-600:]
            return NodeRed(None, node, f"npm install node-red@{NODE_RED_VERSION} failed: {tail}")
    if not red_js.exists():
        return NodeRed(None, node, f"{red_js} is missing")
    return NodeRed(red_js, node)


def flow_nodes(flows_file: Path = FLOWS_FILE) -> list[dict[str, Any]]:
    """The nodes of the benchmark's flow file."""
    nodes = json.loads(flows_file.read_text(encoding="utf-8"))
    if not isinstance(nodes, list):
        raise ValueError(f"{flows_file} is not a list of nodes")
    return nodes


def start_node_red(found: NodeRed, upstream_url: str, work_dir: Path) -> Service:
    """Start Node-RED on a free port of 127.0.0.1 with the benchmark's flow reading ``upstream_url``."""
    if found.red_js is None or found.node is None:
        raise RuntimeError(f"Node-RED is not available: {found.reason}")
    user_dir = work_dir / "nodered-user"
    user_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(FLOWS_FILE, user_dir / "flows.json")
    port = free_port()
    return Service.start(
        "node-red",
        [found.node, str(found.red_js), "--settings", str(SETTINGS_FILE), "--userDir", str(user_dir)],
        port=port,
        ready_path="/health",
        log_dir=work_dir,
        env={"NODE_RED_BENCH_PORT": str(port), "UPSTREAM_URL": upstream_url},
    )
