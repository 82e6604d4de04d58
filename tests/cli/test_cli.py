"""The `mashpipe` command line: validate, run (locally, real connectors), accounts create, openapi."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from app.cli import cli

REPO = Path(__file__).resolve().parents[2]

VALID = """\
version: 1
name: greet
inputs:
  name: {type: string, default: world}
  times: {type: integer, default: 1}
  tags: {type: array, default: []}
steps:
  - id: hello
    uses: core.template
    with: {text: "Hello, ${{ inputs.name }}!"}
outputs:
  greeting: ${{ steps.hello.output }}
  times: ${{ inputs.times }}
  tags: ${{ inputs.tags }}
"""

INVALID = """\
version: 1
name: bad
steps:
  - id: a
    uses: core.set
    with: {value: 1}
    colour: blue
  - id: b
    uses: nosuch.op
"""

FETCH = """\
version: 1
name: fetch
steps:
  - id: get
    uses: http.get_json
    with: {url: "BASE/data"}
  - id: big
    uses: core.filter
    with: {items: "${{ steps.get.output }}", where: item.n > 1}
outputs:
  big: ${{ steps.big.output }}
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_validate_ok_and_problems(runner, cli_env, tmp_path):
    good = write(tmp_path, "good.yaml", VALID)
    bad = write(tmp_path, "bad.yaml", INVALID)

    result = runner.invoke(cli, ["validate", str(good)])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"{good}: ok"

    result = runner.invoke(cli, ["validate", str(good), str(bad), str(tmp_path / "missing.yaml")])
    assert result.exit_code == 1
    lines = result.stdout.strip().splitlines()
    assert lines[0] == f"{good}: ok"
    problems = [line for line in lines if line.startswith(f"{bad}:")]
    assert any(line.startswith(f"{bad}:7:") and line.endswith("[unknown_key]") for line in problems), problems
    assert any(line.startswith(f"{bad}:9:") and line.endswith("[unknown_connector]") for line in problems), (
        problems
    )
    assert any("missing.yaml: cannot read" in line for line in lines)


def test_validate_the_repository_examples(runner, cli_env):
    files = sorted(str(p) for p in (REPO / "examples").glob("*.yaml"))
    result = runner.invoke(cli, ["validate", *files])
    assert result.exit_code == 0, result.output
    assert result.stdout.count(": ok") == len(files)


def test_run_locally_prints_outputs_and_progress(runner, cli_env, tmp_path):
    path = write(tmp_path, "greet.yaml", VALID)
    result = runner.invoke(
        cli, ["run", str(path), "--input", "name=Ada", "-i", "times=3", "--json-inputs", '{"tags": ["x"]}']
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"greeting": "Hello, Ada!", "times": 3, "tags": ["x"]}
    assert "hello started" in result.stderr
    assert "ok hello in" in result.stderr
    assert " ms" in result.stderr
    assert "run succeeded" in result.stderr
    assert not cli_env.exists()  # no database needed


def test_run_with_a_real_connector_against_a_local_server(runner, cli_env, tmp_path, upstream):
    base = upstream({"/data": (200, [{"n": 1}, {"n": 2}, {"n": 3}])})
    path = write(tmp_path, "fetch.yaml", FETCH.replace("BASE", base))
    result = runner.invoke(cli, ["run", str(path)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"big": [{"n": 2}, {"n": 3}]}
    assert "ok get in" in result.stderr


def test_a_failing_run_exits_1_with_the_step_error(runner, cli_env, tmp_path, upstream):
    base = upstream({})
    path = write(tmp_path, "fetch.yaml", FETCH.replace("BASE", base))
    result = runner.invoke(cli, ["run", str(path)])
    assert result.exit_code == 1
    assert "FAILED get" in result.stderr
    assert "step get failed" in result.stderr
    assert "404" in result.stderr


def test_egress_to_loopback_is_refused_without_the_allowlist(
    runner, cli_env, tmp_path, upstream, monkeypatch
):
    monkeypatch.setenv("MASHPIPE_EGRESS_ALLOW", "")
    base = upstream({"/data": (200, [])})
    path = write(tmp_path, "fetch.yaml", FETCH.replace("BASE", base))
    result = runner.invoke(cli, ["run", str(path)])
    assert result.exit_code == 1
    assert "egress_denied" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--input", "times=many"], "times"),
        (["--input", "nope=1"], "nope"),
        (["--input", "novalue"], "NAME=VALUE"),
        (["--json-inputs", "{bad"], "not valid JSON"),
        (["--json-inputs", "[1]"], "JSON object"),
    ],
)
def test_bad_inputs_are_reported(runner, cli_env, tmp_path, args, message):
    path = write(tmp_path, "greet.yaml", VALID)
    result = runner.invoke(cli, ["run", str(path), *args])
    assert result.exit_code != 0
    assert message in result.stderr


def test_run_an_invalid_file_prints_its_problems(runner, cli_env, tmp_path):
    path = write(tmp_path, "bad.yaml", INVALID)
    result = runner.invoke(cli, ["run", str(path)])
    assert result.exit_code == 1
    assert f"{path}:7:" in result.stderr


def test_accounts_create_prints_a_working_key_once(runner, cli_env):
    from app.security.apikeys import hash_api_key
    from app.storage.db import Database
    from app.storage.repositories import ApiKeyRepo

    result = runner.invoke(cli, ["accounts", "create", "alice"])
    assert result.exit_code == 0, result.output
    key = result.stdout.strip()
    assert key.startswith("mp_")
    assert "shown only this once" in result.stderr

    async def lookup():
        db = Database(f"sqlite+aiosqlite:///{cli_env}")
        try:
            async with db.session() as session:
                secret = b"cli-test-secret-0123456789abcdef"
                return await ApiKeyRepo(session).find_active_by_hash(
                    hash_api_key(key, secret), datetime.now(UTC)
                )
        finally:
            await db.dispose()

    found = asyncio.run(lookup())
    assert found is not None
    assert found[1].name == "alice"

    again = runner.invoke(cli, ["accounts", "create", "alice"])
    assert again.exit_code == 1
    assert "already exists" in again.stderr


def test_openapi_check_and_write(runner, cli_env, tmp_path):
    result = runner.invoke(cli, ["openapi", "--check", "--dir", str(REPO / "openapi")])
    assert result.exit_code == 0, result.output

    target = tmp_path / "out"
    result = runner.invoke(cli, ["openapi", "--check", "--dir", str(target)])
    assert result.exit_code == 1
    assert "out of date" in result.stderr

    result = runner.invoke(cli, ["openapi", "--dir", str(target)])
    assert result.exit_code == 0, result.output
    assert json.loads((target / "openapi.json").read_text())["info"]["title"] == "Mashpipe"
    assert (target / "pipeline.schema.json").exists()
    assert runner.invoke(cli, ["openapi", "--check", "--dir", str(target)]).exit_code == 0
    assert (target / "openapi.json").read_text() == (REPO / "openapi" / "openapi.json").read_text()


@pytest.mark.slow
def test_the_module_entry_point_runs(cli_env, tmp_path):
    good = write(tmp_path, "good.yaml", VALID)
    completed = subprocess.run(
        [sys.executable, "-m", "app.cli", "validate", str(good)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == f"{good}: ok"
