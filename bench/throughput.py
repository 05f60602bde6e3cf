"""Upload and download throughput through the Resource Service, against three baselines on the
same S3 server in the same run:

- direct: boto3 `put_object` / `get_object` of the same bytes;
- relay: the same through a byte relay (`bench.relay`), one extra TCP hop with no work in it;
- same S3 calls: raw boto3 making exactly the calls the service makes for that size (one PUT up
  to UPLOAD_SINGLE_PUT_BYTES, else a multipart upload with its part sizes), same client settings.

Direct minus same-calls is the S3 server's share of the gap (LocalStack's multipart is slower
than its PUT); same-calls minus the service is ours. Calls alternate and each figure is a
median, so drift on a shared machine hits all of them alike.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from bench.payloads import MB, READ_CHUNK, delete, download, mp3_bytes, timed, upload
from bench.relay import relay
from bench.report import Figure, median
from devstack.testing.stack import Stack
from resource_service.config import Settings as ResourceSettings
from service_kit.s3 import S3Client

BUCKET = "resources-staging"  # the bucket the service uploads to, on the same S3 server
# size -> repetitions; 10 MB carries the targets, 50 MB shows a multipart upload's split.
SIZES = {10 * MB: 15, 50 * MB: 5}
UPLOAD_VS_SAME_CALLS, UPLOAD_VS_DIRECT, DOWNLOAD_VS_RELAY = 0.9, 0.7, 0.9


def same_s3_calls_put(s3: S3Client, key: str, data: bytes) -> None:
    """What `ObjectStore.upload` sends for `data`, one call after another."""
    settings = ResourceSettings()
    body = bytearray(data)
    if len(body) <= settings.upload_single_put_bytes:
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)
        return
    upload_id = s3.create_multipart_upload(Bucket=BUCKET, Key=key, ContentType="audio/mpeg")[
        "UploadId"
    ]
    # The first part is what the service had buffered: a request body chunk past the limit.
    first = settings.upload_single_put_bytes + 64 * 1024
    bounds = [
        0,
        first,
        *range(first + settings.upload_part_bytes, len(body), settings.upload_part_bytes),
    ]
    parts = []
    for number, start in enumerate(bounds, 1):
        end = bounds[number] if number < len(bounds) else len(body)
        reply = s3.upload_part(
            Bucket=BUCKET, Key=key, UploadId=upload_id, PartNumber=number, Body=body[start:end]
        )
        parts.append({"PartNumber": number, "ETag": reply["ETag"]})
    s3.complete_multipart_upload(
        Bucket=BUCKET, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
    )


def _get(s3: S3Client, key: str) -> int:
    body = s3.get_object(Bucket=BUCKET, Key=key)["Body"]
    return sum(len(chunk) for chunk in body.iter_chunks(READ_CHUNK))


def measure(
    stack: Stack, s3: S3Client, relayed_s3: S3Client, size: int, repeats: int
) -> dict[str, float]:
    """Median MB/s of each way, for files of `size` bytes."""
    data = mp3_bytes(size)
    key = f"bench/{uuid.uuid4()}.mp3"
    ids: list[int] = []
    ups: dict[str, Callable[[], object]] = {
        "direct up": lambda: s3.put_object(Bucket=BUCKET, Key=key, Body=data),
        "relay up": lambda: relayed_s3.put_object(Bucket=BUCKET, Key=key, Body=data),
        "same calls up": lambda: same_s3_calls_put(s3, key, data),
        "service up": lambda: ids.append(upload(stack, data)),
    }
    downs: dict[str, Callable[[], object]] = {
        "direct down": lambda: _get(s3, key),
        "relay down": lambda: _get(relayed_s3, key),
        "service down": lambda: download(stack, ids[0]),
    }
    seconds: dict[str, list[float]] = {}
    try:
        for call in [*ups.values(), *downs.values()]:  # warm-up: connections, first-call paths
            call()
        for repeat in range(repeats):
            for calls in (ups, downs):
                for name in sorted(calls, reverse=repeat % 2 == 1):  # who goes first alternates
                    elapsed, received = timed(calls[name])
                    if name.endswith("down"):
                        assert received == len(data), f"{name}: {received} of {len(data)} bytes"
                    seconds.setdefault(name, []).append(elapsed)
    finally:
        s3.delete_object(Bucket=BUCKET, Key=key)
        delete(stack, ids)
    return {name: len(data) / MB / median(times) for name, times in seconds.items()}


def figures(stack: Stack, s3: S3Client, make_s3_client: Callable[[str], S3Client]) -> list[Figure]:
    """`make_s3_client(endpoint_url)` builds a client like `s3` for another endpoint."""
    results: list[Figure] = []
    with relay(s3.meta.endpoint_url) as relay_url:
        relayed = make_s3_client(relay_url)
        for size, repeats in SIZES.items():
            rates = measure(stack, s3, relayed, size, repeats)
            results += _figures(rates, size, targeted=size == 10 * MB)
    return results


def _figures(rate: dict[str, float], size: int, targeted: bool) -> list[Figure]:
    group = f"throughput, {size // MB} MB"
    gap = rate["direct up"] - rate["service up"]
    s3_share = (rate["direct up"] - rate["same calls up"]) / gap if gap > 0 else 0.0

    def figure(
        name: str, value: float, baseline: float, limit: float = 0.0, note: str = ""
    ) -> Figure:
        limit = limit if targeted else 0.0
        return Figure(
            name,
            "MB/s",
            value,
            baseline,
            target=f">= {limit:g} x baseline" if limit else None,
            met=value >= limit * baseline if limit else None,
            group=group,
            note=note,
        )

    return [
        figure(
            "upload: service vs the same S3 calls",
            rate["service up"],
            rate["same calls up"],
            UPLOAD_VS_SAME_CALLS,
            note=f"of the gap to direct put: {s3_share:.0%} the S3 server's (its calls), "
            f"{1 - s3_share:.0%} ours",
        ),
        figure(
            "upload: service vs direct put_object",
            rate["service up"],
            rate["direct up"],
            UPLOAD_VS_DIRECT,
        ),
        figure("upload: the same S3 calls vs direct", rate["same calls up"], rate["direct up"]),
        figure("upload: through the relay vs direct", rate["relay up"], rate["direct up"]),
        figure(
            "download: service vs through the relay",
            rate["service down"],
            rate["relay down"],
            DOWNLOAD_VS_RELAY,
        ),
        figure("download: through the relay vs direct", rate["relay down"], rate["direct down"]),
    ]
