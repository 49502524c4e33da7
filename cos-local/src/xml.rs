//! XML in and out. Responses are written with a tiny escaping builder (the element order and
//! spelling follow cos-protocol.md exactly); request bodies are parsed with quick-xml + serde.

use serde::Deserialize;

use crate::error::CosErr;

pub const DECLARATION: &str = "<?xml version='1.0' encoding='utf-8' ?>\n";

pub use cos_protocol::xml::escape;

/// A small XML writer: `open`/`close` elements, `leaf` for text elements.
#[derive(Default)]
pub struct Xml {
    out: String,
}

impl Xml {
    pub fn new() -> Xml {
        Xml {
            out: DECLARATION.to_string(),
        }
    }
    pub fn open(&mut self, name: &str) -> &mut Self {
        self.out.push('<');
        self.out.push_str(name);
        self.out.push('>');
        self
    }
    /// Open an element with raw (already well-formed) attributes.
    pub fn open_with(&mut self, name: &str, attributes: &str) -> &mut Self {
        self.out.push_str(&format!("<{name} {attributes}>"));
        self
    }
    pub fn close(&mut self, name: &str) -> &mut Self {
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push('>');
        self
    }
    /// `<name>text</name>`, or `<name/>` when text is empty.
    pub fn leaf(&mut self, name: &str, text: impl AsRef<str>) -> &mut Self {
        let text = text.as_ref();
        if text.is_empty() {
            self.out.push_str(&format!("<{name}/>"));
        } else {
            self.out
                .push_str(&format!("<{name}>{}</{name}>", escape(text)));
        }
        self
    }
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.out)
    }
}

/// Parse a request body, mapping any failure to 400 MalformedXML.
pub fn parse<'de, T: Deserialize<'de>>(body: &'de str) -> Result<T, CosErr> {
    quick_xml::de::from_str(body)
        .map_err(|_| CosErr::malformed_xml("The XML you provided was not well-formed."))
}

// ---- request bodies ----

#[derive(Debug, Deserialize)]
pub struct CompleteMultipartUpload {
    #[serde(rename = "Part", default)]
    pub parts: Vec<CompletePart>,
}

#[derive(Debug, Deserialize)]
pub struct CompletePart {
    #[serde(rename = "PartNumber")]
    pub number: u32,
    #[serde(rename = "ETag")]
    pub etag: String,
}

#[derive(Debug, Deserialize)]
pub struct DeleteRequest {
    #[serde(rename = "Quiet", default)]
    pub quiet: Option<String>,
    #[serde(rename = "Object", default)]
    pub objects: Vec<DeleteObject>,
}

#[derive(Debug, Deserialize)]
pub struct DeleteObject {
    #[serde(rename = "Key")]
    pub key: String,
}

#[derive(Debug, Deserialize)]
pub struct AccessControlPolicy {
    #[serde(rename = "AccessControlList", default)]
    pub list: Option<AccessControlList>,
}

#[derive(Debug, Deserialize)]
pub struct AccessControlList {
    #[serde(rename = "Grant", default)]
    pub grants: Vec<XmlGrant>,
}

#[derive(Debug, Deserialize)]
pub struct XmlGrant {
    #[serde(rename = "Grantee")]
    pub grantee: XmlGrantee,
    #[serde(rename = "Permission")]
    pub permission: String,
}

#[derive(Debug, Deserialize)]
pub struct XmlGrantee {
    #[serde(rename = "ID", default)]
    pub id: Option<String>,
    #[serde(rename = "URI", default)]
    pub uri: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct CorsConfiguration {
    #[serde(rename = "CORSRule", default)]
    pub rules: Vec<XmlCorsRule>,
}

#[derive(Debug, Deserialize)]
pub struct XmlCorsRule {
    #[serde(rename = "ID", default)]
    pub id: Option<String>,
    #[serde(rename = "AllowedOrigin", default)]
    pub allowed_origins: Vec<String>,
    #[serde(rename = "AllowedMethod", default)]
    pub allowed_methods: Vec<String>,
    #[serde(rename = "AllowedHeader", default)]
    pub allowed_headers: Vec<String>,
    #[serde(rename = "ExposeHeader", default)]
    pub expose_headers: Vec<String>,
    #[serde(rename = "MaxAgeSeconds", default)]
    pub max_age_seconds: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_complete_body_with_escaped_etags() {
        let body = "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>&quot;abc&quot;</ETag></Part>\
                    <Part><PartNumber>2</PartNumber><ETag>\"def\"</ETag></Part></CompleteMultipartUpload>";
        let c: CompleteMultipartUpload = parse(body).expect("parses");
        assert_eq!(c.parts.len(), 2);
        assert_eq!(c.parts[0].etag, "\"abc\"");
        assert_eq!(c.parts[1].number, 2);
    }

    #[test]
    fn parses_delete_body_any_order() {
        let body = "<Delete><Object><Key>a b.txt</Key></Object><Quiet>true</Quiet><Object><Key>x&amp;y</Key></Object></Delete>";
        let d: DeleteRequest = parse(body).expect("parses");
        assert_eq!(d.quiet.as_deref(), Some("true"));
        let keys: Vec<_> = d.objects.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(keys, ["a b.txt", "x&y"]);
    }

    #[test]
    fn malformed_is_malformed_xml() {
        let r: Result<CompleteMultipartUpload, _> = parse("<Complete");
        assert_eq!(r.map(|_| ()).unwrap_err().code, "MalformedXML");
    }

    #[test]
    fn writer_escapes() {
        let mut x = Xml::default();
        x.open("A")
            .leaf("ETag", "\"e\"")
            .leaf("Empty", "")
            .close("A");
        assert_eq!(x.finish(), "<A><ETag>&quot;e&quot;</ETag><Empty/></A>");
    }
}
