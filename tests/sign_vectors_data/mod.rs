//! The SDK signing vectors (testdata/cos-sign-vectors.json), shared by the signer's test
//! (`sign_vectors`) and the `cosmount sign`/`presign` CLI test (`sign_cli`).

use serde_json::Value;

/// The whole vectors file.
pub fn vectors() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/testdata/cos-sign-vectors.json"
    ))
    .expect("read vectors");
    serde_json::from_str(&text).expect("parse vectors")
}

/// A vector's `{"name": "value"}` object (query or headers) as pairs, in file order.
pub fn pairs(v: &Value) -> Vec<(String, String)> {
    v.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}
