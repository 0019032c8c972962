"""The S3-compatible recording store (AWS S3, MinIO, Ceph RGW ...) through a boto3 S3 client.

Objects are ``<prefix><key>`` in one bucket; ranged reads use the HTTP ``Range`` header of ``GetObject``, so a
browser seeking in a long call fetches only what it plays. The sha256 is computed here and also sent as the
object's ``x-amz-meta-sha256``. Tested with botocore's ``Stubber`` (tests/services/test_recordings_store.py).
"""

from __future__ import annotations

from typing import Any

from callcenter.ports.recordings import RecordingNotFound, StoredRecording, check_key, sha256_hex


def make_s3_client(endpoint_url: str = "", region: str = "", access_key: str = "", secret_key: str = "") -> Any:
    import boto3

    kwargs: dict[str, Any] = {}
    if endpoint_url:
        kwargs["endpoint_url"] = endpoint_url
    if region:
        kwargs["region_name"] = region
    if access_key:
        kwargs["aws_access_key_id"] = access_key
        kwargs["aws_secret_access_key"] = secret_key
    return boto3.client("s3", **kwargs)


def _missing(exc: Exception) -> bool:
    response = getattr(exc, "response", None) or {}
    code = str(response.get("Error", {}).get("Code", ""))
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code in ("404", "NoSuchKey", "NotFound") or status == 404


class S3RecordingStore:
    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        if not bucket:
            raise ValueError("an S3 recording store needs a bucket")
        self.client = client
        self.bucket = bucket
        self.prefix = prefix

    def _name(self, key: str) -> str:
        return self.prefix + check_key(key)

    def put(self, key: str, data: bytes) -> StoredRecording:
        digest = sha256_hex(data)
        self.client.put_object(Bucket=self.bucket, Key=self._name(key), Body=data, ContentType="audio/wav",
                               Metadata={"sha256": digest})
        return StoredRecording(key, len(data), digest)

    def get(self, key: str, start: int = 0, end: int | None = None) -> bytes:
        from botocore.exceptions import ClientError

        if start < 0 or (end is not None and end < start):
            raise ValueError(f"bad byte range {start}-{end}")
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": self._name(key)}
        if start or end is not None:
            kwargs["Range"] = f"bytes={start}-{'' if end is None else end}"
        try:
            body = self.client.get_object(**kwargs)["Body"]
        except ClientError as exc:
            if _missing(exc):
                raise RecordingNotFound(key) from None
            raise
        return bytes(body.read())

    def size(self, key: str) -> int:
        from botocore.exceptions import ClientError

        try:
            return int(self.client.head_object(Bucket=self.bucket, Key=self._name(key))["ContentLength"])
        except ClientError as exc:
            if _missing(exc):
                raise RecordingNotFound(key) from None
            raise

    def exists(self, key: str) -> bool:
        try:
            self.size(key)
        except RecordingNotFound:
            return False
        return True

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._name(key))
