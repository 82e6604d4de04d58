"""Which operations hand back ``ctx.request_json``'s value untouched: read once from their source.

An operation declared ``-> Any`` has its result written as JSON and read back (``app.sdk.invoke``),
so the engine gets plain JSON values whatever the operation returned. A value orjson has just decoded
is plain JSON already (see ``app.sdk.json_body``): the round trip would give an equal copy. It is
skipped when both hold:

* statically, every ``return`` of the operation's own code is ``return await <ctx>.request_json(...)``
  (``<ctx>`` its first parameter): no code of the operation runs between the decoding and the return,
  so nothing could have changed the value (:func:`returns_request_json`, read from its source when
  an ``-> Any`` action is declared: ``Operation.returns_request_json``; a function without readable
  source, or wrapped, never qualifies);
* at run time, the result is the very object the context's last ``request_json`` decoded with orjson
  (``Context.is_fresh_json``).
"""

from __future__ import annotations

import ast
import inspect
import linecache
import textwrap
import tokenize
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


def _source(code: Any) -> str | None:
    """The source of a function's code from its file's lines (what ``inspect.getsource`` gives, without
    its search of the module among every loaded one: slow the first time)."""
    lines = linecache.getlines(code.co_filename)
    start = code.co_firstlineno - 1
    if not lines or not 0 <= start < len(lines):
        return None
    try:
        return "".join(inspect.getblock(lines[start:]))
    except (SyntaxError, IndentationError, tokenize.TokenError):
        return None


def _verdict(code: Any) -> bool:
    source = _source(code)
    return source is not None and _analyse(code, source)


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
