//! ACL, CORS and OPTIONS (preflight) against the recording mock COS.

mod common_client;

use common_client::{Canned, MockCos, BUCKET};
use cosmount::cos::acl::{AccessControlPolicy, AclUpdate, Grant, GrantHeaders, Grantee};
use cosmount::cos::cors::{CorsConfiguration, CorsRule};

const ACL_XML: &str = r#"<AccessControlPolicy>
  <Owner><ID>qcs::cam::uin/100000000001:uin/100000000001</ID><DisplayName>qcs::cam::uin/100000000001:uin/100000000001</DisplayName></Owner>
  <AccessControlList>
    <Grant>
      <Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="Group"><URI>http://cam.qcloud.com/groups/global/AllUsers</URI></Grantee>
      <Permission>READ</Permission>
    </Grant>
    <Grant>
      <Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="CanonicalUser"><ID>qcs::cam::uin/100000000002:uin/100000000002</ID><DisplayName>qcs::cam::uin/100000000002:uin/100000000002</DisplayName></Grantee>
      <Permission>READ_ACP</Permission>
    </Grant>
  </AccessControlList>
</AccessControlPolicy>"#;

#[tokio::test]
async fn get_object_and_bucket_acl_parse_grants() {
    let mock = MockCos::start(|_, _| Canned::ok().xml(ACL_XML)).await;
    let client = mock.client();
    let acl = client.get_object_acl("doc.txt").await.unwrap();
    assert_eq!(acl.owner_id, "qcs::cam::uin/100000000001:uin/100000000001");
    assert_eq!(acl.grants.len(), 2);
    assert_eq!(
        acl.grants[0],
        Grant {
            grantee: Grantee::Group {
                uri: "http://cam.qcloud.com/groups/global/AllUsers".into()
            },
            permission: "READ".into()
        }
    );
    assert!(
        matches!(&acl.grants[1].grantee, Grantee::CanonicalUser { id, .. } if id == "qcs::cam::uin/100000000002:uin/100000000002")
    );
    assert_eq!(acl.grants[1].permission, "READ_ACP");
    let bucket_acl = client.get_bucket_acl().await.unwrap();
    assert_eq!(bucket_acl, acl);
    let reqs = mock.requests();
    assert_eq!(reqs[0].path, format!("/{BUCKET}/doc.txt"));
    assert_eq!(reqs[0].raw_query, "acl");
    assert_eq!(reqs[1].path, format!("/{BUCKET}/"));
    assert_eq!(reqs[1].raw_query, "acl");
    assert!(reqs.iter().all(|r| r.method == "GET" && r.signature_valid));
}

#[tokio::test]
async fn put_acl_with_headers_or_policy() {
    let mock = MockCos::start(|_, _| Canned::ok()).await;
    let client = mock.client();
    client
        .put_object_acl("doc.txt", &AclUpdate::canned("public-read"))
        .await
        .unwrap();
    client
        .put_bucket_acl(&AclUpdate::Headers {
            canned: None,
            grants: GrantHeaders {
                read: Some("id=\"100000000002\"".into()),
                full_control: Some("id=\"100000000001\"".into()),
                ..Default::default()
            },
        })
        .await
        .unwrap();
    let policy = AccessControlPolicy {
        owner_id: "qcs::cam::uin/1:uin/1".into(),
        owner_display_name: None,
        grants: vec![Grant {
            grantee: Grantee::CanonicalUser {
                id: "qcs::cam::uin/1:uin/1".into(),
                display_name: None,
            },
            permission: "FULL_CONTROL".into(),
        }],
    };
    client
        .put_object_acl("doc.txt", &AclUpdate::Policy(policy.clone()))
        .await
        .unwrap();
    let reqs = mock.requests();
    assert_eq!(reqs.len(), 3);
    assert!(reqs
        .iter()
        .all(|r| r.method == "PUT" && r.raw_query == "acl" && r.signature_valid));
    assert_eq!(reqs[0].header("x-cos-acl"), Some("public-read"));
    assert!(reqs[0].body.is_empty());
    assert_eq!(
        reqs[1].header("x-cos-grant-read"),
        Some("id=\"100000000002\"")
    );
    assert_eq!(
        reqs[1].header("x-cos-grant-full-control"),
        Some("id=\"100000000001\"")
    );
    assert_eq!(reqs[2].header("x-cos-acl"), None);
    assert_eq!(std::str::from_utf8(&reqs[2].body).unwrap(), policy.to_xml());
    assert_eq!(reqs[2].header("content-type"), Some("application/xml"));
}

#[tokio::test]
async fn cors_put_get_delete() {
    let config = CorsConfiguration {
        rules: vec![CorsRule {
            id: Some("web".into()),
            allowed_origins: vec!["https://www.example.com".into()],
            allowed_methods: vec!["GET".into(), "PUT".into()],
            allowed_headers: vec!["*".into()],
            expose_headers: vec!["ETag".into(), "x-cos-request-id".into()],
            max_age_seconds: Some(600),
        }],
    };
    let stored = config.to_xml();
    let mock = MockCos::start(move |r, _| match r.method.as_str() {
        "PUT" => Canned::ok(),
        "GET" => Canned::ok().xml(&stored),
        "DELETE" => Canned::status(204),
        _ => Canned::error(400, "InvalidRequest", "unexpected"),
    })
    .await;
    let client = mock.client();
    client.put_bucket_cors(&config).await.unwrap();
    assert_eq!(client.get_bucket_cors().await.unwrap(), config);
    client.delete_bucket_cors().await.unwrap();
    let reqs = mock.requests();
    assert_eq!(reqs.len(), 3);
    assert!(reqs
        .iter()
        .all(|r| r.raw_query == "cors" && r.signature_valid));
    assert_eq!(std::str::from_utf8(&reqs[0].body).unwrap(), config.to_xml());
    assert_eq!(
        reqs[0].header("content-md5").map(str::to_string),
        Some(cosmount::cos::client::content_md5(&reqs[0].body))
    );
}

#[tokio::test]
async fn missing_cors_configuration_is_a_typed_error() {
    let mock = MockCos::start(|_, _| {
        Canned::error(
            404,
            "NoSuchCORSConfiguration",
            "The CORS configuration does not exist",
        )
    })
    .await;
    let err = mock.client().get_bucket_cors().await.unwrap_err();
    assert_eq!(err.code(), Some("NoSuchCORSConfiguration"));
    assert_eq!(err.status(), Some(404));
}

#[tokio::test]
async fn options_preflight_sends_origin_and_parses_allowances() {
    let mock = MockCos::start(|r, _| {
        if r.header("origin") == Some("https://www.example.com") {
            Canned::ok()
                .header("Access-Control-Allow-Origin", "https://www.example.com")
                .header("Access-Control-Allow-Methods", "GET, PUT")
                .header("Access-Control-Allow-Headers", "content-type,x-cos-meta-a")
                .header("Access-Control-Expose-Headers", "ETag")
                .header("Access-Control-Max-Age", "600")
        } else {
            Canned::error(
                403,
                "AccessForbidden",
                "CORSResponse: This CORS request is not allowed.",
            )
        }
    })
    .await;
    let client = mock.client();
    let ok = client
        .options_object(
            "page.html",
            "https://www.example.com",
            "PUT",
            &["content-type", "x-cos-meta-a"],
        )
        .await
        .unwrap();
    assert_eq!(ok.allow_origin.as_deref(), Some("https://www.example.com"));
    assert_eq!(ok.allow_methods, ["GET", "PUT"]);
    assert_eq!(ok.allow_headers, ["content-type", "x-cos-meta-a"]);
    assert_eq!(ok.expose_headers, ["ETag"]);
    assert_eq!(ok.max_age, Some(600));
    let err = client
        .options_object("page.html", "https://evil.example", "GET", &[])
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(403));
    let reqs = mock.requests();
    assert_eq!(reqs[0].method, "OPTIONS");
    assert_eq!(reqs[0].header("access-control-request-method"), Some("PUT"));
    assert_eq!(
        reqs[0].header("access-control-request-headers"),
        Some("content-type,x-cos-meta-a")
    );
    assert_eq!(reqs.len(), 2, "a 403 is not retried");
}
