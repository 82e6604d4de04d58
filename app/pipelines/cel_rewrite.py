"""Compile-time rewriting of ``default(path, fallback)`` so that a missing key gives the fallback.

CEL evaluates a function's arguments before calling it, so ``default(a.b.c, 1)`` would fail with
"no such key" when ``a`` has no ``b``: the function never gets the chance to apply its fallback.
When the first argument is a *path* (a variable followed by ``.name`` and ``[index]`` accesses),
the call is rewritten into a conditional that checks every step of the path first::

    default(a.b[0], 1)
    ->  ((type(a) == map && "b" in a) && ((type(a.b) == map && (0) in a.b) || (type(a.b) == list
         && type(0) == int && (0) >= 0 && (0) < size(a.b))) && a.b[0] != null) ? a.b[0] : (1)

A path whose step is not a map or list, a missing key, an index out of range and a null value all
give the fallback. Other first arguments (``default(lower(x), "")``) keep the plain function,
which replaces only null.

>>> import cel
>>> cel.evaluate(rewrite_defaults('default(a.b.c, 7)'), {"a": {}})
7
"""

from __future__ import annotations

from app.pipelines.cel_lexer import KEYWORDS, Token, tokenize


def _matching(tokens: list[Token], i: int) -> int | None:
    """Index of the token closing the bracket at ``tokens[i]``, else None."""
    pairs = {"(": ")", "[": "]", "{": "}"}
    stack: list[str] = []
    for j in range(i, len(tokens)):
        text = tokens[j].text
        if tokens[j].kind != "punct":
            continue
        if text in pairs:
            stack.append(pairs[text])
        elif text in (")", "]", "}"):
            if not stack or stack.pop() != text:
                return None
            if not stack:
                return j
    return None


def _split_args(tokens: list[Token], open_index: int, close_index: int) -> list[tuple[int, int]]:
    """Token index ranges ``[start, end)`` of the top-level arguments between two parentheses."""
    args: list[tuple[int, int]] = []
    depth = 0
    start = open_index + 1
    for j in range(open_index + 1, close_index):
        text = tokens[j].text
        if tokens[j].kind == "punct":
            if text in "([{":
                depth += 1
            elif text in ")]}":
                depth -= 1
            elif text == "," and depth == 0:
                args.append((start, j))
                start = j + 1
    if start < close_index:
        args.append((start, close_index))
    return args


def _path_guard(source: str, tokens: list[Token], start: int, end: int) -> str | None:
    """The CEL condition that the path ``tokens[start:end]`` exists and is not null, else None."""
    if start >= end or tokens[start].kind != "ident":
        return None
    conditions: list[str] = []
    prefix_end = tokens[start].end
    base = tokens[start].start
    i = start + 1
    while i < end:
        prefix = rewrite_defaults(source[base:prefix_end])
        tok = tokens[i]
        if tok.text == "." and i + 1 < end and tokens[i + 1].kind in ("ident", "keyword"):
            name = tokens[i + 1].text
            conditions.append(f'(type({prefix}) == map && "{name}" in {prefix})')
            prefix_end = tokens[i + 1].end
            i += 2
        elif tok.text == "[":
            close = _matching(tokens, i)
            if close is None or close >= end or close == i + 1:
                return None
            key = rewrite_defaults(source[tokens[i + 1].start : tokens[close - 1].end])
            conditions.append(
                f"((type({prefix}) == map && ({key}) in {prefix}) || (type({prefix}) == list"
                f" && type({key}) == int && ({key}) >= 0 && ({key}) < size({prefix})))"
            )
            prefix_end = tokens[close].end
            i = close + 1
        else:
            return None
    whole = rewrite_defaults(source[base:prefix_end])
    conditions.append(f"{whole} != null")
    return " && ".join(conditions)


def rewrite_defaults(source: str) -> str:
    """``source`` with every ``default(path, fallback)`` call made safe for missing keys."""
    if "default" not in source:
        return source
    tokens = tokenize(source)
    for i, tok in enumerate(tokens):
        if (
            tok.kind != "ident"
            or tok.text != "default"
            or i + 1 >= len(tokens)
            or tokens[i + 1].text != "("
            or (i > 0 and tokens[i - 1].text == ".")
        ):
            continue
        close = _matching(tokens, i + 1)
        if close is None:
            return source  # unbalanced: let the compiler report it
        args = _split_args(tokens, i + 1, close)
        first = args[0] if args else None
        if len(args) != 2 or first is None or tokens[first[0]].text in KEYWORDS:
            continue
        guard = _path_guard(source, tokens, first[0], first[1])
        if guard is None:
            continue
        value = source[tokens[first[0]].start : tokens[first[1] - 1].end]
        fb_start, fb_end = args[1]
        fallback = rewrite_defaults(source[tokens[fb_start].start : tokens[fb_end - 1].end])
        replacement = f"(({guard}) ? {rewrite_defaults(value)} : ({fallback}))"
        rest = rewrite_defaults(source[tokens[close].end :])
        return source[: tok.start] + replacement + rest
    return source
