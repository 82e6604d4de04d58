"""API model of the health check."""

from __future__ import annotations

from typing import Literal

from app.schemas.base import APIModel


class HealthRead(APIModel):
    status: Literal["ok"] = "ok"
    version: str
