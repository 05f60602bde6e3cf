"""The Storage Service's own FastAPI dependencies: the S3 client and the location rules."""

from __future__ import annotations

from typing import Annotated, Protocol, runtime_checkable

from fastapi import Depends, Request

from service_kit.deps import part
from service_kit.s3 import S3Client
from storage_service.handlers import LocationRules


@runtime_checkable
class HasS3(Protocol):
    s3: S3Client


@runtime_checkable
class HasLocationRules(Protocol):
    location_rules: LocationRules


def get_s3(request: Request) -> S3Client:
    return part(request, HasS3).s3


def get_location_rules(request: Request) -> LocationRules:
    return part(request, HasLocationRules).location_rules


S3Dep = Annotated[S3Client, Depends(get_s3)]
LocationRulesDep = Annotated[LocationRules, Depends(get_location_rules)]
