"""`mashpipe run` reads the secrets a pipeline uses from MASHPIPE_SECRET_<NAME> and masks them."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.cli import cli

SOURCE = """\
version: 1
name: with-secret
steps:
  - id: greet
    uses: core.set
    if: secrets.TOKEN == "open-sesame-42"
    with: {value: "the door opens"}
  - id: check
    uses: core.fail
    if: secrets.TOKEN != "open-sesame-42"
    with: {message: "wrong token ${{ secrets.TOKEN }}"}
outputs:
  door: ${{ steps.greet.output }}
"""


@pytest.fixture
def pipeline_file(tmp_path: Path) -> Path:
    path = tmp_path / "with-secret.yaml"
    path.write_text(SOURCE, encoding="utf-8")
    return path


def test_a_missing_secret_is_named_before_anything_runs(runner, cli_env, pipeline_file, monkeypatch) -> None:
    monkeypatch.delenv("MASHPIPE_SECRET_TOKEN", raising=False)
    result = runner.invoke(cli, ["run", str(pipeline_file)])
    assert result.exit_code == 1
    assert "MASHPIPE_SECRET_TOKEN" in result.output
    assert "running" not in result.output


def test_the_secret_comes_from_the_environment(runner, cli_env, pipeline_file, monkeypatch) -> None:
    monkeypatch.setenv("MASHPIPE_SECRET_TOKEN", "open-sesame-42")
    result = runner.invoke(cli, ["run", str(pipeline_file)])
    assert result.exit_code == 0, result.output
    assert '"door": "the door opens"' in result.output
    assert "open-sesame-42" not in result.output


def test_a_secret_in_a_failure_is_masked(runner, cli_env, pipeline_file, monkeypatch) -> None:
    monkeypatch.setenv("MASHPIPE_SECRET_TOKEN", "not-the-right-one-7")
    result = runner.invoke(cli, ["run", str(pipeline_file)])
    assert result.exit_code == 1
    assert "wrong token ***" in result.output
    assert "not-the-right-one-7" not in result.output
