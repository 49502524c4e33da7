"""cos-local's S3 dialect driven by S3 tools nobody on the team wrote: boto3 (AWS Signature
V4), the AWS CLI, rclone and s3fs, on the same server, buckets and credentials as the COS SDK
tests.
Objects written through S3 are read back through the COS SDK and the other way round.

The AWS CLI, rclone and s3fs parts skip when the tool is not installed, except under CI
(CI=true), where a missing tool is a failure: .ci/run installs them.
"""
import hashlib
import io
import os
import shutil
import subprocess
import time
import uuid

import boto3
import pytest
import requests
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

MB = 1024 * 1024


def pattern(n, seed):
    return bytes((i * 31 + seed) % 251 for i in range(n))


def s3_client(endpoint, secret_key=None):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=os.environ["COS_LOCAL_SECRET_ID"],
        aws_secret_access_key=secret_key or os.environ["COS_LOCAL_SECRET_KEY"],
        region_name="us-east-1",
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"},
                      retries={"max_attempts": 1}),
    )


@pytest.fixture(scope="session")
def s3(endpoint):
    return s3_client(endpoint)


def code(excinfo):
    return excinfo.value.response["Error"]["Code"]


def require_tool(name):
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("%s is not installed (.ci/run installs it)" % name)
        pytest.skip("%s is not installed" % name)
    return path


# ---- boto3 ----

def test_s3_create_list_and_delete_bucket(s3):
    name = "s3conf%s-1250000000" % uuid.uuid4().hex[:8]
    s3.create_bucket(Bucket=name)
    assert name in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    s3.head_bucket(Bucket=name)
    s3.delete_bucket(Bucket=name)
    with pytest.raises(ClientError) as e:
        s3.head_bucket(Bucket=name)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_s3_put_get_head_delete_with_metadata(s3, client, bucket):
    body = pattern(300_000, 5)
    put = s3.put_object(Bucket=bucket, Key="dir/a b+c.txt", Body=body,
                        Metadata={"color": "blue"}, ContentType="text/plain")
    assert put["ETag"] == '"%s"' % hashlib.md5(body).hexdigest()
    assert put["ResponseMetadata"]["HTTPHeaders"]["x-amz-request-id"]
    head = s3.head_object(Bucket=bucket, Key="dir/a b+c.txt")
    assert head["Metadata"] == {"color": "blue"}
    assert head["ContentLength"] == len(body)
    assert head["ContentType"] == "text/plain"
    assert head["LastModified"] is not None
    got = s3.get_object(Bucket=bucket, Key="dir/a b+c.txt")
    assert got["Body"].read() == body
    ranged = s3.get_object(Bucket=bucket, Key="dir/a b+c.txt", Range="bytes=100-199")
    assert ranged["Body"].read() == body[100:200]
    assert ranged["ContentRange"] == "bytes 100-199/%d" % len(body)

    # Through the COS SDK: the same bytes, the S3 metadata as x-cos-meta-*.
    cos_head = client.head_object(Bucket=bucket, Key="dir/a b+c.txt")
    assert cos_head["x-cos-meta-color"] == "blue"
    assert client.get_object(Bucket=bucket, Key="dir/a b+c.txt")["Body"].get_raw_stream().read() == body
    # And the other way round.
    client.put_object(Bucket=bucket, Key="from-cos", Body=b"cos bytes", Metadata={"x-cos-meta-origin": "cos"})
    head = s3.head_object(Bucket=bucket, Key="from-cos")
    assert head["Metadata"] == {"origin": "cos"}
    assert s3.get_object(Bucket=bucket, Key="from-cos")["Body"].read() == b"cos bytes"

    s3.delete_object(Bucket=bucket, Key="dir/a b+c.txt")
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="dir/a b+c.txt")
    assert code(e) == "NoSuchKey"
    deleted = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "from-cos"}, {"Key": "absent"}]})
    assert sorted(d["Key"] for d in deleted["Deleted"]) == ["absent", "from-cos"]


def test_s3_flexible_checksums_are_verified(s3, bucket):
    # boto3 sends x-amz-checksum-crc32 by default; SHA-256 on request.
    s3.put_object(Bucket=bucket, Key="crc", Body=b"checked")
    s3.put_object(Bucket=bucket, Key="sha", Body=b"checked", ChecksumAlgorithm="SHA256")
    s3.put_object(Bucket=bucket, Key="sha1", Body=b"checked", ChecksumAlgorithm="SHA1")
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="crc", Body=b"spoiled", ChecksumCRC32="AAAAAA==")
    assert code(e) == "BadDigest"
    assert s3.get_object(Bucket=bucket, Key="crc")["Body"].read() == b"checked"


def test_s3_list_objects_v2_paging_with_delimiter(s3, bucket):
    keys = sorted(["a/1", "a/2", "b/1", "b/c/2", "top1", "top2", "top3", "sp ace", "plus+"])
    for k in keys:
        s3.put_object(Bucket=bucket, Key=k, Body=k.encode())
    pages = list(s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, PaginationConfig={"PageSize": 2}))
    assert [p["KeyCount"] for p in pages] == [2, 2, 2, 2, 1]
    assert [c["Key"] for p in pages for c in p.get("Contents", [])] == keys

    pages = list(s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Delimiter="/", PaginationConfig={"PageSize": 2}))
    prefixes = [cp["Prefix"] for p in pages for cp in p.get("CommonPrefixes", [])]
    top = [c["Key"] for p in pages for c in p.get("Contents", [])]
    assert prefixes == ["a/", "b/"]
    assert top == ["plus+", "sp ace", "top1", "top2", "top3"]

    after = s3.list_objects_v2(Bucket=bucket, StartAfter="top1", FetchOwner=True)
    assert [c["Key"] for c in after["Contents"]] == ["top2", "top3"]
    assert all("Owner" in c for c in after["Contents"])
    sub = s3.list_objects_v2(Bucket=bucket, Prefix="b/", Delimiter="/")
    assert [c["Key"] for c in sub["Contents"]] == ["b/1"]
    assert [cp["Prefix"] for cp in sub["CommonPrefixes"]] == ["b/c/"]
    # ListObjects v1 (what s3fs sends) on the same bucket.
    v1 = s3.list_objects(Bucket=bucket, Prefix="a/")
    assert [c["Key"] for c in v1["Contents"]] == ["a/1", "a/2"]


def test_s3_multipart_upload_file_list_parts_and_abort(s3, client, bucket, tmp_path):
    data = os.urandom(13 * MB)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    s3.upload_file(str(path), bucket, "big.bin", ExtraArgs={"Metadata": {"kind": "multipart"}},
                   Config=TransferConfig(multipart_threshold=5 * MB, multipart_chunksize=5 * MB))
    head = s3.head_object(Bucket=bucket, Key="big.bin")
    assert head["ETag"].endswith('-3"')
    assert head["ContentLength"] == len(data)
    assert head["Metadata"] == {"kind": "multipart"}
    assert s3.get_object(Bucket=bucket, Key="big.bin")["Body"].read() == data
    out = tmp_path / "back.bin"
    s3.download_file(bucket, "big.bin", str(out),
                     Config=TransferConfig(multipart_threshold=5 * MB, multipart_chunksize=5 * MB))
    assert out.read_bytes() == data
    assert client.head_object(Bucket=bucket, Key="big.bin")["x-cos-meta-kind"] == "multipart"

    # Upload Part Copy of a range of it (x-amz-copy-source-range).
    up = s3.create_multipart_upload(Bucket=bucket, Key="assembled")
    p1 = s3.upload_part_copy(Bucket=bucket, Key="assembled", UploadId=up["UploadId"], PartNumber=1,
                             CopySource={"Bucket": bucket, "Key": "big.bin"},
                             CopySourceRange="bytes=0-%d" % (5 * MB - 1))
    p2 = s3.upload_part(Bucket=bucket, Key="assembled", UploadId=up["UploadId"], PartNumber=2, Body=b"end")
    s3.complete_multipart_upload(Bucket=bucket, Key="assembled", UploadId=up["UploadId"], MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": p1["CopyPartResult"]["ETag"]},
                  {"PartNumber": 2, "ETag": p2["ETag"]}]})
    assert s3.get_object(Bucket=bucket, Key="assembled")["Body"].read() == data[:5 * MB] + b"end"

    # The low-level calls: list parts, list uploads, abort.
    up = s3.create_multipart_upload(Bucket=bucket, Key="aborted")
    s3.upload_part(Bucket=bucket, Key="aborted", UploadId=up["UploadId"], PartNumber=1, Body=pattern(5 * MB, 1))
    s3.upload_part(Bucket=bucket, Key="aborted", UploadId=up["UploadId"], PartNumber=2, Body=b"tail")
    parts = s3.list_parts(Bucket=bucket, Key="aborted", UploadId=up["UploadId"])["Parts"]
    assert [(p["PartNumber"], p["Size"]) for p in parts] == [(1, 5 * MB), (2, 4)]
    uploads = s3.list_multipart_uploads(Bucket=bucket)["Uploads"]
    assert [u["UploadId"] for u in uploads] == [up["UploadId"]]
    s3.abort_multipart_upload(Bucket=bucket, Key="aborted", UploadId=up["UploadId"])
    assert "Uploads" not in s3.list_multipart_uploads(Bucket=bucket)
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="aborted")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_s3_copy_with_metadata_directive(s3, bucket):
    s3.put_object(Bucket=bucket, Key="src", Body=b"copy me", Metadata={"mode": "33188"})
    s3.copy_object(Bucket=bucket, Key="kept", CopySource={"Bucket": bucket, "Key": "src"})
    assert s3.head_object(Bucket=bucket, Key="kept")["Metadata"] == {"mode": "33188"}
    s3.copy_object(Bucket=bucket, Key="src", CopySource={"Bucket": bucket, "Key": "src"},
                   MetadataDirective="REPLACE", Metadata={"mode": "33261"},
                   StorageClass="STANDARD_IA", ContentType="application/x-sh")
    head = s3.head_object(Bucket=bucket, Key="src")
    assert head["Metadata"] == {"mode": "33261"}
    assert head["StorageClass"] == "STANDARD_IA"
    assert head["ContentType"] == "application/x-sh"
    assert s3.get_object(Bucket=bucket, Key="src")["Body"].read() == b"copy me"
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=bucket, Key="src", CopySource={"Bucket": bucket, "Key": "src"})
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_s3_acl_header_makes_an_object_public(s3, endpoint, bucket):
    s3.put_object(Bucket=bucket, Key="public", Body=b"for all", ACL="public-read")
    s3.put_object(Bucket=bucket, Key="private", Body=b"for me")
    assert requests.get("%s/%s/public" % (endpoint, bucket)).content == b"for all"
    assert requests.get("%s/%s/private" % (endpoint, bucket)).status_code == 403


def test_s3_presigned_get(s3, bucket):
    s3.put_object(Bucket=bucket, Key="shared file.txt", Body=b"presigned")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "shared file.txt"},
                                    ExpiresIn=300)
    assert "X-Amz-Signature=" in url
    r = requests.get(url)
    assert r.status_code == 200 and r.content == b"presigned"
    r = requests.get(url.replace("X-Amz-Expires=300", "X-Amz-Expires=301"))
    assert r.status_code == 403 and "<Code>SignatureDoesNotMatch</Code>" in r.text


def test_s3_wrong_key_is_signature_does_not_match(endpoint, s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"original")
    wrong = s3_client(endpoint, secret_key="not-the-secret-key")
    with pytest.raises(ClientError) as e:
        wrong.put_object(Bucket=bucket, Key="k", Body=b"overwritten")
    assert code(e) == "SignatureDoesNotMatch"
    with pytest.raises(ClientError) as e:
        wrong.list_objects_v2(Bucket=bucket)
    assert code(e) == "SignatureDoesNotMatch"
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"original"


# ---- the AWS CLI ----

def test_aws_cli_cp_ls_sync_round_trip(endpoint, s3, bucket, tmp_path):
    aws = require_tool("aws")
    env = dict(os.environ,
               AWS_ACCESS_KEY_ID=os.environ["COS_LOCAL_SECRET_ID"],
               AWS_SECRET_ACCESS_KEY=os.environ["COS_LOCAL_SECRET_KEY"],
               AWS_DEFAULT_REGION="us-east-1",
               AWS_CONFIG_FILE=str(tmp_path / "no-config"),
               AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-credentials"))

    def run(*args):
        quiet = ["--only-show-errors"] if args[1] in ("cp", "sync", "rm") else []
        r = subprocess.run([aws, "--endpoint-url", endpoint, *args, *quiet],
                           env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, "aws %s: %s %s" % (" ".join(args), r.stdout, r.stderr)
        return r.stdout

    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(20 * MB))  # above the CLI's 8 MB multipart threshold
    run("s3", "cp", str(big), "s3://%s/cli/big.bin" % bucket)
    run("s3", "cp", "s3://%s/cli/big.bin" % bucket, str(tmp_path / "big.back"))
    assert (tmp_path / "big.back").read_bytes() == big.read_bytes()

    src = tmp_path / "tree"
    (src / "sub" / "deeper").mkdir(parents=True)
    (src / "a.txt").write_text("one\n")
    (src / "sub" / "b.txt").write_text("two\n")
    (src / "sub" / "deeper" / "c d.txt").write_text("three\n")
    run("s3", "sync", str(src), "s3://%s/tree/" % bucket)
    listing = run("s3", "ls", "--recursive", "s3://%s/tree/" % bucket)
    assert sorted(line.split(None, 3)[3] for line in listing.splitlines()) == [
        "tree/a.txt", "tree/sub/b.txt", "tree/sub/deeper/c d.txt"]
    top = run("s3", "ls", "s3://%s/" % bucket)
    assert "PRE cli/" in top and "PRE tree/" in top
    dst = tmp_path / "tree.back"
    run("s3", "sync", "s3://%s/tree/" % bucket, str(dst))
    assert (dst / "sub" / "deeper" / "c d.txt").read_text() == "three\n"
    assert (dst / "a.txt").read_text() == "one\n"
    # A second sync after a change uploads only the change.
    (src / "a.txt").write_text("one, changed\n")
    run("s3", "sync", str(src), "s3://%s/tree/" % bucket)
    assert s3.get_object(Bucket=bucket, Key="tree/a.txt")["Body"].read() == b"one, changed\n"
    run("s3", "rm", "--recursive", "s3://%s/tree/" % bucket)
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix="tree/")

    # Buckets: make, list, remove.
    name = "cli%s-1250000000" % uuid.uuid4().hex[:8]
    run("s3", "mb", "s3://%s" % name)
    assert name in run("s3", "ls").split()
    run("s3", "rb", "s3://%s" % name)
    assert name not in run("s3", "ls").split()


# ---- rclone (the Go AWS SDK) ----

def test_rclone_copy_check_move_round_trip(endpoint, s3, bucket, tmp_path):
    rclone = require_tool("rclone")
    env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
    env.update(RCLONE_CONFIG_L_TYPE="s3", RCLONE_CONFIG_L_PROVIDER="Other",
               RCLONE_CONFIG_L_ENDPOINT=endpoint, RCLONE_CONFIG_L_FORCE_PATH_STYLE="true",
               RCLONE_CONFIG_L_ACCESS_KEY_ID=os.environ["COS_LOCAL_SECRET_ID"],
               RCLONE_CONFIG_L_SECRET_ACCESS_KEY=os.environ["COS_LOCAL_SECRET_KEY"])

    def run(*args):
        r = subprocess.run([rclone, "-q", "--config", os.devnull, *args],
                           env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, "rclone %s: %s %s" % (" ".join(args), r.stdout, r.stderr)
        return r.stdout

    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "big.bin").write_bytes(os.urandom(12 * MB))
    (src / "a.txt").write_text("a\n")
    (src / "sub" / "b c.txt").write_text("b\n")
    remote = "l:%s/rc" % bucket
    run("copy", str(src), remote, "--s3-upload-cutoff", "5M", "--s3-chunk-size", "5M")
    assert s3.head_object(Bucket=bucket, Key="rc/big.bin")["ETag"].endswith('-3"')
    run("check", str(src), remote)  # sizes and MD5s
    back = tmp_path / "back"
    run("copy", remote, str(back))
    assert (back / "big.bin").read_bytes() == (src / "big.bin").read_bytes()
    assert (back / "sub" / "b c.txt").read_text() == "b\n"
    run("moveto", remote + "/a.txt", remote + "/moved.txt")  # a server-side copy, then delete
    assert sorted(run("lsf", "-R", remote).split("\n")) == ["", "big.bin", "moved.txt", "sub/", "sub/b c.txt"]
    assert s3.get_object(Bucket=bucket, Key="rc/moved.txt")["Body"].read() == b"a\n"


# ---- s3fs ----

def _unmount(mountpoint):
    for cmd in (["fusermount3", "-u", mountpoint], ["fusermount", "-u", mountpoint], ["umount", mountpoint]):
        if shutil.which(cmd[0]) and subprocess.run(cmd, capture_output=True).returncode == 0:
            return
    for cmd in (["fusermount3", "-u", "-z", mountpoint], ["fusermount", "-u", "-z", mountpoint],
                ["umount", "-l", mountpoint]):
        if shutil.which(cmd[0]) and subprocess.run(cmd, capture_output=True).returncode == 0:
            return


@pytest.fixture
def s3fs_mount(endpoint, bucket, tmp_path):
    s3fs = require_tool("s3fs")
    if not os.path.exists("/dev/fuse"):
        pytest.skip("no /dev/fuse")
    passwd = tmp_path / "passwd"
    passwd.write_text("%s:%s\n" % (os.environ["COS_LOCAL_SECRET_ID"], os.environ["COS_LOCAL_SECRET_KEY"]))
    passwd.chmod(0o600)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    log = open(tmp_path / "s3fs.log", "w")
    proc = subprocess.Popen(
        [s3fs, bucket, str(mnt), "-f",
         "-o", "passwd_file=%s" % passwd, "-o", "url=%s" % endpoint,
         "-o", "use_path_request_style", "-o", "sigv4", "-o", "endpoint=us-east-1",
         "-o", "stat_cache_expire=1", "-o", "retries=1"],
        stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(300):  # a hang guard, not a timing assertion
            if os.path.ismount(mnt) or proc.poll() is not None:
                break
            time.sleep(0.1)
        if not os.path.ismount(mnt):
            log.flush()
            pytest.fail("s3fs did not mount: %s" % (tmp_path / "s3fs.log").read_text()[-2000:])
        yield mnt
    finally:
        _unmount(str(mnt))
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def test_s3fs_mount_round_trip(s3fs_mount, s3, client, bucket):
    mnt = s3fs_mount
    data = pattern(3 * MB + 17, 7)
    (mnt / "file.bin").write_bytes(data)
    assert (mnt / "file.bin").read_bytes() == data
    (mnt / "dir" / "sub").mkdir(parents=True)
    (mnt / "dir" / "sub" / "inner.txt").write_text("inner\n")
    os.rename(mnt / "file.bin", mnt / "dir" / "moved.bin")
    os.chmod(mnt / "dir" / "moved.bin", 0o640)
    assert sorted(os.listdir(mnt)) == ["dir"]
    assert sorted(os.listdir(mnt / "dir")) == ["moved.bin", "sub"]
    assert (mnt / "dir" / "moved.bin").stat().st_mode & 0o777 == 0o640
    assert (mnt / "dir" / "moved.bin").read_bytes() == data

    # The same objects through boto3 and through the COS SDK.
    assert s3.get_object(Bucket=bucket, Key="dir/moved.bin")["Body"].read() == data
    assert s3.get_object(Bucket=bucket, Key="dir/sub/inner.txt")["Body"].read() == b"inner\n"
    assert client.get_object(Bucket=bucket, Key="dir/moved.bin")["Body"].get_raw_stream().read() == data
    # s3fs keeps the mode in x-amz-meta-mode, which the COS side sees as x-cos-meta-mode.
    mode = int(client.head_object(Bucket=bucket, Key="dir/moved.bin")["x-cos-meta-mode"])
    assert mode & 0o777 == 0o640
    keys = [c["Key"] for c in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert "file.bin" not in keys and "dir/moved.bin" in keys

    # Written through the client, read through the mount.
    s3.put_object(Bucket=bucket, Key="dir/from-s3.txt", Body=b"from boto3\n")
    assert (mnt / "dir" / "from-s3.txt").read_bytes() == b"from boto3\n"
    os.remove(mnt / "dir" / "from-s3.txt")
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="dir/from-s3.txt")
