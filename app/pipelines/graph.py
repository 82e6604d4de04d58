"""The step graph: dependencies, cycles, and secrets that would flow into ``outputs``.

A step depends on every step its ``with``, ``if`` and ``for_each`` read (``steps.X``), and on
those it ``needs`` (``on_error_output`` is a literal value). The engine may reuse
:func:`dependencies`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any

from app.engine.steps.base import CoreStep
from app.pipelines.cel_lexer import UnclosedTemplate, split_template
from app.pipelines.context import CheckContext
from app.pipelines.expr_checks import SiteReads, step_sites
from app.pipelines.problems import Path
from app.pipelines.references import find_references
from app.pipelines.spec import PipelineSpec


def _components(graph: Mapping[str, set[str]], order: list[str]) -> list[list[str]]:
    """Strongly connected components (Tarjan, iterative), each listed in ``order``."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in order:
        if root in index:
            continue
        work: list[tuple[str, list[str]]] = [(root, sorted(graph.get(root, ())))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, todo = work[-1]
            if todo:
                nxt = todo.pop()
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, sorted(graph.get(nxt, ()))))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                rank = {name: i for i, name in enumerate(order)}
                found.append(sorted(component, key=lambda n: rank.get(n, len(rank))))
    return found


def _cycle_path(graph: Mapping[str, set[str]], start: str, members: set[str]) -> list[str]:
    """A shortest cycle through ``start`` inside ``members``: ``[start, ..., start]``."""
    previous: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for nxt in sorted(graph.get(node, ())):
            if nxt not in members:
                continue
            if nxt == start:
                path = [node]
                while path[-1] != start:
                    path.append(previous[path[-1]])
                return [start, *reversed(path[:-1]), start] if node != start else [start, start]
            if nxt not in previous:
                previous[nxt] = node
                queue.append(nxt)
    return [start, start]


def check_cycles(ctx: CheckContext) -> None:
    """Report each cycle of references and ``needs`` once, at the first step of it in the file."""
    graph = {step: set(targets) for step, targets in ctx.deps.items()}
    order = sorted(ctx.step_ids, key=lambda s: ctx.step_ids[s])
    for component in _components(graph, order):
        if len(component) < 2:
            continue
        cycle = _cycle_path(graph, component[0], set(component))
        ref = ctx.deps[cycle[0]][cycle[1]]
        message = f"steps form a cycle: {' -> '.join(cycle)}"
        if ref.offset is None:
            ctx.add(ref.path, "cycle", message)
        else:
            ctx.add_at(ref.path, ref.offset, "cycle", message)


def _tainted(ctx: CheckContext) -> dict[str, set[str]]:
    """The secrets each core step's output may carry, through the core steps it reads too."""
    tainted = {step: set(secrets) for step, secrets in ctx.step_secrets.items()}
    changed = True
    while changed:
        changed = False
        for step, sources in ctx.carried.items():
            carried = set().union(*(tainted.get(source, set()) for source in sources))
            if not carried <= tainted.get(step, set()):
                tainted.setdefault(step, set()).update(carried)
                changed = True
    return tainted


def check_secret_outputs(ctx: CheckContext, outputs: Mapping[Path, SiteReads]) -> None:
    """Report every output value that would carry a secret, directly or through core steps."""
    tainted = _tainted(ctx)
    for path, reads in outputs.items():
        name = path[1] if len(path) > 1 else "?"
        for secret, offset in reads.secrets.items():
            message = f"output `{name}` would expose secret `{secret}`: outputs are public run results"
            ctx.add_at(path, offset, "secret_in_outputs", message)
        for step, offset in reads.steps.items():
            for secret in sorted(tainted.get(step, ())):
                message = f"output `{name}` would expose secret `{secret}` through step `{step}`"
                ctx.add_at(path, offset, "secret_in_outputs", message)


def _read_steps(text: str, mode: str) -> set[str]:
    if mode == "bare":
        spans = [(0, len(text))] if "${{" not in text else []
    else:
        try:
            segments = split_template(text)
        except UnclosedTemplate:
            return set()
        spans = [(seg.expression_start, seg.expression_start + len(seg.expression or "")) for seg in segments]
    return {
        ref.name
        for start, end in spans
        if end > start
        for ref in find_references(text, start, end)
        if ref.root == "steps" and ref.name is not None
    }


def dependencies(spec: PipelineSpec, core_steps: Mapping[str, CoreStep] | None = None) -> dict[str, set[str]]:
    """For each step id, the ids of the steps it waits for (references and ``needs``; itself excluded).

    ``core_steps`` (default: the installed ``CORE_STEPS``) tells which ``with`` fields are bare CEL.
    """
    if core_steps is None:
        from app.pipelines.validate import installed_core_steps

        core_steps = installed_core_steps()
    known = {step.id for step in spec.steps}
    result: dict[str, set[str]] = {}
    for index, step in enumerate(spec.steps):
        raw: dict[str, Any] = {"id": step.id, "with": step.with_, "if": step.if_, "for_each": step.for_each}
        connector, _, operation = step.uses.partition(".")
        core = core_steps.get(operation) if connector == "core" else None
        reads: set[str] = set(step.needs)
        for site in step_sites(index, raw, core):
            reads |= _read_steps(site.text, site.mode)
        result[step.id] = (reads & known) - {step.id}
    return result
