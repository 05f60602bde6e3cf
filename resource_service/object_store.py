"""The resource bytes in S3: a streaming upload with flat memory, ranged reads, the move, delete.

Only I/O: what may be uploaded (type, size, pace) is decided where the body passes
(`upload_body`). boto3 is blocking, so every call runs in a worker thread of the store's own
pool, not asyncio's default one: a hanging S3 then cannot starve the database calls and health
checks that use the default pool. Nothing of boto3's leaves this module: a read returns our own
`StoredObject`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog
from botocore.exceptions import ClientError

from resource_service.errors import ObjectMissing, RangeNotSatisfiable
from service_kit.s3 import MISSING_KEY, S3Client, error_code, object_exists
from service_kit.threads import run_in

log = structlog.get_logger(__name__)

READ_CHUNK_BYTES = 1024 * 1024
T = TypeVar("T")


@dataclass(frozen=True)
class StoredObject:
    """The bytes of an object, or of a range of it, as they stream from S3."""

    chunks: AsyncIterator[bytes]
    size: int  # of what `chunks` yields
    content_range: str | None  # `bytes 0-99/1000` for a range, else None


def _is_missing(exc: ClientError) -> bool:
    return error_code(exc) in MISSING_KEY


@dataclass
class ObjectStore:
    s3: S3Client
    single_put_bytes: int  # a body up to this size is one PUT
    part_bytes: int  # the size of a multipart upload's parts after the first
    threads: ThreadPoolExecutor

    def _in_thread(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> asyncio.Future[T]:
        return run_in(self.threads, fn, *args, **kwargs)

    async def upload(
        self, chunks: AsyncIterator[bytes], destination: Callable[[], Awaitable[tuple[str, str]]]
    ) -> int:
        """Stream `chunks` into the (bucket, key) that `destination()` gives; returns the size.
        Nothing is left behind on failure.

        `destination()` is awaited once, just before the first write, so whatever decides it
        runs while the first bytes arrive.

        A body up to `single_put_bytes` is one PUT. A larger one is a multipart upload: the
        bytes buffered so far are its first part, then parts of `part_bytes`, one sent while the
        next is received, so memory stays bounded whatever the file size. The buffer is handed
        to boto3 as it is (a bytearray): no copy of the body is made.
        """
        buffer = bytearray()
        size = 0
        bucket = key = ""
        upload_id: str | None = None
        parts: list[dict[str, Any]] = []
        in_flight: asyncio.Future[dict[str, Any]] | None = None  # the part being sent
        try:
            async for chunk in chunks:
                size += len(chunk)
                buffer += chunk
                if not self._part_ready(len(buffer), first=upload_id is None):
                    continue
                if upload_id is None:
                    bucket, key = await destination()
                    upload_id = await self._in_thread(self._start_multipart, bucket, key)
                if in_flight is not None:
                    parts.append(await in_flight)
                part, buffer = buffer, bytearray()  # hand the part over without copying it
                in_flight = self._in_thread(
                    self._upload_part, bucket, key, upload_id, len(parts) + 1, part
                )
            if upload_id is None:
                bucket, key = await destination()
                await self._in_thread(self.s3.put_object, Bucket=bucket, Key=key, Body=buffer)
                return size
            if in_flight is not None:
                parts.append(await in_flight)
            await self._in_thread(self._complete_multipart, bucket, key, upload_id, parts, buffer)
            return size
        except BaseException:
            # Client gone or refused mid-stream, S3 failing: leave no part and no object behind.
            if in_flight is not None:
                in_flight.cancel()
            if upload_id is not None:
                await self._in_thread(self._abort_quietly, bucket, key, upload_id)
            raise

    def _part_ready(self, buffered: int, first: bool) -> bool:
        """The first part goes once the body is too big for one PUT; later ones at part size."""
        return buffered > self.single_put_bytes if first else buffered >= self.part_bytes

    def _start_multipart(self, bucket: str, key: str) -> str:
        reply = self.s3.create_multipart_upload(Bucket=bucket, Key=key, ContentType="audio/mpeg")
        return str(reply["UploadId"])

    def _complete_multipart(
        self, bucket: str, key: str, upload_id: str, parts: list[dict[str, Any]], rest: bytearray
    ) -> None:
        """Send what is left as the last part (it may be smaller), then join the parts."""
        if rest:
            parts.append(self._upload_part(bucket, key, upload_id, len(parts) + 1, rest))
        self.s3.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
        )

    def _upload_part(
        self, bucket: str, key: str, upload_id: str, number: int, body: bytearray
    ) -> dict[str, Any]:
        reply = self.s3.upload_part(
            Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body
        )
        return {"PartNumber": number, "ETag": reply["ETag"]}

    def _abort_quietly(self, bucket: str, key: str, upload_id: str) -> None:
        try:
            self.s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        except Exception as exc:  # S3 itself may be what failed; the upload expires anyway
            log.warning("multipart_abort_failed", bucket=bucket, key=key, error=repr(exc))

    async def open(self, bucket: str, key: str, byte_range: str | None = None) -> StoredObject:
        """The whole object, or the range (`bytes=0-99`), ready to stream."""
        extra = {"Range": byte_range} if byte_range else {}
        try:
            reply = await self._in_thread(self.s3.get_object, Bucket=bucket, Key=key, **extra)
        except ClientError as exc:
            if _is_missing(exc):
                raise ObjectMissing(key) from exc
            if error_code(exc) == "InvalidRange":
                raise RangeNotSatisfiable(await self._size(bucket, key)) from exc
            raise
        return StoredObject(
            self._iterate(reply["Body"]), reply["ContentLength"], reply.get("ContentRange")
        )

    async def _size(self, bucket: str, key: str) -> int:
        try:
            reply = await self._in_thread(self.s3.head_object, Bucket=bucket, Key=key)
        except ClientError as exc:
            if _is_missing(exc):
                raise ObjectMissing(key) from exc
            raise
        return int(reply["ContentLength"])

    async def copy(self, source_bucket: str, source_key: str, bucket: str, key: str) -> None:
        """Copy; when the source is gone but the target exists, an earlier copy already ran."""
        try:
            await self._in_thread(
                self.s3.copy_object,
                Bucket=bucket,
                Key=key,
                CopySource={"Bucket": source_bucket, "Key": source_key},
            )
        except ClientError as exc:
            if not _is_missing(exc):
                raise
            if not await self.exists(bucket, key):
                raise ObjectMissing(source_key) from exc

    async def exists(self, bucket: str, key: str) -> bool:
        return await self._in_thread(object_exists, self.s3, bucket, key)

    async def delete(self, bucket: str, key: str) -> None:
        """Idempotent: deleting what is not there succeeds."""
        await self._in_thread(self.s3.delete_object, Bucket=bucket, Key=key)

    async def _iterate(self, body: Any) -> AsyncIterator[bytes]:
        try:
            while chunk := await self._in_thread(body.read, READ_CHUNK_BYTES):
                yield chunk
        finally:
            body.close()
