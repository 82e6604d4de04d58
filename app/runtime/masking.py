"""Masking a run's secret values wherever they could be stored or shown: ``***`` instead.

A run resolves its secrets at its edge (:mod:`app.security.secret_store`); from then on a value may
come back in places the pipeline author did not plan: an upstream echoing a header, an error message
quoting a URL, a connector's log line, a Python exception logged by the server. So:

* :class:`Masker` replaces every secret value (and its URL-encoded forms) in text and in JSON-like
  values (keys included);
* :class:`MaskingObserver` wraps the run's storage observer: each step's output, error and logs are
  masked *before* they are handed on to be persisted (the engine keeps the real values in memory for
  the steps that need them);
* the run service masks the run's outputs and error the same way before recording them;
* :func:`masking_scope` marks the code of one run (a context variable, so concurrent runs do not
  see each other's secrets) and :func:`install_log_masking` installs a log record factory that masks
  the scope's secrets in every log record made inside it, whatever the logger or handler
  (message, arguments, exception text and stack).

Values shorter than :data:`MIN_SECRET_CHARS` characters are not masked: replacing every ``a`` or
``42`` would mangle all output while protecting nothing worth protecting.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import re
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from typing import Any
from urllib.parse import quote, quote_plus

import orjson

from app.engine.types import RunObserver, StepError, StepResult
from app.security.secret_scope import SECRETS_IN_SCOPE

REDACTED = "***"
MIN_SECRET_CHARS = 4


def _variants(value: str) -> set[str]:
    """The forms of a value worth masking: as is, and URL-encoded (path and query styles)."""
    forms = {value, quote(value, safe=""), quote_plus(value), quote(value)}
    return {form for form in forms if len(form) >= MIN_SECRET_CHARS}


class Masker:
    """Replaces a fixed set of secret values with ``***`` in text and JSON-like values."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        self.values = tuple(v for v in values if isinstance(v, str) and len(v) >= MIN_SECRET_CHARS)
        forms: set[str] = set()
        for value in self.values:
            forms |= _variants(value)
        ordered = sorted(forms, key=lambda form: (-len(form), form))  # longest first: no partial wins
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None
        # the forms as they appear inside JSON text (quotes, backslashes... escaped): a quick check
        # of a whole value serialized at once, before walking it
        self._in_json = tuple(sorted({orjson.dumps(form)[1:-1] for form in forms}))

    def __bool__(self) -> bool:
        return self._pattern is not None

    def text(self, text: str) -> str:
        """``text`` with every secret replaced."""
        if self._pattern is None:
            return text
        return self._pattern.sub(REDACTED, text)

    def value(self, value: Any) -> Any:
        """A copy of a JSON-like value with every string (and mapping key) masked (the value itself when
        no secret occurs in it)."""
        if self._pattern is None:
            return value
        if isinstance(value, dict | list):
            try:
                encoded = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS, default=str)
            except (TypeError, orjson.JSONEncodeError):
                encoded = None  # odd values: walk the whole value
            if encoded is not None and not any(form in encoded for form in self._in_json):
                return value
        return self._value(value)

    def _value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {
                (self.text(key) if isinstance(key, str) else key): self._value(item)
                for key, item in value.items()
            }
        if isinstance(value, list | tuple):
            return [self._value(item) for item in value]
        return value

    def _key(self, key: Any) -> Any:
        return self.text(key) if isinstance(key, str) else key

    def error(self, error: StepError | None) -> StepError | None:
        """A masked copy of a step or run error."""
        if error is None or self._pattern is None:
            return error
        return StepError(
            code=error.code, message=self.text(error.message), details=self._value(error.details)
        )

    def step(self, result: StepResult) -> StepResult:
        """A masked copy of a step's state (output, error, logs)."""
        if self._pattern is None:
            return result
        return dataclasses.replace(
            result,
            output=self._value(result.output),
            error=self.error(result.error),
            logs=[self.text(line) for line in result.logs],
        )


class MaskingObserver:
    """A :class:`~app.engine.types.RunObserver` handing masked step states on to ``inner``."""

    def __init__(self, inner: RunObserver, masker: Masker) -> None:
        self.inner = inner
        self.masker = masker

    async def step_started(self, run_id: str, result: StepResult) -> None:
        await self.inner.step_started(run_id, self.masker.step(result))

    async def step_finished(self, run_id: str, result: StepResult) -> None:
        await self.inner.step_finished(run_id, self.masker.step(result))


# -- log records -------------------------------------------------------------------------------------

_scope: ContextVar[Masker | None] = ContextVar("mashpipe_run_masker", default=None)


@contextlib.contextmanager
def masking_scope(masker: Masker) -> Iterator[None]:
    """Within the block (and the tasks it starts), log records mask ``masker``'s secrets, and the request
    path's process-wide caches remember nothing (:func:`app.security.secret_scope.secrets_active`: a URL
    or a header may hold one of them)."""
    outer = _scope.get()
    combined = masker if outer is None else Masker((*outer.values, *masker.values))
    token = _scope.set(combined if combined else None)
    secrets = SECRETS_IN_SCOPE.set(masker.values + SECRETS_IN_SCOPE.get()) if masker.values else None
    try:
        yield
    finally:
        if secrets is not None:
            SECRETS_IN_SCOPE.reset(secrets)
        _scope.reset(token)


_FORMATTER = logging.Formatter()


def mask_record(record: logging.LogRecord, masker: Masker) -> None:
    """Mask ``record`` in place: message (with its arguments), exception text and stack."""
    try:
        message = record.getMessage()
    except Exception:  # a malformed record: leave it to the logging module to report
        return
    masked = masker.text(message)
    if masked != message:
        record.msg = masked
        record.args = None
    if record.exc_info and not record.exc_text:
        record.exc_text = masker.text(_FORMATTER.formatException(record.exc_info))
        record.exc_info = None  # formatters would format the unmasked exception again
    elif record.exc_text:
        record.exc_text = masker.text(record.exc_text)
    if record.stack_info:
        record.stack_info = masker.text(record.stack_info)


class _MaskingFactory:
    """Wraps the log record factory: records made inside a :func:`masking_scope` are masked."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record: logging.LogRecord = self.inner(*args, **kwargs)
        masker = _scope.get()
        if masker is not None:
            mask_record(record, masker)
        return record


def install_log_masking() -> None:
    """Make every log record of the process honour :func:`masking_scope` (idempotent)."""
    factory = logging.getLogRecordFactory()
    if not isinstance(factory, _MaskingFactory):
        logging.setLogRecordFactory(_MaskingFactory(factory))
