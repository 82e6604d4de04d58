"""``mashpipe connector new NAME``: a connector package that installs, registers and passes its tests at once.

The package written to ``DIR/mashpipe-connector-NAME/``::

    pyproject.toml        setuptools; entry point NAME = "NAME:connector" in group mashpipe.connectors
    README.md             develop, test, install, use in a pipeline
    NAME/__init__.py      the connector: metadata, API-key auth, one working action (get_item)
    tests/test_NAME.py    standard checks + the action against respx mocks (app.sdk.testing)

Edit ``NAME/__init__.py`` (base URL, auth, operations) and its test; ``pip install -e .`` makes the
platform find it. ``NAME`` becomes the connector key and the import name, so it must be a valid key
and must not shadow a standard-library module or an installed connector.
"""

from __future__ import annotations

import keyword
import sys
from collections.abc import Iterable
from pathlib import Path

from app.errors import BadRequest, Conflict
from app.sdk.connector import KEY_RE, RESERVED_KEYS

SHADOWED = frozenset({"app", "connectors", "tests", "test", "mashpipe", "conftest", "setup"})

PYPROJECT = """\
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "{dist}"
version = "0.1.0"
description = "Mashpipe connector: {title}."
readme = "README.md"
requires-python = ">=3.11"
dependencies = ["mashpipe"]

[project.optional-dependencies]
test = ["pytest>=8", "pytest-asyncio>=0.24", "respx>=0.21"]

# How Mashpipe finds the connector: the entry point is named after the connector's key.
[project.entry-points."mashpipe.connectors"]
{name} = "{name}:connector"

[tool.setuptools]
packages = ["{name}"]

[tool.pytest.ini_options]
testpaths = ["tests"]
pythonpath = ["."]
asyncio_mode = "auto"
asyncio_default_fixture_loop_scope = "function"
filterwarnings = ["error"]
"""

CONNECTOR = '''\
"""{title}: a Mashpipe connector (start here: base URL, auth, then one function per operation)."""

from __future__ import annotations

from urllib.parse import quote

from pydantic import BaseModel, Field

from app.sdk import ApiKey, Connector, Context, RateLimit

connector = Connector(
    key="{name}",
    version="0.1.0",
    title="{title}",
    description="Read items from the {title} API.",
    base_url="https://api.example.com/v1",
    auth=[ApiKey(header="X-API-Key")],
    rate_limit=RateLimit(10, per="second"),
    test_request=("GET", "/me"),
    docs_url="https://api.example.com/docs",
)


class ItemParams(BaseModel):
    """What ``{name}.get_item`` takes (its ``with:`` in a pipeline)."""

    item_id: str = Field(min_length=1, description="The item's id")


class Item(BaseModel):
    """One item, as the API returns it (unknown fields are ignored)."""

    id: str = Field(description="The item's id")
    name: str = Field(description="The item's name")


@connector.action(title="Get an item")
async def get_item(ctx: Context, params: ItemParams) -> Item:
    """One item by its id (fails with ``not_found`` when there is none)."""
    data = await ctx.request_json("GET", f"/items/{{quote(params.item_id, safe='')}}")
    return Item.model_validate(data)
'''

TEST = '''\
"""Tests of the {name} connector: the standard checks, and each operation against respx mocks."""

from __future__ import annotations

import pytest
import respx

from app.sdk import AuthFailed, NotFound
from app.sdk.testing import check_connector, run_action
from {name} import connector

API = "https://api.example.com/v1"
CREDENTIALS = {{"kind": "api_key", "api_key": "test-key"}}


def test_standard_checks() -> None:
    assert check_connector(connector) == []


@respx.mock
async def test_get_item() -> None:
    route = respx.get(f"{{API}}/items/42").respond(json={{"id": "42", "name": "The answer", "extra": 1}})
    item = await run_action(connector, "get_item", {{"item_id": "42"}}, credentials=CREDENTIALS)
    assert item == {{"id": "42", "name": "The answer"}}
    assert route.calls.last.request.headers["X-API-Key"] == "test-key"


@respx.mock
async def test_ids_cannot_escape_the_path() -> None:
    route = respx.get(f"{{API}}/items/a%2F..%2Fadmin").respond(json={{"id": "a/../admin", "name": "x"}})
    await run_action(connector, "get_item", {{"item_id": "a/../admin"}}, credentials=CREDENTIALS)
    assert route.called


@respx.mock
async def test_errors_are_typed() -> None:
    respx.get(f"{{API}}/items/nope").respond(404, json={{"message": "no such item"}})
    with pytest.raises(NotFound, match="no such item"):
        await run_action(connector, "get_item", {{"item_id": "nope"}}, credentials=CREDENTIALS)
    respx.get(f"{{API}}/items/secret").respond(401, json={{"message": "bad key"}})
    with pytest.raises(AuthFailed, match="bad key"):
        await run_action(connector, "get_item", {{"item_id": "secret"}}, credentials=CREDENTIALS)
'''

README = """\
# {dist}

A [Mashpipe](https://github.com/mashpipe) connector for the {title} API: `{name}.get_item`.

## Develop

```sh
pip install -e '.[test]'     # into the environment where mashpipe is installed
pytest                       # the connector's tests: respx mocks, no network
mashpipe connectors show {name}
```

Edit `{name}/__init__.py`: set the real base URL and auth, then add operations, one `async def`
each, decorated with `@connector.action(...)` or `@connector.poll(..., dedupe=...)`. The guide is
`docs/writing-connectors.md` in the Mashpipe repository.

## Use it in a pipeline

```yaml
steps:
  - id: item
    uses: {name}.get_item
    connection: my-{dashed}   # a stored connection with the API key
    with: {{item_id: "42"}}
```

Mashpipe finds the connector through the entry point `{name}` of the group `mashpipe.connectors`
(see `pyproject.toml`); `MASHPIPE_CONNECTORS` can restrict which connectors load.
"""


def check_name(name: str, *, taken: Iterable[str] = ()) -> None:
    """Refuse a name that is not a usable connector key and import name (``BadRequest``, 400)."""
    if not isinstance(name, str) or not KEY_RE.match(name) or name in RESERVED_KEYS:
        raise BadRequest(
            f"{name!r} is not a connector key: use 1-40 lower-case letters, digits or _, starting with a "
            "letter (not `core`)"
        )
    if keyword.iskeyword(name) or name in sys.stdlib_module_names or name in SHADOWED:
        raise BadRequest(
            f"{name!r} would shadow the Python module of the same name; pick another (such as {name}_api)"
        )
    if name in set(taken):
        raise BadRequest(f"a connector {name!r} is already installed; pick another name")


def package_dir(name: str, parent: Path) -> Path:
    """Where ``scaffold`` writes the package for ``name``."""
    return parent / f"mashpipe-connector-{name.replace('_', '-')}"


def scaffold(name: str, parent: Path, *, title: str | None = None, taken: Iterable[str] = ()) -> Path:
    """Write the package for connector ``name`` under ``parent``; return its directory.

    ``taken`` are the keys of installed connectors. Refuses a bad name (``BadRequest``) and a target
    directory that exists and is not empty (``Conflict``).
    """
    check_name(name, taken=taken)
    title = (title or name.replace("_", " ").title()).strip()
    if not title or any(ch in title for ch in '"\\\n{}'):
        raise BadRequest("the title must be one line without quotes, backslashes or braces")
    target = package_dir(name, parent)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise Conflict(f"{target} already exists and is not empty")
    values = {"name": name, "title": title, "dist": target.name, "dashed": name.replace("_", "-")}
    files = {
        "pyproject.toml": PYPROJECT,
        "README.md": README,
        f"{name}/__init__.py": CONNECTOR,
        f"tests/test_{name}.py": TEST,
    }
    for relative, template in files.items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template.format(**values), encoding="utf-8")
    return target
