"""Fixtures for the cos-local conformance suite (run by scripts/conformance.sh).

The official SDK is pointed at cos-local with IP/Port: it then connects to 127.0.0.1:PORT but
sends the genuine Host header `{bucket}.cos.{region}.myqcloud.com` (virtual-host addressing)
and signs that host, exactly as against real COS.
"""
import os
import uuid

import pytest
from qcloud_cos import CosConfig, CosS3Client

REGION = os.environ.get("COS_LOCAL_REGION", "ap-guangzhou")


def _config(secret_key=None):
    return CosConfig(
        Region=REGION,
        SecretId=os.environ["COS_LOCAL_SECRET_ID"],
        SecretKey=secret_key or os.environ["COS_LOCAL_SECRET_KEY"],
        Scheme="http",
        IP="127.0.0.1",
        Port=int(os.environ["COS_LOCAL_PORT"]),
    )


@pytest.fixture(scope="session")
def client():
    return CosS3Client(_config())


@pytest.fixture(scope="session")
def wrong_key_client():
    return CosS3Client(_config(secret_key="not-the-secret-key"))


@pytest.fixture(scope="session")
def endpoint():
    return "http://127.0.0.1:%s" % os.environ["COS_LOCAL_PORT"]


@pytest.fixture
def bucket(client):
    """A fresh bucket per test, emptied and deleted afterwards."""
    name = "conf%s-1250000000" % uuid.uuid4().hex[:10]
    client.create_bucket(Bucket=name)
    yield name
    for up in client.list_multipart_uploads(Bucket=name).get("Upload", []):
        client.abort_multipart_upload(Bucket=name, Key=up["Key"], UploadId=up["UploadId"])
    while True:
        listing = client.list_objects(Bucket=name)
        keys = [c["Key"] for c in listing.get("Contents", [])]
        if not keys:
            break
        client.delete_objects(Bucket=name, Delete={"Quiet": "true", "Object": [{"Key": k} for k in keys]})
    client.delete_bucket(Bucket=name)
