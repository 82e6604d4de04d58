"""Repositories: every SQL statement of Mashpipe. Each takes an ``AsyncSession`` and never commits."""

from app.storage.repositories.accounts import AccountRepo, ApiKeyRepo
from app.storage.repositories.connections import ConnectionRepo as ConnectionRepo
from app.storage.repositories.hooks import HookRepo, PublishedRepo
from app.storage.repositories.pipelines import PipelineRepo
from app.storage.repositories.runs import RunRepo
from app.storage.repositories.runtime import RuntimeRepo as RuntimeRepo
from app.storage.repositories.secrets import SecretRepo as SecretRepo
from app.storage.repositories.triggers import TriggerRepo as TriggerRepo

__all__ = ["AccountRepo", "ApiKeyRepo", "HookRepo", "PipelineRepo", "PublishedRepo", "RunRepo"]
