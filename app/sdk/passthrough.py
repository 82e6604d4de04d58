"""Which operations hand back ``ctx.request_json``'s value untouched: read once from their source.

An operation declared ``-> Any`` has its result written as JSON and read back (``app.sdk.invoke``),
so the engine gets plain JSON values whatever the operation returned. A value orjson has just decoded
is plain JSON already (see ``app.sdk.json_body``): the round trip would give an equal copy. It is
skipped when both hold:

* statically, every ``return`` of the operation's own code is ``return await <ctx>.request_json(...)``
  (``<ctx>`` its first parameter): no code of the operation runs between the decoding and the return,
  so nothing could have changed the value (:func:`returns_request_json`, read once per function from
  its source; a function without readable source, or wrapped, never qualifies);
* at run time, the result is the very object the context's last ``request_json`` decoded with orjson
  (``Context.is_fresh_json``).
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections.abc import Callable, Iterator
from typing import Any

_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)


def _returns(node: ast.AST) -> Iterator[ast.Return]:
    """The ``return`` statements of a function body, those of nested functions and classes left out."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Return):
            yield child
        if not isinstance(child, _SCOPES):
            yield from _returns(child)


def _is_request_json_of(value: ast.expr | None, ctx: str) -> bool:
    """Whether ``value`` is ``await <ctx>.request_json(...)``."""
    if not isinstance(value, ast.Await):
        return False
    call = value.value
    if not isinstance(call, ast.Call):
        return False
    target = call.func
    return (
        isinstance(target, ast.Attribute)
        and target.attr == "request_json"
        and isinstance(target.value, ast.Name)
        and target.value.id == ctx
    )


def _analyse(code: Any, source: str) -> bool:
    try:
        tree = ast.parse(textwrap.dedent(source))
    except SyntaxError:
        return False
    functions = [node for node in tree.body if isinstance(node, ast.AsyncFunctionDef)]
    if len(functions) != 1 or functions[0].name != code.co_name:
        return False
    function = functions[0]
    positional = [*function.args.posonlyargs, *function.args.args]
    if not positional:
        return False
    ctx = positional[0].arg
    returns = list(_returns(function))
    return bool(returns) and all(_is_request_json_of(node.value, ctx) for node in returns)


# id(code) -> (code, verdict): the code object is kept, so its id is never reused while remembered.
_VERDICTS: dict[int, tuple[Any, bool]] = {}
_VERDICTS_KEPT = 1024


def _verdict(code: Any) -> bool:
    try:
        source = inspect.getsource(code)
    except (OSError, TypeError):
        return False
    return _analyse(code, source)


def returns_request_json(func: Callable[..., Any]) -> bool:
    """Whether every ``return`` of ``func`` (an ``async def``) is ``return await ctx.request_json(...)``."""
    code = getattr(func, "__code__", None)
    if code is None or getattr(func, "__wrapped__", None) is not None:
        return False
    known = _VERDICTS.get(id(code))
    if known is not None and known[0] is code:
        return known[1]
    verdict = inspect.iscoroutinefunction(func) and _verdict(code)
    if len(_VERDICTS) >= _VERDICTS_KEPT:
        _VERDICTS.clear()
    _VERDICTS[id(code)] = (code, verdict)
    return verdict
