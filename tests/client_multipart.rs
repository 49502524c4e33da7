//! Multipart upload operations against the recording mock COS.

mod common_client;

use bytes::Bytes;
use common_client::{Canned, MockCos, BUCKET};
use cosmount::cos::multipart::{ListPartsParams, ListUploadsParams};
use cosmount::cos::store::{CompletedPart, PutOptions};
use cosmount::cos::ObjectStore;

const COMPLETE_OK: &str = "<?xml version='1.0' encoding='utf-8' ?>\n<CompleteMultipartUploadResult xmlns=\"http://www.qcloud.com/document/product/436/7751\">\
<Location>http://examplebucket-1250000000.cos.ap-guangzhou.myqcloud.com/big/file.bin</Location>\
<Bucket>examplebucket-1250000000</Bucket><Key>big/file.bin</Key><ETag>&quot;aa259a62513358f69e98e72e59856d88-2&quot;</ETag>\
</CompleteMultipartUploadResult>";

#[tokio::test]
async fn initiate_upload_complete_sequence() {
    let mock = MockCos::start(|r, _| match r.method.as_str() {
        "POST" if r.has_param("uploads") => Canned::ok().xml(
            "<InitiateMultipartUploadResult><Bucket>examplebucket-1250000000</Bucket><Key>big/file.bin</Key>\
<UploadId>1585130821cbb7df1d11846c073ad648</UploadId></InitiateMultipartUploadResult>",
        ),
        "PUT" => Canned::ok()
            .header("ETag", &format!("\"etag-{}\"", r.param("partNumber").unwrap_or("?")))
            .header("x-cos-hash-crc64ecma", "12345"),
        // COS streams whitespace while it merges, then the XML.
        "POST" => Canned::ok()
            .header("x-cos-hash-crc64ecma", "999")
            .xml(&format!("   \n\n      \n{COMPLETE_OK}")),
        _ => Canned::error(400, "InvalidRequest", "unexpected"),
    })
    .await;
    let client = mock.client();
    let opts = PutOptions {
        storage_class: Some("STANDARD_IA".into()),
        ..Default::default()
    };
    let upload_id = ObjectStore::initiate_multipart(&client, "big/file.bin", &opts)
        .await
        .unwrap();
    assert_eq!(upload_id, "1585130821cbb7df1d11846c073ad648");
    let p1 = ObjectStore::upload_part(
        &client,
        "big/file.bin",
        &upload_id,
        1,
        Bytes::from(vec![1u8; 1 << 20]),
    )
    .await
    .unwrap();
    let p2 = ObjectStore::upload_part(
        &client,
        "big/file.bin",
        &upload_id,
        2,
        Bytes::from_static(b"tail"),
    )
    .await
    .unwrap();
    assert_eq!(p1.etag, "etag-1");
    assert_eq!(p2.crc64, Some(12345));
    // Given out of order: the client sends them ascending.
    let parts = [
        CompletedPart {
            part_number: 2,
            etag: p2.etag.clone(),
        },
        CompletedPart {
            part_number: 1,
            etag: p1.etag.clone(),
        },
    ];
    let done = ObjectStore::complete_multipart(&client, "big/file.bin", &upload_id, &parts)
        .await
        .unwrap();
    assert_eq!(done.etag, "aa259a62513358f69e98e72e59856d88-2");
    assert_eq!(done.crc64, Some(999));

    let reqs = mock.requests();
    assert_eq!(reqs.len(), 4);
    assert!(reqs.iter().all(|r| r.signature_valid), "{reqs:#?}");
    let init = &reqs[0];
    assert_eq!(init.method, "POST");
    assert_eq!(init.raw_query, "uploads");
    assert_eq!(init.path, format!("/{BUCKET}/big/file.bin"));
    assert_eq!(init.header("x-cos-storage-class"), Some("STANDARD_IA"));
    let part = &reqs[1];
    assert_eq!(part.method, "PUT");
    assert_eq!(part.param("partNumber"), Some("1"));
    assert_eq!(
        part.param("uploadId"),
        Some("1585130821cbb7df1d11846c073ad648")
    );
    assert_eq!(part.body.len(), 1 << 20);
    assert_eq!(&reqs[2].body[..], b"tail");
    let complete = &reqs[3];
    assert_eq!(complete.method, "POST");
    assert_eq!(
        complete.param("uploadId"),
        Some("1585130821cbb7df1d11846c073ad648")
    );
    assert_eq!(
        std::str::from_utf8(&complete.body).unwrap(),
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>&quot;etag-1&quot;</ETag></Part>\
<Part><PartNumber>2</PartNumber><ETag>&quot;etag-2&quot;</ETag></Part></CompleteMultipartUpload>"
    );
    assert_eq!(complete.header("content-type"), Some("application/xml"));
}

#[tokio::test]
async fn complete_answering_200_whitespace_then_error_is_an_error() {
    let mock = MockCos::start(|_, _| {
        Canned::ok().xml(
            "      \n      \n<?xml version='1.0' encoding='utf-8' ?>\n<Error><Code>InvalidPart</Code>\
<Message>One or more of the specified parts could not be found.</Message><RequestId>rid-complete</RequestId></Error>",
        )
    })
    .await;
    let parts = [CompletedPart {
        part_number: 1,
        etag: "x".into(),
    }];
    let err = ObjectStore::complete_multipart(&mock.client(), "k", "u", &parts)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidPart"));
    assert_eq!(err.status(), Some(200));
    assert_eq!(err.request_id(), Some("rid-complete"));
    assert_eq!(mock.count(), 1);
}

#[tokio::test]
async fn complete_without_etag_is_an_error() {
    let mock = MockCos::start(|_, _| {
        Canned::ok()
            .xml("<CompleteMultipartUploadResult><Key>k</Key></CompleteMultipartUploadResult>")
    })
    .await;
    let parts = [CompletedPart {
        part_number: 1,
        etag: "x".into(),
    }];
    let err = ObjectStore::complete_multipart(&mock.client(), "k", "u", &parts)
        .await
        .unwrap_err();
    assert!(
        matches!(err, cosmount::cos::CosError::InvalidResponse(_)),
        "{err:?}"
    );
}

#[tokio::test]
async fn complete_unknown_upload_is_no_such_upload() {
    let mock = MockCos::start(|_, _| {
        Canned::error(404, "NoSuchUpload", "The specified upload does not exist.")
    })
    .await;
    let parts = [CompletedPart {
        part_number: 1,
        etag: "x".into(),
    }];
    let err = ObjectStore::complete_multipart(&mock.client(), "k", "u", &parts)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("NoSuchUpload"));
    assert_eq!(mock.count(), 1);
}

#[tokio::test]
async fn upload_part_copy_sends_source_and_range() {
    let mock = MockCos::start(|_, _| {
        Canned::ok()
            .header("x-cos-hash-crc64ecma", "5")
            .xml("<CopyPartResult><ETag>\"cp1\"</ETag><LastModified>2020-04-10T18:20:30Z</LastModified></CopyPartResult>")
    })
    .await;
    let r = ObjectStore::upload_part_copy(
        &mock.client(),
        "dst",
        "u1",
        3,
        "src/a b",
        Some((0, 1048575)),
    )
    .await
    .unwrap();
    assert_eq!(r.etag, "cp1");
    assert_eq!(r.crc64, Some(5));
    let req = mock.single();
    assert_eq!(req.method, "PUT");
    assert_eq!(req.param("partNumber"), Some("3"));
    assert_eq!(req.param("uploadId"), Some("u1"));
    assert_eq!(
        req.header("x-cos-copy-source"),
        Some(format!("/{BUCKET}/src/a%20b").as_str())
    );
    assert_eq!(
        req.header("x-cos-copy-source-range"),
        Some("bytes=0-1048575")
    );
    assert!(req.signature_valid);
}

#[tokio::test]
async fn upload_part_copy_error_inside_200_is_an_error() {
    let mock = MockCos::start(|_, _| {
        Canned::ok().xml("<Error><Code>InternalError</Code><Message>x</Message></Error>")
    })
    .await;
    let err = ObjectStore::upload_part_copy(&mock.client(), "dst", "u1", 1, "src", None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InternalError"));
}

#[tokio::test]
async fn abort_sends_delete_with_upload_id() {
    let mock = MockCos::start(|_, _| Canned::status(204)).await;
    ObjectStore::abort_multipart(&mock.client(), "big/file.bin", "u+1")
        .await
        .unwrap();
    let r = mock.single();
    assert_eq!(r.method, "DELETE");
    assert_eq!(r.param("uploadId"), Some("u+1"));
    assert!(r.signature_valid);
}

#[tokio::test]
async fn part_numbers_outside_1_to_10000_are_refused() {
    let mock = MockCos::start(|_, _| Canned::ok()).await;
    let client = mock.client();
    assert!(ObjectStore::upload_part(&client, "k", "u", 0, Bytes::new())
        .await
        .is_err());
    assert!(
        ObjectStore::upload_part(&client, "k", "u", 10001, Bytes::new())
            .await
            .is_err()
    );
    assert_eq!(mock.count(), 0);
}

#[tokio::test]
async fn list_parts_pages_with_markers() {
    let mock = MockCos::start(|_, _| {
        Canned::ok().xml(
            "<ListPartsResult><Bucket>examplebucket-1250000000</Bucket><Encoding-type>url</Encoding-type>\
<Key>big/%E6%96%87%20file.bin</Key><UploadId>u1</UploadId>\
<Initiator><ID>1</ID><DisplayName>1</DisplayName></Initiator><Owner><ID>1</ID><DisplayName>1</DisplayName></Owner>\
<PartNumberMarker>1</PartNumberMarker><NextPartNumberMarker>3</NextPartNumberMarker><StorageClass>Standard</StorageClass>\
<MaxParts>2</MaxParts><IsTruncated>true</IsTruncated>\
<Part><PartNumber>2</PartNumber><LastModified>2020-12-10T03:37:30.000Z</LastModified><ETag>&quot;e2&quot;</ETag><Size>1048576</Size></Part>\
<Part><PartNumber>3</PartNumber><LastModified>2020-12-10T03:37:31.000Z</LastModified><ETag>&quot;e3&quot;</ETag><Size>1048576</Size></Part>\
</ListPartsResult>",
        )
    })
    .await;
    let params = ListPartsParams {
        max_parts: Some(2),
        part_number_marker: Some(1),
    };
    let r = mock
        .client()
        .list_parts("big/文 file.bin", "u1", &params)
        .await
        .unwrap();
    assert_eq!(r.key, "big/文 file.bin");
    assert!(r.is_truncated);
    assert_eq!(r.next_part_number_marker, Some(3));
    assert_eq!(r.parts.len(), 2);
    assert_eq!(r.parts[0].part_number, 2);
    assert_eq!(r.parts[0].etag, "e2");
    assert_eq!(r.parts[1].size, 1048576);
    let req = mock.single();
    assert_eq!(req.method, "GET");
    assert_eq!(req.param("uploadId"), Some("u1"));
    assert_eq!(req.param("max-parts"), Some("2"));
    assert_eq!(req.param("part-number-marker"), Some("1"));
    assert_eq!(req.param("encoding-type"), Some("url"));
    assert!(req.signature_valid);
}

#[tokio::test]
async fn list_multipart_uploads_pages_with_markers() {
    let mock = MockCos::start(|_, _| {
        Canned::ok().xml(
            "<ListMultipartUploadsResult><Bucket>examplebucket-1250000000</Bucket><Encoding-Type>url</Encoding-Type>\
<KeyMarker>a</KeyMarker><UploadIdMarker>u0</UploadIdMarker><NextKeyMarker>dir/%E4%B8%AD</NextKeyMarker>\
<NextUploadIdMarker>u2</NextUploadIdMarker><MaxUploads>2</MaxUploads><IsTruncated>true</IsTruncated>\
<Prefix>dir/</Prefix><Delimiter>/</Delimiter>\
<Upload><Key>dir/a%20b</Key><UploadID>u1</UploadID><StorageClass>STANDARD</StorageClass>\
<Initiator><ID>1</ID></Initiator><Owner><ID>1</ID></Owner><Initiated>Wed Jan 18 16:04:17 2017</Initiated></Upload>\
<Upload><Key>dir/%E4%B8%AD</Key><UploadId>u2</UploadId><Initiated>2020-12-10T03:37:30.000Z</Initiated></Upload>\
<CommonPrefixes><Prefix>dir/sub/</Prefix></CommonPrefixes>\
</ListMultipartUploadsResult>",
        )
    })
    .await;
    let params = ListUploadsParams {
        prefix: Some("dir/".into()),
        delimiter: Some("/".into()),
        key_marker: Some("a".into()),
        upload_id_marker: Some("u0".into()),
        max_uploads: Some(2),
    };
    let r = mock.client().list_multipart_uploads(&params).await.unwrap();
    assert!(r.is_truncated);
    assert_eq!(r.next_key_marker.as_deref(), Some("dir/中"));
    assert_eq!(r.next_upload_id_marker.as_deref(), Some("u2"));
    assert_eq!(r.uploads.len(), 2);
    assert_eq!(r.uploads[0].key, "dir/a b");
    assert_eq!(r.uploads[0].upload_id, "u1");
    assert!(r.uploads[0].initiated.is_some());
    assert_eq!(r.uploads[1].upload_id, "u2");
    assert_eq!(r.common_prefixes, vec!["dir/sub/".to_string()]);
    let req = mock.single();
    assert_eq!(req.path, format!("/{BUCKET}/"));
    assert!(req.has_param("uploads"));
    assert_eq!(req.param("prefix"), Some("dir/"));
    assert_eq!(req.param("key-marker"), Some("a"));
    assert_eq!(req.param("upload-id-marker"), Some("u0"));
    assert_eq!(req.param("max-uploads"), Some("2"));
    assert!(req.signature_valid);
}
