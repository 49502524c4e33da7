"""cos-local driven by the official COS Python SDK (cos-python-sdk-v5): every operation
cosmount relies on, and the documented errors by their COS error code."""
import hashlib
import io

import pytest
import requests
from qcloud_cos import CosServiceError

MB = 1024 * 1024


def pattern(n, seed):
    return bytes((i * 31 + seed) % 251 for i in range(n))


def error_code(excinfo):
    return excinfo.value.get_error_code()


# ---- bucket ----

def test_head_bucket_location_and_list_buckets(client, bucket):
    head = client.head_bucket(Bucket=bucket)
    assert head["x-cos-bucket-region"] == "ap-guangzhou"
    assert client.get_bucket_location(Bucket=bucket)["LocationConstraint"] == "ap-guangzhou"
    assert client.bucket_exists(Bucket=bucket)
    assert not client.bucket_exists(Bucket="nosuchbucket-1250000000")


def test_no_such_bucket(client):
    with pytest.raises(CosServiceError) as e:
        client.head_object(Bucket="nosuchbucket-1250000000", Key="k")
    assert e.value.get_status_code() == 404
    with pytest.raises(CosServiceError) as e:
        client.list_objects(Bucket="nosuchbucket-1250000000")
    assert error_code(e) == "NoSuchBucket"


def test_create_existing_and_delete_non_empty_bucket(client, bucket):
    with pytest.raises(CosServiceError) as e:
        client.create_bucket(Bucket=bucket)
    assert error_code(e) == "BucketAlreadyExists"
    client.put_object(Bucket=bucket, Key="k", Body=b"x")
    with pytest.raises(CosServiceError) as e:
        client.delete_bucket(Bucket=bucket)
    assert error_code(e) == "BucketNotEmpty"


def test_bucket_acl(client, bucket):
    client.put_bucket_acl(Bucket=bucket, ACL="public-read")
    acl = client.get_bucket_acl(Bucket=bucket)
    grants = acl["AccessControlList"]["Grant"]
    uris = [g["Grantee"].get("URI") for g in grants]
    assert "http://cam.qcloud.com/groups/global/AllUsers" in uris
    client.put_bucket_acl(Bucket=bucket, ACL="private")
    grants = client.get_bucket_acl(Bucket=bucket)["AccessControlList"]["Grant"]
    if isinstance(grants, dict):
        grants = [grants]
    assert all(g["Permission"] == "FULL_CONTROL" for g in grants)


def test_bucket_cors_and_preflight(client, bucket, endpoint):
    with pytest.raises(CosServiceError) as e:
        client.get_bucket_cors(Bucket=bucket)
    assert error_code(e) == "NoSuchCORSConfiguration"
    client.put_bucket_cors(
        Bucket=bucket,
        CORSConfiguration={
            "CORSRule": [
                {
                    "ID": "web",
                    "MaxAgeSeconds": "600",
                    "AllowedOrigin": ["http://www.example.com"],
                    "AllowedMethod": ["GET", "PUT"],
                    "AllowedHeader": ["x-cos-meta-*", "content-type"],
                    "ExposeHeader": ["ETag"],
                }
            ]
        },
    )
    rules = client.get_bucket_cors(Bucket=bucket)["CORSRule"]
    assert rules[0]["AllowedOrigin"] == ["http://www.example.com"]
    assert rules[0]["AllowedMethod"] == ["GET", "PUT"]
    assert rules[0]["MaxAgeSeconds"] == "600"

    # OPTIONS Object (the SDK has no method for it; browsers send it unsigned).
    host = "%s.cos.ap-guangzhou.myqcloud.com" % bucket
    ok = requests.options(
        endpoint + "/some/key",
        headers={
            "Host": host,
            "Origin": "http://www.example.com",
            "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "Content-Type,x-cos-meta-a",
        },
    )
    assert ok.status_code == 200
    assert ok.headers["Access-Control-Allow-Origin"] == "http://www.example.com"
    assert "PUT" in ok.headers["Access-Control-Allow-Methods"]
    assert ok.headers["Access-Control-Max-Age"] == "600"
    denied = requests.options(
        endpoint + "/some/key",
        headers={"Host": host, "Origin": "http://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert denied.status_code == 403

    # An actual request with a matching Origin gets the CORS headers (the SDK's get_object
    # takes no Origin, so a browser-like anonymous GET of a public-read object).
    client.put_object(Bucket=bucket, Key="c", Body=b"1", ACL="public-read")
    resp = requests.get(endpoint + "/c", headers={"Host": host, "Origin": "http://www.example.com"})
    assert resp.status_code == 200
    assert resp.headers["Access-Control-Allow-Origin"] == "http://www.example.com"
    assert resp.headers["Access-Control-Expose-Headers"] == "ETag"

    client.delete_bucket_cors(Bucket=bucket)
    with pytest.raises(CosServiceError) as e:
        client.get_bucket_cors(Bucket=bucket)
    assert error_code(e) == "NoSuchCORSConfiguration"


# ---- objects ----

def test_put_get_head_delete_object(client, bucket):
    data = pattern(200_000, 3)
    put = client.put_object(
        Bucket=bucket,
        Key="dir/中文 文件+1.txt",
        Body=data,
        ContentType="text/plain",
        Metadata={"x-cos-meta-author": "Zhang San"},
        EnableMD5=True,
    )
    assert put["ETag"] == '"%s"' % hashlib.md5(data).hexdigest()
    head = client.head_object(Bucket=bucket, Key="dir/中文 文件+1.txt")
    assert int(head["Content-Length"]) == len(data)
    assert head["x-cos-meta-author"] == "Zhang San"
    assert head["Content-Type"] == "text/plain"
    got = client.get_object(Bucket=bucket, Key="dir/中文 文件+1.txt")
    # The SDK verifies x-cos-hash-crc64ecma against the body itself when it downloads to a file.
    assert got["Body"].get_raw_stream().read() == data
    client.delete_object(Bucket=bucket, Key="dir/中文 文件+1.txt")
    with pytest.raises(CosServiceError) as e:
        client.get_object(Bucket=bucket, Key="dir/中文 文件+1.txt")
    assert error_code(e) == "NoSuchKey"
    assert not client.object_exists(Bucket=bucket, Key="dir/中文 文件+1.txt")


def test_get_object_to_file_checks_crc64(client, bucket, tmp_path):
    data = pattern(3 * MB + 17, 8)
    client.put_object(Bucket=bucket, Key="crc.bin", Body=data)
    target = tmp_path / "crc.bin"
    client.download_file(Bucket=bucket, Key="crc.bin", DestFilePath=str(target), EnableCRC=True)
    assert target.read_bytes() == data


def test_range_and_invalid_range(client, bucket):
    data = pattern(1000, 5)
    client.put_object(Bucket=bucket, Key="r", Body=data)
    part = client.get_object(Bucket=bucket, Key="r", Range="bytes=100-199")
    assert part["Content-Range"] == "bytes 100-199/1000"
    assert part["Body"].get_raw_stream().read() == data[100:200]
    with pytest.raises(CosServiceError) as e:
        client.get_object(Bucket=bucket, Key="r", Range="bytes=1000-1001")
    assert error_code(e) == "InvalidRange"
    assert e.value.get_status_code() == 416


def test_list_objects_prefix_delimiter_pages(client, bucket):
    keys = ["a/1", "a/2", "a/b/3", "a/c d/4", "b", "照片/1.jpg"]
    for k in keys:
        client.put_object(Bucket=bucket, Key=k, Body=b"x")
    listing = client.list_objects(Bucket=bucket, Prefix="a/", Delimiter="/", EncodingType="url")
    assert [c["Key"] for c in listing["Contents"]] == ["a/1", "a/2"]
    # With an explicit EncodingType the SDK leaves the values encoded.
    assert [p["Prefix"] for p in listing["CommonPrefixes"]] == ["a/b/", "a/c%20d/"]
    seen, marker = [], ""
    while True:
        page = client.list_objects(Bucket=bucket, Marker=marker, MaxKeys=2)
        seen += [c["Key"] for c in page.get("Contents", [])]
        if page["IsTruncated"] == "false":
            break
        marker = page["NextMarker"]
    assert seen == sorted(keys, key=lambda k: k.encode())


def test_object_acl_and_anonymous_access(client, bucket, endpoint):
    client.put_object(Bucket=bucket, Key="pub", Body=b"public")
    host = "%s.cos.ap-guangzhou.myqcloud.com" % bucket
    assert requests.get(endpoint + "/pub", headers={"Host": host}).status_code == 403
    client.put_object_acl(Bucket=bucket, Key="pub", ACL="public-read")
    acl = client.get_object_acl(Bucket=bucket, Key="pub")
    grants = acl["AccessControlList"]["Grant"]
    assert any(g["Grantee"].get("URI", "").endswith("/AllUsers") and g["Permission"] == "READ" for g in grants)
    anon = requests.get(endpoint + "/pub", headers={"Host": host})
    assert anon.status_code == 200 and anon.content == b"public"
    # Anonymous writes need a public-read-write bucket.
    assert requests.put(endpoint + "/anon", data=b"x", headers={"Host": host}).status_code == 403
    client.put_bucket_acl(Bucket=bucket, ACL="public-read-write")
    assert requests.put(endpoint + "/anon", data=b"x", headers={"Host": host}).status_code == 200


def test_delete_objects_quiet_and_verbose(client, bucket):
    for k in ["d1", "d2", "d 3"]:
        client.put_object(Bucket=bucket, Key=k, Body=b"x")
    verbose = client.delete_objects(
        Bucket=bucket, Delete={"Quiet": "false", "Object": [{"Key": "d1"}, {"Key": "d 3"}]}
    )
    deleted = verbose["Deleted"] if isinstance(verbose["Deleted"], list) else [verbose["Deleted"]]
    assert sorted(d["Key"] for d in deleted) == ["d 3", "d1"]
    quiet = client.delete_objects(Bucket=bucket, Delete={"Quiet": "true", "Object": [{"Key": "d2"}]})
    assert "Deleted" not in quiet
    assert "Contents" not in client.list_objects(Bucket=bucket)


def test_copy_object(client, bucket):
    data = pattern(50_000, 9)
    client.put_object(Bucket=bucket, Key="src file", Body=data, Metadata={"x-cos-meta-a": "1"})
    source = {"Bucket": bucket, "Key": "src file", "Region": "ap-guangzhou"}
    copied = client.copy_object(Bucket=bucket, Key="dst", CopySource=source)
    assert copied["ETag"] == '"%s"' % hashlib.md5(data).hexdigest()
    head = client.head_object(Bucket=bucket, Key="dst")
    assert head["x-cos-meta-a"] == "1"
    assert client.get_object(Bucket=bucket, Key="dst")["Body"].get_raw_stream().read() == data
    with pytest.raises(CosServiceError) as e:
        client.copy_object(Bucket=bucket, Key="src file", CopySource=source)
    assert error_code(e) == "InvalidRequest"
    client.copy_object(
        Bucket=bucket, Key="src file", CopySource=source, CopyStatus="Replaced",
        Metadata={"x-cos-meta-b": "2"}, ContentType="text/x",
    )
    head = client.head_object(Bucket=bucket, Key="src file")
    assert head["x-cos-meta-b"] == "2" and "x-cos-meta-a" not in head


# ---- multipart ----

def test_multipart_upload_list_complete(client, bucket):
    key = "big/file.bin"
    parts = [pattern(MB, 1), pattern(MB, 2), pattern(1234, 3)]
    upload_id = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    uploads = client.list_multipart_uploads(Bucket=bucket)
    listed = uploads["Upload"] if isinstance(uploads["Upload"], list) else [uploads["Upload"]]
    assert [u["UploadId"] for u in listed] == [upload_id]
    etags = []
    for n, p in enumerate(parts, start=1):
        etags.append(client.upload_part(Bucket=bucket, Key=key, Body=p, PartNumber=n, UploadId=upload_id)["ETag"])
    listing = client.list_parts(Bucket=bucket, Key=key, UploadId=upload_id)
    assert [int(p["PartNumber"]) for p in listing["Part"]] == [1, 2, 3]
    done = client.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload_id,
        MultipartUpload={"Part": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, start=1)]},
    )
    md5s = b"".join(hashlib.md5(p).digest() for p in parts)
    assert done["ETag"] == '"%s-3"' % hashlib.md5(md5s).hexdigest()
    assert client.get_object(Bucket=bucket, Key=key)["Body"].get_raw_stream().read() == b"".join(parts)


def test_upload_part_copy(client, bucket):
    data = pattern(2 * MB + 10, 4)
    client.put_object(Bucket=bucket, Key="src", Body=data)
    upload_id = client.create_multipart_upload(Bucket=bucket, Key="dst")["UploadId"]
    source = {"Bucket": bucket, "Key": "src", "Region": "ap-guangzhou"}
    p1 = client.upload_part_copy(Bucket=bucket, Key="dst", PartNumber=1, UploadId=upload_id,
                                 CopySource=source, CopySourceRange="bytes=0-%d" % (MB - 1))
    p2 = client.upload_part_copy(Bucket=bucket, Key="dst", PartNumber=2, UploadId=upload_id,
                                 CopySource=source, CopySourceRange="bytes=%d-%d" % (MB, len(data) - 1))
    client.complete_multipart_upload(
        Bucket=bucket, Key="dst", UploadId=upload_id,
        MultipartUpload={"Part": [{"PartNumber": 1, "ETag": p1["ETag"]}, {"PartNumber": 2, "ETag": p2["ETag"]}]},
    )
    assert client.get_object(Bucket=bucket, Key="dst")["Body"].get_raw_stream().read() == data


def test_multipart_errors(client, bucket):
    upload_id = client.create_multipart_upload(Bucket=bucket, Key="m")["UploadId"]
    e1 = client.upload_part(Bucket=bucket, Key="m", Body=b"small", PartNumber=1, UploadId=upload_id)["ETag"]
    e2 = client.upload_part(Bucket=bucket, Key="m", Body=b"small", PartNumber=2, UploadId=upload_id)["ETag"]
    with pytest.raises(CosServiceError) as e:
        client.complete_multipart_upload(
            Bucket=bucket, Key="m", UploadId=upload_id,
            MultipartUpload={"Part": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]},
        )
    assert error_code(e) == "EntityTooSmall"
    with pytest.raises(CosServiceError) as e:
        client.complete_multipart_upload(
            Bucket=bucket, Key="m", UploadId=upload_id,
            MultipartUpload={"Part": [{"PartNumber": 1, "ETag": '"00000000000000000000000000000000"'}]},
        )
    assert error_code(e) == "InvalidPart"
    client.abort_multipart_upload(Bucket=bucket, Key="m", UploadId=upload_id)
    with pytest.raises(CosServiceError) as e:
        client.list_parts(Bucket=bucket, Key="m", UploadId=upload_id)
    assert error_code(e) == "NoSuchUpload"
    with pytest.raises(CosServiceError) as e:
        client.upload_part(Bucket=bucket, Key="m", Body=b"x", PartNumber=1, UploadId=upload_id)
    assert error_code(e) == "NoSuchUpload"


# ---- auth ----

def test_wrong_secret_key_is_signature_does_not_match(wrong_key_client, client, bucket):
    client.put_object(Bucket=bucket, Key="k", Body=b"x")
    with pytest.raises(CosServiceError) as e:
        wrong_key_client.get_object(Bucket=bucket, Key="k")
    assert error_code(e) == "SignatureDoesNotMatch"
    assert e.value.get_status_code() == 403


def test_presigned_url(client, bucket):
    client.put_object(Bucket=bucket, Key="p q.txt", Body=b"presigned")
    # In IP mode the SDK would sign the IP as host, so sign no host; the URL points at
    # 127.0.0.1:PORT and the Host header names the bucket (virtual-host addressing).
    url = client.get_presigned_url(Bucket=bucket, Key="p q.txt", Method="GET", Expired=300, SignHost=False)
    host = "%s.cos.ap-guangzhou.myqcloud.com" % bucket
    resp = requests.get(url, headers={"Host": host})
    assert resp.status_code == 200 and resp.content == b"presigned", resp.text
    tampered = requests.get(url.replace("p%20q", "p%20r"), headers={"Host": host})
    assert tampered.status_code == 403
