"""``mashpipe connectors list|show|docs`` and ``mashpipe connector new`` (whose package passes its tests)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import cli
from app.registry import Registry, RegistryError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_list(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["connectors", "list"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["KEY", "VERSION", "TITLE", "ACTIONS", "TRIGGERS", "SOURCE"]
    github = next(line for line in lines if line.startswith("github "))
    assert "GitHub" in github
    assert github.endswith("distribution mashpipe 0.1.0")
    assert "connectors; `mashpipe connectors show KEY` for details." in lines[-1]


def test_list_json_ignores_the_allowlist(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MASHPIPE_CONNECTORS", "http")
    result = runner.invoke(cli, ["connectors", "list", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["key"]: row for row in json.loads(result.output)}
    assert {"http", "github", "rss"} <= set(rows)
    assert rows["rss"]["polls"] == ["new_entries"]
    assert rows["rss"]["source"].startswith("distribution mashpipe ")


def test_show(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["connectors", "show", "github"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert out.startswith("GitHub (github 1.0.0), from distribution mashpipe")
    assert "auth: oauth2 (OAuth2), bearer (Personal access token)" in out
    assert "rate limit: 5000 requests per hour, per connection" in out
    assert "  github.list_issues  (action) List issues" in out
    assert "      - owner: string (required)  The account owning the repository" in out
    assert '      - state: one of "open", "closed", "all" (default "open")  Issue state' in out
    assert "      returns: list of Issue" in out
    assert "polling triggers:" in out
    assert "webhooks:" in out


def test_show_json_and_unknown(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["connectors", "show", "rss", "--json"])
    assert result.exit_code == 0, result.output
    described = json.loads(result.output)
    assert described["key"] == "rss"
    assert described["polls"][0]["dedupe"] is True
    missing = runner.invoke(cli, ["connectors", "show", "nope"])
    assert missing.exit_code == 1
    assert "error: no connector 'nope' is installed; installed: airtable," in missing.output


def test_broken_plugin_is_reported(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(settings: object, **kwargs: object) -> Registry:
        raise RegistryError("entry point 'x' = 'x:c' of distribution x 1.0 failed to load: ImportError: no")

    monkeypatch.setattr(Registry, "load", broken)
    result = runner.invoke(cli, ["connectors", "list"])
    assert result.exit_code == 2
    assert "error: cannot load the connectors: entry point 'x' = 'x:c' of distribution x 1.0" in result.output


def test_docs_write_and_check(runner: CliRunner, tmp_path: Path) -> None:
    docs = str(ROOT / "docs" / "connectors")
    committed = runner.invoke(cli, ["connectors", "docs", "--check", "--dir", docs])
    assert committed.exit_code == 0, committed.output

    target = tmp_path / "pages"
    written = runner.invoke(cli, ["connectors", "docs", "--dir", str(target)])
    assert written.exit_code == 0, written.output
    assert (target / "github.md").is_file()
    assert (target / "index.md").is_file()
    assert runner.invoke(cli, ["connectors", "docs", "--check", "--dir", str(target)]).exit_code == 0
    (target / "rss.md").unlink()
    stale = runner.invoke(cli, ["connectors", "docs", "--check", "--dir", str(target)])
    assert stale.exit_code == 1
    assert "are stale (missing: rss.md); run `mashpipe connectors docs`" in stale.output


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("Bad-Name", "is not a connector key"),
        ("core", "is not a connector key"),
        ("json", "would shadow the Python module"),
        ("class", "would shadow the Python module"),
        ("tests", "would shadow the Python module"),
        ("github", "a connector 'github' is already installed"),
    ],
)
def test_new_refuses_bad_names(runner: CliRunner, tmp_path: Path, name: str, message: str) -> None:
    result = runner.invoke(cli, ["connector", "new", name, "--dir", str(tmp_path)])
    assert result.exit_code == 1
    assert message in result.output
    assert list(tmp_path.iterdir()) == []


def test_new_refuses_a_non_empty_directory(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "mashpipe-connector-acme-api").mkdir()
    (tmp_path / "mashpipe-connector-acme-api" / "keep.txt").write_text("mine")
    result = runner.invoke(cli, ["connector", "new", "acme_api", "--dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "already exists and is not empty" in result.output


@pytest.mark.slow
def test_new_writes_a_package_whose_tests_pass(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(cli, ["connector", "new", "acme_api", "--dir", str(tmp_path), "--title", "Acme"])
    assert result.exit_code == 0, result.output
    package = tmp_path / "mashpipe-connector-acme-api"
    assert f"created {package}" in result.output
    assert sorted(str(p.relative_to(package)) for p in package.rglob("*") if p.is_file()) == [
        "README.md",
        "acme_api/__init__.py",
        "pyproject.toml",
        "tests/test_acme_api.py",
    ]
    pyproject = (package / "pyproject.toml").read_text()
    assert '[project.entry-points."mashpipe.connectors"]\nacme_api = "acme_api:connector"' in pyproject
    assert 'title="Acme"' in (package / "acme_api" / "__init__.py").read_text()

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "MASHPIPE_"))}
    env["PYTHONPATH"] = str(ROOT)
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=package,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "4 passed" in tests.stdout
