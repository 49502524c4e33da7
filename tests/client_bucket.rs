//! Bucket operations and listing against the recording mock COS.

mod common_client;

use common_client::{Canned, MockCos, BUCKET};
use cosmount::cos::bucket::CreateBucketOptions;
use cosmount::cos::store::ListParams;
use cosmount::cos::ObjectStore;

const PAGE1: &str = r#"<?xml version='1.0' encoding='utf-8' ?>
<ListBucketResult>
  <Name>examplebucket-1250000000</Name>
  <EncodingType>url</EncodingType>
  <Prefix>%E7%85%A7%E7%89%87/</Prefix>
  <Marker/>
  <MaxKeys>3</MaxKeys>
  <Delimiter>/</Delimiter>
  <IsTruncated>true</IsTruncated>
  <NextMarker>%E7%85%A7%E7%89%87/a%20b+c%2Bd.jpg</NextMarker>
  <CommonPrefixes><Prefix>%E7%85%A7%E7%89%87/2020%E5%B9%B4/</Prefix></CommonPrefixes>
  <Contents>
    <Key>%E7%85%A7%E7%89%87/</Key>
    <LastModified>2020-12-10T03:37:30.000Z</LastModified>
    <ETag>&quot;d41d8cd98f00b204e9800998ecf8427e&quot;</ETag>
    <Size>0</Size>
    <Owner><ID>1250000000</ID><DisplayName>1250000000</DisplayName></Owner>
    <StorageClass>STANDARD</StorageClass>
  </Contents>
  <Contents>
    <Key>%E7%85%A7%E7%89%87/a%20b+c%2Bd.jpg</Key>
    <LastModified>2020-12-10T03:37:31.000Z</LastModified>
    <ETag>&quot;f173c1199e3d3b53dd91223cae16fb42&quot;</ETag>
    <Size>37</Size>
    <StorageClass>STANDARD_IA</StorageClass>
  </Contents>
</ListBucketResult>"#;

const PAGE2: &str = r#"<ListBucketResult><Name>examplebucket-1250000000</Name><EncodingType>url</EncodingType>
<Prefix>%E7%85%A7%E7%89%87/</Prefix><Marker>%E7%85%A7%E7%89%87/a%20b+c%2Bd.jpg</Marker><MaxKeys>3</MaxKeys>
<Delimiter>/</Delimiter><IsTruncated>false</IsTruncated>
<Contents><Key>%E7%85%A7%E7%89%87/z%25.txt</Key><LastModified>2021-01-01T00:00:00.000Z</LastModified>
<ETag>&quot;aa-2&quot;</ETag><Size>2097152</Size></Contents></ListBucketResult>"#;

#[tokio::test]
async fn list_objects_sends_params_and_decodes_url_encoded_keys() {
    let mock = MockCos::start(|r, _| {
        if r.param("marker").is_some() {
            Canned::ok().xml(PAGE2)
        } else {
            Canned::ok().xml(PAGE1)
        }
    })
    .await;
    let client = mock.client();
    let params = ListParams {
        prefix: "照片/".into(),
        delimiter: Some("/".into()),
        marker: None,
        max_keys: Some(3),
    };
    let page = ObjectStore::list_objects(&client, &params).await.unwrap();
    assert_eq!(page.prefix, "照片/");
    assert!(page.is_truncated);
    assert_eq!(page.next_marker.as_deref(), Some("照片/a b+c+d.jpg"));
    assert_eq!(page.common_prefixes, vec!["照片/2020年/".to_string()]);
    let keys: Vec<&str> = page.objects.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(keys, ["照片/", "照片/a b+c+d.jpg"]);
    assert_eq!(page.objects[1].size, 37);
    assert_eq!(page.objects[1].etag, "f173c1199e3d3b53dd91223cae16fb42");
    assert_eq!(page.objects[1].storage_class, "STANDARD_IA");
    assert_eq!(
        page.objects[1].last_modified,
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(1607571451)
    );

    let next = ListParams {
        marker: page.next_marker.clone(),
        ..params
    };
    let page2 = ObjectStore::list_objects(&client, &next).await.unwrap();
    assert!(!page2.is_truncated);
    assert_eq!(page2.next_marker, None);
    assert_eq!(page2.objects[0].key, "照片/z%.txt");
    assert_eq!(page2.objects[0].etag, "aa-2");

    let reqs = mock.requests();
    assert_eq!(reqs.len(), 2);
    let r = &reqs[0];
    assert_eq!(r.method, "GET");
    assert_eq!(r.path, format!("/{BUCKET}/"));
    assert_eq!(r.param("prefix"), Some("照片/"));
    assert_eq!(r.param("delimiter"), Some("/"));
    assert_eq!(r.param("max-keys"), Some("3"));
    assert_eq!(r.param("encoding-type"), Some("url"));
    assert!(!r.has_param("marker"));
    assert!(r.signature_valid);
    let r = &reqs[1];
    assert_eq!(r.param("marker"), Some("照片/a b+c+d.jpg"));
    // `+` in a value travels as %2B, so form-decoding cannot turn it into a space.
    assert!(r.raw_query.contains("a%20b%2Bc%2Bd.jpg"), "{}", r.raw_query);
    assert!(r.signature_valid);
}

#[tokio::test]
async fn list_all_follows_next_marker() {
    let mock = MockCos::start(|r, _| {
        if r.param("marker").is_some() {
            Canned::ok().xml(PAGE2)
        } else {
            Canned::ok().xml(PAGE1)
        }
    })
    .await;
    let (objects, prefixes) = mock.client().list_all("照片/", Some("/")).await.unwrap();
    assert_eq!(objects.len(), 3);
    assert_eq!(prefixes.len(), 1);
    assert_eq!(mock.count(), 2);
}

#[tokio::test]
async fn list_rejects_max_keys_over_1000_without_sending() {
    let mock = MockCos::start(|_, _| Canned::ok()).await;
    let params = ListParams {
        max_keys: Some(1001),
        ..Default::default()
    };
    assert!(ObjectStore::list_objects(&mock.client(), &params)
        .await
        .is_err());
    assert_eq!(mock.count(), 0);
}

#[tokio::test]
async fn malformed_listing_is_an_invalid_response_not_a_panic() {
    let mock = MockCos::start(|_, _| {
        Canned::ok().xml("<ListBucketResult><Contents><Size>notanumber</Size>")
    })
    .await;
    let err = ObjectStore::list_objects(&mock.client(), &ListParams::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, cosmount::cos::CosError::InvalidResponse(_)),
        "{err:?}"
    );
}

#[tokio::test]
async fn head_bucket_reports_region_and_maps_errors() {
    let mock =
        MockCos::start(|_, _| Canned::ok().header("x-cos-bucket-region", "ap-guangzhou")).await;
    let info = ObjectStore::head_bucket(&mock.client()).await.unwrap();
    assert_eq!(info.region.as_deref(), Some("ap-guangzhou"));
    let r = mock.single();
    assert_eq!(r.method, "HEAD");
    assert_eq!(r.path, format!("/{BUCKET}/"));
    assert!(r.signature_valid);

    for (status, code) in [(404, "NoSuchBucket"), (403, "AccessDenied")] {
        let mock = MockCos::start(move |_, _| Canned::status(status)).await;
        let err = ObjectStore::head_bucket(&mock.client()).await.unwrap_err();
        assert_eq!(err.code(), Some(code));
        assert_eq!(mock.count(), 1);
    }
}

#[tokio::test]
async fn create_delete_and_locate_bucket() {
    let mock = MockCos::start(|r, _| match (r.method.as_str(), r.has_param("location")) {
        ("PUT", _) => Canned::ok(),
        ("DELETE", _) => Canned::status(204),
        ("GET", true) => Canned::ok().xml("<?xml version='1.0' encoding='utf-8' ?><LocationConstraint>ap-guangzhou</LocationConstraint>"),
        _ => Canned::error(400, "InvalidRequest", "unexpected"),
    })
    .await;
    let client = mock.client();
    client
        .create_bucket(&CreateBucketOptions {
            acl: Some("public-read".into()),
        })
        .await
        .unwrap();
    assert_eq!(client.get_bucket_location().await.unwrap(), "ap-guangzhou");
    client.delete_bucket().await.unwrap();
    let reqs = mock.requests();
    assert_eq!(reqs.len(), 3);
    assert_eq!(reqs[0].method, "PUT");
    assert_eq!(reqs[0].header("x-cos-acl"), Some("public-read"));
    assert_eq!(reqs[1].raw_query, "location");
    assert_eq!(reqs[2].method, "DELETE");
    assert!(reqs.iter().all(|r| r.signature_valid));
}

#[tokio::test]
async fn delete_bucket_not_empty_is_a_conflict() {
    let mock = MockCos::start(|_, _| {
        Canned::error(
            409,
            "BucketNotEmpty",
            "The bucket you tried to delete is not empty.",
        )
    })
    .await;
    let err = mock.client().delete_bucket().await.unwrap_err();
    assert_eq!(err.code(), Some("BucketNotEmpty"));
    assert_eq!(err.status(), Some(409));
    assert_eq!(err.request_id(), Some("req-BucketNotEmpty"));
}

#[tokio::test]
async fn delete_multiple_sends_xml_with_md5_and_parses_the_result() {
    let mock = MockCos::start(|_, _| {
        Canned::ok().xml(
            "<DeleteResult><Deleted><Key>a.txt</Key></Deleted><Deleted><Key>dir/b &amp; c.txt</Key></Deleted>\
<Error><Key>locked</Key><Code>AccessDenied</Code><Message>Access Denied</Message></Error></DeleteResult>",
        )
    })
    .await;
    let client = mock.client();
    let result = client
        .delete_objects(&["a.txt", "dir/b & c.txt", "locked"], false)
        .await
        .unwrap();
    let deleted: Vec<&str> = result.deleted.iter().map(|d| d.key.as_str()).collect();
    assert_eq!(deleted, ["a.txt", "dir/b & c.txt"]);
    assert_eq!(result.errors.len(), 1);
    assert_eq!(result.errors[0].key, "locked");
    assert_eq!(result.errors[0].code, "AccessDenied");
    let r = mock.single();
    assert_eq!(r.method, "POST");
    assert_eq!(r.raw_query, "delete");
    assert_eq!(
        std::str::from_utf8(&r.body).unwrap(),
        "<Delete><Quiet>false</Quiet><Object><Key>a.txt</Key></Object><Object><Key>dir/b &amp; c.txt</Key></Object><Object><Key>locked</Key></Object></Delete>"
    );
    assert_eq!(r.header("content-type"), Some("application/xml"));
    assert_eq!(
        r.header("content-md5").map(str::to_string),
        Some(cosmount::cos::client::content_md5(&r.body))
    );
    assert!(r.signature_valid);
}

#[tokio::test]
async fn delete_multiple_quiet_with_empty_result() {
    let mock = MockCos::start(|_, _| Canned::ok().xml("<DeleteResult/>")).await;
    let result = mock
        .client()
        .delete_objects(&["a", "b"], true)
        .await
        .unwrap();
    assert!(result.deleted.is_empty() && result.errors.is_empty());
    assert!(std::str::from_utf8(&mock.single().body)
        .unwrap()
        .contains("<Quiet>true</Quiet>"));
}

#[tokio::test]
async fn delete_multiple_refuses_more_than_1000_keys() {
    let mock = MockCos::start(|_, _| Canned::ok()).await;
    let keys: Vec<String> = (0..1001).map(|i| format!("k{i}")).collect();
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    assert!(mock.client().delete_objects(&refs, true).await.is_err());
    assert_eq!(mock.count(), 0);
}
