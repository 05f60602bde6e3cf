from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from resource_service.handlers import Dependencies


def get_dependencies(request: Request) -> Dependencies:
    return request.app.state.dependencies


DependenciesDep = Annotated[Dependencies, Depends(get_dependencies)]
