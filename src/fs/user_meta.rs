//! User attributes (`user.NAME`) in object metadata, in both encodings a bucket may hold:
//! cosmount's one `x-cos-meta-NAME` per attribute, and the single `x-cos-meta-xattr` blob that
//! cosfs and s3fs write: the URL-encoded JSON object `{"user.NAME":"BASE64(value)",...}`.
//! An object that has a blob keeps its attributes there when changed through cosmount, so
//! cosfs still sees them; cosmount's own names go to `x-cos-meta-NAME`.

use std::collections::BTreeMap;

use base64::Engine;
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use super::xattr::{decode_value, encode_value, valid_meta_name};

/// The metadata name of the cosfs/s3fs blob.
pub const BLOB_KEY: &str = "xattr";
const USER_PREFIX: &str = "user.";
/// What the blob leaves unescaped (the URL-safe unreserved set).
const BLOB_ESCAPES: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The blob's attributes by full name; entries that do not parse are skipped (a damaged
/// blob must not hide the file's other attributes).
pub fn decode_blob(stored: &str) -> BTreeMap<String, Vec<u8>> {
    let text = percent_decode_str(stored).decode_utf8_lossy();
    let inner = text
        .trim()
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .unwrap_or("");
    let unquote = |s: &str| {
        s.trim()
            .strip_prefix('"')
            .and_then(|s| s.strip_suffix('"'))
            .map(str::to_string)
    };
    inner
        .split(',')
        .filter_map(|pair| {
            let (name, value) = pair.split_once(':')?;
            let name = unquote(name)?;
            let value = base64::engine::general_purpose::STANDARD
                .decode(unquote(value)?)
                .ok()?;
            (!name.is_empty()).then_some((name, value))
        })
        .collect()
}

pub fn encode_blob(attrs: &BTreeMap<String, Vec<u8>>) -> String {
    let body: Vec<String> = attrs
        .iter()
        .map(|(name, value)| {
            format!(
                "\"{name}\":\"{}\"",
                base64::engine::general_purpose::STANDARD.encode(value)
            )
        })
        .collect();
    utf8_percent_encode(&format!("{{{}}}", body.join(",")), BLOB_ESCAPES).to_string()
}

fn blob(meta: &BTreeMap<String, String>) -> Option<BTreeMap<String, Vec<u8>>> {
    meta.get(BLOB_KEY).map(|v| decode_blob(v))
}

/// The value of `user.NAME`.
pub fn get(meta: &BTreeMap<String, String>, name: &str) -> Option<Vec<u8>> {
    if let Some(v) = meta.get(name).filter(|_| valid_meta_name(name)) {
        return Some(decode_value(v));
    }
    blob(meta)?.remove(&format!("{USER_PREFIX}{name}"))
}

pub fn exists(meta: &BTreeMap<String, String>, name: &str) -> bool {
    get(meta, name).is_some()
}

/// Every `user.NAME` NAME, from both encodings (`skip`: metadata names that are not user
/// attributes, e.g. cosfs's mode/uid/gid).
pub fn names(meta: &BTreeMap<String, String>, skip: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = meta
        .keys()
        .filter(|n| valid_meta_name(n) && n.as_str() != BLOB_KEY && !skip.contains(&n.as_str()))
        .cloned()
        .collect();
    if let Some(b) = blob(meta) {
        for full in b.keys() {
            if let Some(n) = full.strip_prefix(USER_PREFIX) {
                if !out.iter().any(|o| o == n) {
                    out.push(n.to_string());
                }
            }
        }
    }
    out
}

/// Set `user.NAME`: in the blob when the object has one (cosfs's encoding), else as
/// `x-cos-meta-NAME`. Err: a name only the blob could carry, on an object without one.
pub fn set(meta: &mut BTreeMap<String, String>, name: &str, value: &[u8]) -> Result<(), String> {
    if let Some(mut b) = blob(meta) {
        meta.remove(name);
        b.insert(format!("{USER_PREFIX}{name}"), value.to_vec());
        meta.insert(BLOB_KEY.to_string(), encode_blob(&b));
        return Ok(());
    }
    if !valid_meta_name(name) {
        return Err(format!(
            "user.{name}: COS metadata names may only hold a-z, 0-9, '-' and '.'"
        ));
    }
    meta.insert(name.to_string(), encode_value(value));
    Ok(())
}

/// Remove `user.NAME` from whichever encoding holds it; false when neither does.
pub fn remove(meta: &mut BTreeMap<String, String>, name: &str) -> bool {
    let mut found = valid_meta_name(name) && meta.remove(name).is_some();
    if let Some(mut b) = blob(meta) {
        if b.remove(&format!("{USER_PREFIX}{name}")).is_some() {
            found = true;
            meta.insert(BLOB_KEY.to_string(), encode_blob(&b));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cosfs_blob_round_trips() {
        // As s3fs/cosfs write it: URL-encoded JSON with base64 values.
        let stored =
            "%7B%22user.Color%22%3A%22Ymx1ZQ%3D%3D%22%2C%22security.x%22%3A%22AA%3D%3D%22%7D";
        let b = decode_blob(stored);
        assert_eq!(b.get("user.Color").map(Vec::as_slice), Some(&b"blue"[..]));
        assert_eq!(decode_blob(&encode_blob(&b)), b);
        assert!(decode_blob("garbage").is_empty());
    }

    #[test]
    fn attributes_live_where_the_object_keeps_them() {
        let mut plain = BTreeMap::new();
        set(&mut plain, "tag", b"v").unwrap();
        assert_eq!(plain.get("tag").map(String::as_str), Some("v"));
        assert!(set(&mut plain, "Upper_Case", b"v").is_err());

        let mut cosfs = BTreeMap::from([(
            BLOB_KEY.to_string(),
            encode_blob(&BTreeMap::from([(
                "user.Color".to_string(),
                b"blue".to_vec(),
            )])),
        )]);
        assert_eq!(get(&cosfs, "Color"), Some(b"blue".to_vec()));
        assert_eq!(names(&cosfs, &[]), vec!["Color".to_string()]);
        set(&mut cosfs, "Upper_Case", b"x").unwrap();
        set(&mut cosfs, "tag", b"y").unwrap();
        assert!(
            !cosfs.contains_key("tag"),
            "kept in the blob, where cosfs reads it"
        );
        assert_eq!(get(&cosfs, "tag"), Some(b"y".to_vec()));
        assert!(remove(&mut cosfs, "Color"));
        assert!(!remove(&mut cosfs, "Color"));
        let mut n = names(&cosfs, &[]);
        n.sort();
        assert_eq!(n, vec!["Upper_Case".to_string(), "tag".to_string()]);
    }
}
