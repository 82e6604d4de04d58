"""Pydantic models of the HTTP API (``XCreate`` / ``XRead`` / ``XSummary`` / ``Page[X]``), on one base."""

from app.schemas.base import APIModel, ErrorBody, ErrorResponse, Page
from app.schemas.connectors import ConnectorRead, ConnectorSummary, OperationRead
from app.schemas.health import HealthRead
from app.schemas.pipelines import (
    PipelineCreate,
    PipelineRead,
    PipelineSummary,
    ProblemRead,
    RevisionRead,
    RevisionSummary,
    ValidationRead,
)
from app.schemas.runs import RunCreate, RunRead, RunSummary, StepRunRead

__all__ = [
    "APIModel",
    "ConnectorRead",
    "ConnectorSummary",
    "ErrorBody",
    "ErrorResponse",
    "HealthRead",
    "OperationRead",
    "Page",
    "PipelineCreate",
    "PipelineRead",
    "PipelineSummary",
    "ProblemRead",
    "RevisionRead",
    "RevisionSummary",
    "RunCreate",
    "RunRead",
    "RunSummary",
    "StepRunRead",
    "ValidationRead",
]
