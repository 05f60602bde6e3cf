"""The resource bytes in S3: a streaming upload with flat memory, ranged reads, the move, delete.

boto3 is blocking, so every call runs in a worker thread (`asyncio.to_thread`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import structlog
from botocore.exceptions import ClientError

log = structlog.get_logger(__name__)

READ_CHUNK_BYTES = 1024 * 1024


class UploadTooLarge(Exception):
    pass


class ObjectMissing(Exception):
    pass


class RangeNotSatisfiable(Exception):
    def __init__(self, size: int):
        super().__init__(f"object size {size}")
        self.size = size


def _is_missing(exc: ClientError) -> bool:
    """S3's ways of saying the key is not there (GET and COPY name it, HEAD has no body)."""
    return exc.response.get("Error", {}).get("Code", "") in ("404", "NoSuchKey", "NotFound")


@dataclass
class ObjectStore:
    s3: object  # a boto3 S3 client from service_kit.s3.make_s3_client
    part_bytes: int

    async def upload(
        self, bucket: str, key: str, chunks: AsyncIterator[bytes], max_bytes: int
    ) -> int:
        """Stream `chunks` into bucket/key; returns the size. Nothing is left behind on failure.

        Small bodies are one PUT; larger ones a multipart upload that sends one part while the
        next is being received, so memory stays about two parts whatever the file size.
        """
        buffer = bytearray()
        size = 0
        upload_id: str | None = None
        parts: list[dict] = []
        in_flight: asyncio.Task | None = None
        try:
            async for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise UploadTooLarge(size)
                buffer += chunk
                if len(buffer) < self.part_bytes:
                    continue
                if upload_id is None:
                    upload_id = await asyncio.to_thread(self._start_multipart, bucket, key)
                if in_flight is not None:
                    parts.append(await in_flight)
                part, buffer = buffer, bytearray()  # hand the part over without copying it
                in_flight = asyncio.create_task(
                    asyncio.to_thread(
                        self._upload_part, bucket, key, upload_id, len(parts) + 1, part
                    )
                )
            if upload_id is None:
                await asyncio.to_thread(
                    self.s3.put_object, Bucket=bucket, Key=key, Body=bytes(buffer)
                )
                return size
            if in_flight is not None:
                parts.append(await in_flight)
                in_flight = None
            if buffer:
                parts.append(
                    await asyncio.to_thread(
                        self._upload_part, bucket, key, upload_id, len(parts) + 1, buffer
                    )
                )
            await asyncio.to_thread(
                self.s3.complete_multipart_upload,
                Bucket=bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
            return size
        except BaseException:
            # Client gone, over the limit, S3 failing: leave no part and no object behind.
            if in_flight is not None:
                in_flight.cancel()
            if upload_id is not None:
                await asyncio.to_thread(self._abort_quietly, bucket, key, upload_id)
            raise

    def _start_multipart(self, bucket: str, key: str) -> str:
        reply = self.s3.create_multipart_upload(Bucket=bucket, Key=key, ContentType="audio/mpeg")
        return reply["UploadId"]

    def _upload_part(
        self, bucket: str, key: str, upload_id: str, number: int, body: bytearray
    ) -> dict:
        reply = self.s3.upload_part(
            Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body
        )
        return {"PartNumber": number, "ETag": reply["ETag"]}

    def _abort_quietly(self, bucket: str, key: str, upload_id: str) -> None:
        try:
            self.s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        except Exception as exc:  # S3 itself may be what failed; the upload expires anyway
            log.warning("multipart_abort_failed", bucket=bucket, key=key, error=repr(exc))

    async def open(self, bucket: str, key: str, byte_range: str | None = None) -> dict:
        """S3's get_object answer (Body, ContentLength, ContentRange) for the whole or a range."""
        extra = {"Range": byte_range} if byte_range else {}
        try:
            return await asyncio.to_thread(self.s3.get_object, Bucket=bucket, Key=key, **extra)
        except ClientError as exc:
            if _is_missing(exc):
                raise ObjectMissing(key) from exc
            if exc.response.get("Error", {}).get("Code") == "InvalidRange":
                raise RangeNotSatisfiable(await self._size(bucket, key)) from exc
            raise

    async def _size(self, bucket: str, key: str) -> int:
        try:
            reply = await asyncio.to_thread(self.s3.head_object, Bucket=bucket, Key=key)
        except ClientError as exc:
            if _is_missing(exc):
                raise ObjectMissing(key) from exc
            raise
        return reply["ContentLength"]

    @staticmethod
    async def iterate(body) -> AsyncIterator[bytes]:
        try:
            while chunk := await asyncio.to_thread(body.read, READ_CHUNK_BYTES):
                yield chunk
        finally:
            body.close()

    async def copy(self, source_bucket: str, source_key: str, bucket: str, key: str) -> None:
        """Copy; when the source is gone but the target exists, an earlier copy already ran."""
        try:
            await asyncio.to_thread(
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
        try:
            await asyncio.to_thread(self.s3.head_object, Bucket=bucket, Key=key)
            return True
        except ClientError as exc:
            if _is_missing(exc):
                return False
            raise

    async def delete(self, bucket: str, key: str) -> None:
        """Idempotent: deleting what is not there succeeds."""
        await asyncio.to_thread(self.s3.delete_object, Bucket=bucket, Key=key)
