"""Registry: entry-point discovery (fake distributions on disk), refusals, allowlist, catalog, metadata."""

from __future__ import annotations

import json
import textwrap
from importlib.metadata import EntryPoint, PathDistribution
from pathlib import Path

import pytest
from pydantic import BaseModel, Field

from app.errors import NotFound
from app.pipelines.catalog import OperationCatalog
from app.registry import ENTRY_POINT_GROUP, Registry, RegistryError
from app.sdk import Connector, Context, Poll
from app.sdk.testing import settings_for_tests

PLUGIN = '''
from pydantic import BaseModel, Field
from app.sdk import Connector, Context, Poll

class Params(BaseModel):
    q: str = Field(description="Query")

def make(key):
    c = Connector(key=key, version="2.0.0", title=key.title(), description=f"The {key} API.",
                  base_url=f"https://{key}.example.test")

    @c.action(title="Search")
    async def search(ctx: Context, p: Params) -> list[str]:
        """Search things."""
        return []

    @c.poll(title="New thing", dedupe=lambda item: item)
    async def new_thing(ctx: Context, p: Params, cursor: int | None) -> Poll[str]:
        """New things."""
        return Poll(items=[], cursor=cursor)

    return c

alpha = make("alpha")
beta = make("beta")
alpha_again = make("alpha")
not_a_connector = {"key": "fake"}
'''


def fake_distribution(root: Path, name: str, version: str, entry_points: dict[str, str]) -> PathDistribution:
    """A distribution on disk (dist-info with METADATA and entry_points.txt), like pip would install."""
    info = root / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines = [f"[{ENTRY_POINT_GROUP}]"] + [f"{key} = {value}" for key, value in entry_points.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    return PathDistribution(info)


@pytest.fixture
def plugin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    module = tmp_path / "mashpipe_fake_plugins.py"
    module.write_text(textwrap.dedent(PLUGIN))
    (tmp_path / "mashpipe_broken_plugin.py").write_text("raise RuntimeError('plugin exploded at import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def eps(dist: PathDistribution) -> list[EntryPoint]:
    return list(dist.entry_points.select(group=ENTRY_POINT_GROUP))


def test_discovers_fake_entry_points(plugin_dir: Path) -> None:
    dist = fake_distribution(
        plugin_dir,
        "mashpipe-connector-fake",
        "1.4.0",
        {"alpha": "mashpipe_fake_plugins:alpha", "beta": "mashpipe_fake_plugins:beta"},
    )
    registry = Registry.load(settings_for_tests(), entry_points=eps(dist))
    assert registry.keys() == ["alpha", "beta"]
    assert registry.source("alpha") == "distribution mashpipe-connector-fake 1.4.0"
    assert registry.get("beta").title == "Beta"


def test_duplicate_key_names_both_distributions(plugin_dir: Path) -> None:
    one = fake_distribution(
        plugin_dir / "one", "connector-one", "1.0.0", {"alpha": "mashpipe_fake_plugins:alpha"}
    )
    two = fake_distribution(
        plugin_dir / "two", "connector-two", "3.1.0", {"alpha": "mashpipe_fake_plugins:alpha_again"}
    )
    with pytest.raises(RegistryError) as caught:
        Registry.load(settings_for_tests(), entry_points=eps(one) + eps(two))
    assert caught.value.message == (
        "connector key 'alpha' is provided twice: by distribution connector-one 1.0.0 "
        "and by distribution connector-two 3.1.0"
    )


def test_object_that_is_not_a_connector_is_refused(plugin_dir: Path) -> None:
    dist = fake_distribution(
        plugin_dir, "bad-plugin", "0.0.1", {"fake": "mashpipe_fake_plugins:not_a_connector"}
    )
    with pytest.raises(RegistryError) as caught:
        Registry.load(settings_for_tests(), entry_points=eps(dist))
    assert caught.value.message == (
        "entry point 'fake' = 'mashpipe_fake_plugins:not_a_connector' of distribution bad-plugin 0.0.1 "
        "is a dict, not a mashpipe Connector"
    )


def test_import_failure_is_reported_with_distribution(plugin_dir: Path) -> None:
    dist = fake_distribution(
        plugin_dir, "broken-plugin", "0.2.0", {"broken": "mashpipe_broken_plugin:connector"}
    )
    with pytest.raises(
        RegistryError, match=r"of distribution broken-plugin 0\.2\.0 failed to load: RuntimeError"
    ):
        Registry.load(settings_for_tests(), entry_points=eps(dist))


def test_entry_point_name_must_match_key(plugin_dir: Path) -> None:
    dist = fake_distribution(plugin_dir, "misnamed", "1.0.0", {"gamma": "mashpipe_fake_plugins:alpha"})
    with pytest.raises(
        RegistryError, match="holds connector 'alpha'; the entry point must be named after the key"
    ):
        Registry.load(settings_for_tests(), entry_points=eps(dist))


def test_allowlist_skips_others_without_importing_them(plugin_dir: Path) -> None:
    dist = fake_distribution(
        plugin_dir,
        "mixed",
        "1.0.0",
        {"alpha": "mashpipe_fake_plugins:alpha", "broken": "mashpipe_broken_plugin:connector"},
    )
    registry = Registry.load(settings_for_tests(connectors="alpha"), entry_points=eps(dist))
    assert registry.keys() == ["alpha"]
    with pytest.raises(
        RegistryError, match="MASHPIPE_CONNECTORS names connectors that are not installed: zeta"
    ):
        Registry.load(settings_for_tests(connectors="alpha,zeta"), entry_points=eps(dist))


def test_installed_builtins_are_found_through_entry_points() -> None:
    registry = Registry.load(settings_for_tests())
    assert "http" in registry
    assert registry.source("http").startswith("distribution mashpipe ")
    assert registry.operation_names("http") == ["request", "get_json"]


def test_allowlist_on_real_entry_points() -> None:
    assert Registry.load(settings_for_tests(connectors="http")).keys() == ["http"]


class Q(BaseModel):
    q: str = Field(description="Query")


def build_demo() -> Connector:
    demo = Connector(
        key="demo", version="1.0.0", title="Demo", description="Demo.", base_url="https://d.test"
    )

    @demo.action(title="Find")
    async def find(ctx: Context, p: Q) -> list[int]:
        """Find numbers."""
        return []

    @demo.poll(title="New", dedupe=lambda n: n)
    async def new_number(ctx: Context, p: Q, cursor: int | None) -> Poll[int]:
        """New numbers."""
        return Poll(items=[], cursor=cursor)

    return demo


def test_operation_catalog_protocol() -> None:
    registry = Registry.from_connectors([build_demo()])
    catalog: OperationCatalog = registry
    assert catalog.has_connector("demo")
    assert not catalog.has_connector("nope")
    assert catalog.operation_names("demo") == ["find", "request"]
    assert catalog.operation_names("nope") == []
    assert catalog.input_model("demo.find") is Q
    assert catalog.input_model("demo.new_number") is None
    assert catalog.input_model("demo.missing") is None
    assert catalog.input_model("nope.find") is None
    assert catalog.input_model("demofind") is None
    assert catalog.poll_names("demo") == ["new_number"]
    assert catalog.poll_input_model("demo.new_number") is Q
    assert catalog.poll_input_model("demo.find") is None


def test_get_and_operation_lookups() -> None:
    registry = Registry.from_connectors([build_demo()])
    assert registry.operation("demo.find").uses == "demo.find"
    assert registry.operation("demo.request").builtin
    with pytest.raises(NotFound, match="no connector 'nope' is installed"):
        registry.get("nope")
    with pytest.raises(NotFound, match=r"no operation 'demo\.nope' is installed"):
        registry.operation("demo.nope")
    assert [c.key for c in registry.connectors()] == ["demo"]
    assert len(registry) == 1


def test_from_connectors_refuses_bad_input() -> None:
    with pytest.raises(RegistryError, match="is a str, not a mashpipe Connector"):
        Registry.from_connectors(["http"])  # type: ignore[list-item]
    with pytest.raises(RegistryError, match="connector key 'demo' is provided twice"):
        Registry.from_connectors([build_demo(), build_demo()])


def test_describe_and_summary_are_json() -> None:
    registry = Registry.from_connectors([build_demo()])
    described = registry.describe("demo")
    json.dumps(described)
    assert described["key"] == "demo"
    assert described["source"] == "(in code)"
    assert described["auth_kinds"] == ["none"]
    find = described["operations"][0]
    assert find["uses"] == "demo.find"
    assert find["description"] == "Find numbers."
    assert find["input_schema"]["properties"]["q"]["description"] == "Query"
    assert find["output_schema"] == {"items": {"type": "integer"}, "type": "array"}
    assert described["polls"][0]["name"] == "new_number"
    summary = registry.summary()
    json.dumps(summary)
    assert summary == [
        {
            "key": "demo",
            "version": "1.0.0",
            "title": "Demo",
            "description": "Demo.",
            "auth_kinds": ["none"],
            "operations": ["find", "request"],
            "polls": ["new_number"],
            "webhooks": [],
        }
    ]
    with pytest.raises(NotFound):
        registry.describe("nope")
