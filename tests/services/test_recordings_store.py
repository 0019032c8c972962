"""The recording stores behind ``callcenter.ports.recordings``: the filesystem store (a real folder) and the S3
store against botocore's ``Stubber`` (the exact S3 calls and parameters: PutObject with the sha256 metadata,
ranged GetObject, HeadObject, DeleteObject, a 404 as RecordingNotFound)."""

from __future__ import annotations

import io
from pathlib import Path

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

from callcenter.adapters.recordings_fs import FileRecordingStore
from callcenter.adapters.recordings_s3 import S3RecordingStore
from callcenter.ports.recordings import BadRecordingKey, RecordingNotFound, sha256_hex, wav_duration_s
from callcenter.adapters.recordings_simulated import wav_bytes

DATA = bytes(range(256)) * 40


def test_filesystem_store_puts_reads_ranges_and_deletes(tmp_path: Path) -> None:
    store = FileRecordingStore(tmp_path / "rec")
    stored = store.put("2026/11/25/rec-1.wav", DATA)
    assert (stored.size, stored.sha256) == (len(DATA), sha256_hex(DATA))
    assert (tmp_path / "rec" / "2026" / "11" / "25" / "rec-1.wav").read_bytes() == DATA
    assert store.exists("2026/11/25/rec-1.wav") and store.size("2026/11/25/rec-1.wav") == len(DATA)
    assert store.get("2026/11/25/rec-1.wav") == DATA
    assert store.get("2026/11/25/rec-1.wav", 10, 19) == DATA[10:20]
    assert store.get("2026/11/25/rec-1.wav", len(DATA) - 5) == DATA[-5:]
    assert not list((tmp_path / "rec" / "2026" / "11" / "25").glob(".part-*"))  # no temporary file left
    store.delete("2026/11/25/rec-1.wav")
    assert not store.exists("2026/11/25/rec-1.wav")
    store.delete("2026/11/25/rec-1.wav")  # a purge retried: not an error
    with pytest.raises(RecordingNotFound):
        store.get("2026/11/25/rec-1.wav")
    with pytest.raises(RecordingNotFound):
        store.size("2026/11/25/rec-1.wav")


@pytest.mark.parametrize("key", ["../etc/passwd", "/abs.wav", "a//b.wav", "a/../b.wav", "", "a b.wav", "a/./b"])
def test_keys_never_leave_the_store(tmp_path: Path, key: str) -> None:
    with pytest.raises(BadRecordingKey):
        FileRecordingStore(tmp_path).put(key, b"x")


def test_wav_duration() -> None:
    assert wav_duration_s(wav_bytes(__import__("array").array("h", bytes(2 * 8000 * 3)))) == 3.0
    with pytest.raises(ValueError, match="not a PCM WAV"):
        wav_duration_s(b"RIFF nonsense")


def _client():  # type: ignore[no-untyped-def]
    return boto3.client("s3", region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s")


def _body(data: bytes) -> StreamingBody:
    return StreamingBody(io.BytesIO(data), len(data))


def test_s3_store_against_the_stubber() -> None:
    client = _client()
    store = S3RecordingStore(client, "calls", "recordings/")
    with Stubber(client) as stub:
        stub.add_response("put_object", {}, {"Bucket": "calls", "Key": "recordings/2026/11/25/rec-1.wav", "Body": DATA,
                                             "ContentType": "audio/wav", "Metadata": {"sha256": sha256_hex(DATA)}})
        stub.add_response("get_object", {"Body": _body(DATA[100:200])},
                          {"Bucket": "calls", "Key": "recordings/2026/11/25/rec-1.wav", "Range": "bytes=100-199"})
        stub.add_response("get_object", {"Body": _body(DATA)},
                          {"Bucket": "calls", "Key": "recordings/2026/11/25/rec-1.wav"})
        stub.add_response("head_object", {"ContentLength": len(DATA)},
                          {"Bucket": "calls", "Key": "recordings/2026/11/25/rec-1.wav"})
        stub.add_response("delete_object", {}, {"Bucket": "calls", "Key": "recordings/2026/11/25/rec-1.wav"})
        stub.add_client_error("head_object", service_error_code="404", http_status_code=404,
                              expected_params={"Bucket": "calls", "Key": "recordings/2026/11/25/rec-1.wav"})
        stub.add_client_error("get_object", service_error_code="NoSuchKey", http_status_code=404,
                              expected_params={"Bucket": "calls", "Key": "recordings/2026/11/25/rec-1.wav",
                                               "Range": "bytes=5-"})

        stored = store.put("2026/11/25/rec-1.wav", DATA)
        assert (stored.size, stored.sha256) == (len(DATA), sha256_hex(DATA))
        assert store.get("2026/11/25/rec-1.wav", 100, 199) == DATA[100:200]
        assert store.get("2026/11/25/rec-1.wav") == DATA
        assert store.size("2026/11/25/rec-1.wav") == len(DATA)
        store.delete("2026/11/25/rec-1.wav")
        assert store.exists("2026/11/25/rec-1.wav") is False
        with pytest.raises(RecordingNotFound):
            store.get("2026/11/25/rec-1.wav", 5)
        stub.assert_no_pending_responses()


def test_s3_store_passes_other_errors_on() -> None:
    from botocore.exceptions import ClientError

    client = _client()
    store = S3RecordingStore(client, "calls")
    with Stubber(client) as stub:
        stub.add_client_error("head_object", service_error_code="403", http_status_code=403)
        with pytest.raises(ClientError):
            store.size("rec-1.wav")
    with pytest.raises(ValueError, match="bucket"):
        S3RecordingStore(client, "")
