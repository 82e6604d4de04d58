"""Storage: SQLAlchemy 2 async tables, migrations and repositories. ALL SQL lives here.

::

    from app.storage import Database, AccountRepo, PipelineRepo, RunRepo

    db = Database(settings.database_url)
    await db.upgrade()
    async with db.session() as session:
        account = await AccountRepo(session).create("acme")
        await session.commit()
"""

from app.storage.base import Base, new_id, utcnow
from app.storage.db import Database
from app.storage.models import Account, ApiKey, Pipeline, PipelineRevision, Run, StepRun
from app.storage.repositories import AccountRepo, ApiKeyRepo, PipelineRepo, RunRepo

__all__ = [
    "Account",
    "AccountRepo",
    "ApiKey",
    "ApiKeyRepo",
    "Base",
    "Database",
    "Pipeline",
    "PipelineRepo",
    "PipelineRevision",
    "Run",
    "RunRepo",
    "StepRun",
    "new_id",
    "utcnow",
]
