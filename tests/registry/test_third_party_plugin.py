"""Third-party discovery, for real: pip installs ``examples/connector-example`` and the registry finds it.

The package is built from a copy (so the repository gets no ``build/`` or ``egg-info``), installed with
``pip install --no-deps --no-build-isolation --no-index --target DIR`` (no internet, nothing added to
the virtualenv), and ``DIR`` is put on ``sys.path`` for the test only. Then the connector is found
through its ``mashpipe.connectors`` entry point, runs in a pipeline, shows up in the CLI of a fresh
process, and passes its own tests. Everything is removed afterwards.
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import respx

from app.registry import Registry, RegistryError
from app.runtime.caller import ConnectorCaller
from app.sdk.http import build_http_client
from app.sdk.testing import settings_for_tests
from tests.engine.fakes import load, run

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "connector-example"

pytestmark = pytest.mark.slow


def clean_env(extra_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "MASHPIPE_", "PIP_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(extra_path), str(ROOT)])
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The example package pip-installed into a private target directory (removed at the end)."""
    work = tmp_path_factory.mktemp("plugin")
    source = work / "src"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = work / "site"
    try:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--no-deps",
                "--no-build-isolation",
                "--no-index",
                "--target",
                str(target),
                str(source),
            ],
            env=clean_env(work),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        yield target
    finally:
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture
def on_path(installed: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """``installed`` importable in this process, for one test; imports and caches undone after."""
    monkeypatch.syspath_prepend(str(installed))
    yield installed
    for name in [n for n in sys.modules if n == "mashpipe_quotes" or n.startswith("mashpipe_quotes.")]:
        del sys.modules[name]
    sys.path_importer_cache.pop(str(installed), None)
    importlib.invalidate_caches()


def test_pip_installed_package_is_discovered(on_path: Path) -> None:
    assert (on_path / "mashpipe_connector_quotes-1.0.0.dist-info" / "entry_points.txt").is_file()
    registry = Registry.load(settings_for_tests())
    assert "quotes" in registry
    assert registry.source("quotes") == "distribution mashpipe-connector-quotes 1.0.0"
    assert registry.get("quotes").polls()[0].name == "new_quotes"
    assert "github" in registry  # the built-ins are still there, found the same way

    only = Registry.load(settings_for_tests(connectors="quotes,http"))
    assert only.keys() == ["http", "quotes"]


def test_allowlist_without_the_plugin_does_not_import_it(on_path: Path) -> None:
    Registry.load(settings_for_tests(connectors="http"))
    assert "mashpipe_quotes" not in sys.modules


def test_duplicate_key_names_both_distributions(on_path: Path) -> None:
    from importlib import metadata

    eps = list(metadata.entry_points(group="mashpipe.connectors"))
    quotes = next(ep for ep in eps if ep.name == "quotes")
    with pytest.raises(RegistryError, match="connector key 'quotes' is provided twice") as caught:
        Registry.load(settings_for_tests(), entry_points=[quotes, quotes])
    assert "distribution mashpipe-connector-quotes 1.0.0" in caught.value.message


@respx.mock
async def test_plugin_runs_in_a_pipeline(on_path: Path) -> None:
    respx.get("https://dummyjson.com/quotes/random").respond(
        json={"id": 5, "quote": "Simplicity is prerequisite for reliability.", "author": "Edsger Dijkstra"}
    )
    settings = settings_for_tests()
    spec = load(
        """
        version: 1
        name: quote-of-the-day
        steps:
          - id: quote
            uses: quotes.random_quote
          - id: line
            uses: core.template
            with: {text: "${{ steps.quote.output.author }}: ${{ steps.quote.output.quote }}"}
        outputs:
          line: ${{ steps.line.output }}
        """
    )
    async with build_http_client(settings) as client:
        caller = ConnectorCaller(Registry.load(settings), client, settings)
        result = await run(spec, caller=caller)
    assert result.outputs == {"line": "Edsger Dijkstra: Simplicity is prerequisite for reliability."}


def test_cli_of_a_fresh_process_lists_it(installed: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "connectors", "show", "quotes"],
        env=clean_env(installed),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    first = result.stdout.splitlines()[0]
    assert first == "Quotes (quotes 1.0.0), from distribution mashpipe-connector-quotes 1.0.0"
    assert "quotes.new_quotes  (poll) New quote" in result.stdout


def test_the_installed_package_passes_its_own_tests(installed: Path, tmp_path: Path) -> None:
    tests = tmp_path / "tests"
    shutil.copytree(EXAMPLE / "tests", tests)
    shutil.copy(EXAMPLE / "pyproject.toml", tmp_path / "pyproject.toml")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=tmp_path,  # the source tree is not here: the installed package is what gets imported
        env=clean_env(installed),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "6 passed" in result.stdout
