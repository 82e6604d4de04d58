"""GitHub (https://docs.github.com/en/rest): issues, repositories, releases, webhooks.

Auth: a personal access token (``{"kind": "bearer", "token": "ghp_..."}``) or OAuth2 (the ``repo``
scope). Every request sends ``Accept: application/vnd.github+json`` and ``X-GitHub-Api-Version``.
Lists follow the ``Link`` header. The REST API allows 5000 requests an hour per token (declared, so
the platform spaces them); an exhausted quota (403 with ``X-RateLimit-Remaining: 0``) or a secondary
limit (403/429 with ``Retry-After``) fails the step as ``rate_limited``, retryable after the reset time.

* actions: ``list_issues``, ``search_issues``, ``create_issue``, ``comment_on_issue``, ``list_repos``,
  ``search_repos`` (and the raw ``request``);
* polls: ``new_issues`` (dedupe: issue number), ``new_releases`` (dedupe: release id);
* webhook: ``events``, signed with ``X-Hub-Signature-256``.
"""

from __future__ import annotations

from . import issues, repos, triggers
from .base import connector
from .models import Comment, Event, Issue, Release, Repository

__all__ = ["Comment", "Event", "Issue", "Release", "Repository", "connector", "issues", "repos", "triggers"]
