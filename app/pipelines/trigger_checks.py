"""Checks of ``inputs`` declarations and ``triggers``: defaults, enums, ranges, cron, timezones, polls."""

from __future__ import annotations

import re
import zoneinfo
from typing import Any

from croniter import croniter
from pydantic import ValidationError

from app.pipelines.context import CheckContext, connector_hint, did_you_mean
from app.pipelines.inputs import coerce_value
from app.pipelines.problems import Path
from app.pipelines.spec import USES_PATTERN, InputSpec
from app.pipelines.step_checks import check_params
from app.security.webhook_signatures import decode_standard_secret

TRIGGER_KINDS = ("schedule", "webhook", "endpoint", "poll")
INPUT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
_USES = re.compile(USES_PATTERN)


def check_inputs(ctx: CheckContext) -> dict[str, InputSpec]:
    """Check the ``inputs`` declarations; returns the valid ones (for schedule inputs)."""
    inputs = ctx.data.get("inputs")
    if not isinstance(inputs, dict):
        return {}
    declared: dict[str, InputSpec] = {}
    for name, raw in inputs.items():
        ctx.input_names.add(name)
        path: Path = ("inputs", name)
        if not INPUT_NAME.match(name):
            message = f"input name `{name}`: a letter or `_`, then letters, digits, `_` or `-`"
            ctx.add(path, "invalid_name", message, key=True)
        try:
            spec = InputSpec.model_validate(raw)
        except ValidationError:
            continue  # reported by the structure check
        declared[name] = spec
        if spec.enum is not None:
            for j, choice in enumerate(spec.enum):
                try:
                    coerce_value(InputSpec(type=spec.type), choice, strict=True)
                except ValueError as exc:
                    ctx.add((*path, "enum", j), "invalid_value", f"enum value of `{name}`: {exc}")
        if (spec.minimum is not None or spec.maximum is not None) and spec.type not in ("integer", "number"):
            key = "minimum" if spec.minimum is not None else "maximum"
            message = f"`{key}` applies to integer and number inputs, not {spec.type}"
            ctx.add((*path, key), "invalid_value", message)
        if spec.minimum is not None and spec.maximum is not None and spec.minimum > spec.maximum:
            ctx.add((*path, "minimum"), "invalid_value", "`minimum` is greater than `maximum`")
        if spec.default is not None:
            try:
                coerce_value(spec, spec.default, strict=True)
            except ValueError as exc:
                ctx.add((*path, "default"), "invalid_default", f"default of `{name}`: {exc}")
    return declared


def _check_schedule(ctx: CheckContext, path: Path, schedule: Any, declared: dict[str, InputSpec]) -> None:
    if not isinstance(schedule, dict):
        return
    cron = schedule.get("cron")
    if isinstance(cron, str) and not croniter.is_valid(cron):
        message = f"`{cron}` is not a valid cron expression (five fields: minute hour day month weekday)"
        ctx.add((*path, "cron"), "invalid_cron", message)
    timezone = schedule.get("timezone")
    if isinstance(timezone, str):
        try:
            zoneinfo.ZoneInfo(timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            hint = did_you_mean(timezone, zoneinfo.available_timezones(), cutoff=0.8)
            message = f"unknown timezone `{timezone}` (an IANA name such as Europe/Paris){hint}"
            ctx.add((*path, "timezone"), "invalid_timezone", message)
    given = schedule.get("inputs", {})
    if not isinstance(given, dict):
        return
    for name, value in given.items():
        where: Path = (*path, "inputs", name)
        if name not in ctx.input_names:
            hint = did_you_mean(name, ctx.input_names) or (
                f"; this pipeline takes: {', '.join(sorted(ctx.input_names))}" if ctx.input_names else ""
            )
            ctx.add(where, "invalid_input", f"unknown input `{name}`{hint}", key=True)
        elif name in declared and value is not None and not (isinstance(value, str) and "${{" in value):
            try:
                coerce_value(declared[name], value)
            except ValueError as exc:
                ctx.add(where, "invalid_input", f"`{name}`: {exc}")
    for name, spec in declared.items():
        if spec.required and spec.default is None and given.get(name) is None:
            ctx.add((*path, "inputs"), "invalid_input", f"the schedule must give the required input `{name}`")


def _check_poll(ctx: CheckContext, path: Path, poll: Any) -> None:
    if not isinstance(poll, dict) or ctx.catalog is None:
        return
    uses = poll.get("uses")
    if not isinstance(uses, str) or not _USES.match(uses):
        return
    connector, name = uses.split(".", 1)
    if not ctx.catalog.has_connector(connector):
        hint = connector_hint(ctx.catalog, connector)
        ctx.add((*path, "uses"), "unknown_connector", f"unknown connector `{connector}`{hint}")
        return
    names = ctx.catalog.poll_names(connector)
    if name not in names:
        hint = did_you_mean(name, names) or (
            f"; it has: {', '.join(names)}" if names else "; it has no polling triggers"
        )
        message = f"connector `{connector}` has no polling trigger `{name}`{hint}"
        ctx.add((*path, "uses"), "unknown_poll", message)
        return
    model = ctx.catalog.poll_input_model(uses)
    if model is not None:
        check_params(ctx, (*path, "with"), poll.get("with", {}), model, uses)


def _check_webhook(ctx: CheckContext, path: Path, webhook: Any) -> None:
    """One signature scheme per hook; a Standard Webhooks secret written out must be ``whsec_<base64>``."""
    verify = webhook.get("verify") if isinstance(webhook, dict) else None
    if not isinstance(verify, dict):
        return
    schemes = [name for name in ("hmac_sha256", "standard_webhooks") if verify.get(name) is not None]
    if len(schemes) > 1:
        message = "a webhook checks one signature: keep either `hmac_sha256` or `standard_webhooks`"
        ctx.add((*path, "verify"), "invalid_value", message)
    standard = verify.get("standard_webhooks")
    secret = standard.get("secret") if isinstance(standard, dict) else None
    if isinstance(secret, str) and "${{" not in secret:
        try:
            decode_standard_secret(secret)
        except ValueError as exc:
            ctx.add((*path, "verify", "standard_webhooks", "secret"), "invalid_value", str(exc))


def check_triggers(ctx: CheckContext, declared: dict[str, InputSpec]) -> None:
    triggers = ctx.data.get("triggers")
    if not isinstance(triggers, list):
        return
    endpoints = 0
    for index, trigger in enumerate(triggers):
        path: Path = ("triggers", index)
        if not isinstance(trigger, dict):
            continue
        kinds = [kind for kind in TRIGGER_KINDS if trigger.get(kind) is not None]
        unknown = [key for key in trigger if key not in TRIGGER_KINDS]
        if len(kinds) > 1:
            message = f"a trigger has one kind, this one has {' and '.join(kinds)}: make them separate items"
            ctx.add(path, "invalid_trigger", message)
        elif not kinds and not unknown:
            ctx.add(path, "invalid_trigger", f"a trigger needs one of: {', '.join(TRIGGER_KINDS)}")
        _check_schedule(ctx, (*path, "schedule"), trigger.get("schedule"), declared)
        _check_poll(ctx, (*path, "poll"), trigger.get("poll"))
        _check_webhook(ctx, (*path, "webhook"), trigger.get("webhook"))
        if trigger.get("endpoint") is not None:
            endpoints += 1
            if endpoints == 2:
                message = "a pipeline is published at one URL: keep a single `endpoint` trigger"
                ctx.add((*path, "endpoint"), "invalid_trigger", message)
