"""The Resource Service's own FastAPI dependency: its service layer's collaborators."""

from __future__ import annotations

from typing import Annotated, Protocol, runtime_checkable

from fastapi import Depends, Request

from resource_service.handlers import Dependencies
from service_kit.deps import part


@runtime_checkable
class HasDependencies(Protocol):
    dependencies: Dependencies


def get_dependencies(request: Request) -> Dependencies:
    return part(request, HasDependencies).dependencies


DependenciesDep = Annotated[Dependencies, Depends(get_dependencies)]
