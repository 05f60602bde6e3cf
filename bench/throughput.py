"""Upload and download throughput of 10 MB MP3s through the Resource Service, against the same
bytes put to and got from the same S3 server directly with boto3.

Raw and service transfers alternate, so drift on a shared machine hits both alike; each figure is
the median of the repetitions.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from bench.payloads import MB, READ_CHUNK, delete, download, mp3_bytes, timed, upload
from bench.report import Figure, median
from devstack.stack import Stack

FILE_BYTES = 10 * MB
TARGET_RATIO = 0.9
RAW_BUCKET = "resources-staging"  # the bucket the service uploads to, on the same S3 server


def figures(stack: Stack, s3, repeats: int = 21) -> list[Figure]:
    data = mp3_bytes(FILE_BYTES)
    raw_key = f"bench/{uuid.uuid4()}.mp3"
    ids: list[int] = []
    seconds: dict[str, list[float]] = {}

    def put_raw() -> None:
        s3.put_object(Bucket=RAW_BUCKET, Key=raw_key, Body=data)

    def get_raw() -> int:
        body = s3.get_object(Bucket=RAW_BUCKET, Key=raw_key)["Body"]
        return sum(len(chunk) for chunk in body.iter_chunks(READ_CHUNK))

    def post() -> None:
        ids.append(upload(stack, data))

    def get() -> int:
        return download(stack, ids[0])

    def each_in_turn(calls: dict[str, Callable[[], object]], repeat: int) -> None:
        for name in sorted(calls, reverse=repeat % 2 == 1):  # who goes first alternates
            elapsed, received = timed(calls[name])
            if name.endswith("down"):
                assert received == len(data), f"{name}: {received} of {len(data)} bytes"
            seconds.setdefault(name, []).append(elapsed)

    try:
        for warm_up in (put_raw, post, get_raw, get):  # connections, first-call paths
            warm_up()
        for repeat in range(repeats):
            each_in_turn({"raw up": put_raw, "service up": post}, repeat)
            each_in_turn({"raw down": get_raw, "service down": get}, repeat)
    finally:
        s3.delete_object(Bucket=RAW_BUCKET, Key=raw_key)
        delete(stack, ids)

    def rate(name: str) -> float:
        return len(data) / MB / median(seconds[name])

    return [
        _figure("upload (POST /resources vs put_object)", rate("service up"), rate("raw up")),
        _figure(
            "download (GET /resources/{id} vs get_object)",
            rate("service down"),
            rate("raw down"),
        ),
    ]


def _figure(name: str, value: float, baseline: float) -> Figure:
    return Figure(
        name,
        "MB/s",
        value,
        baseline,
        target=f">= {TARGET_RATIO} x raw S3",
        met=value >= TARGET_RATIO * baseline,
        group="throughput, 10 MB",
    )
