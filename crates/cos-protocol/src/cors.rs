//! Bucket CORS rules (`PUT/GET Bucket cors`, cos-protocol.md): the configuration the client
//! sends and the server stores and answers with, its XML body, and how a rule matches a
//! browser's request (which the server evaluates for preflights and actual requests).

/// The methods a rule may allow.
pub const ALLOWED_METHODS: [&str; 5] = ["GET", "PUT", "POST", "DELETE", "HEAD"];

/// One `CORSRule`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct CorsRule {
    pub id: Option<String>,
    pub allowed_origins: Vec<String>,
    pub allowed_methods: Vec<String>,
    pub allowed_headers: Vec<String>,
    pub expose_headers: Vec<String>,
    pub max_age_seconds: Option<u64>,
}

/// The rules of a bucket's `CORSConfiguration`, in order (the first match applies).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct CorsConfiguration {
    pub rules: Vec<CorsRule>,
}

impl CorsConfiguration {
    /// The `<CORSConfiguration>` element (no XML declaration): the PUT body and the GET answer.
    pub fn to_xml(&self) -> String {
        let mut out = String::from("<CORSConfiguration>");
        let leaf = |out: &mut String, tag: &str, value: &str| {
            if value.is_empty() {
                out.push_str(&format!("<{tag}/>"));
            } else {
                out.push_str(&format!("<{tag}>{}</{tag}>", crate::xml::escape(value)));
            }
        };
        for r in &self.rules {
            out.push_str("<CORSRule>");
            if let Some(id) = &r.id {
                leaf(&mut out, "ID", id);
            }
            for (tag, values) in [
                ("AllowedOrigin", &r.allowed_origins),
                ("AllowedMethod", &r.allowed_methods),
                ("AllowedHeader", &r.allowed_headers),
                ("ExposeHeader", &r.expose_headers),
            ] {
                for v in values {
                    leaf(&mut out, tag, v);
                }
            }
            if let Some(age) = r.max_age_seconds {
                leaf(&mut out, "MaxAgeSeconds", &age.to_string());
            }
            out.push_str("</CORSRule>");
        }
        out.push_str("</CORSConfiguration>");
        out
    }

    /// The first rule allowing this origin, method and (lower-case) request headers.
    pub fn matching_rule(
        &self,
        origin: &str,
        method: &str,
        headers: &[String],
    ) -> Option<&CorsRule> {
        self.rules
            .iter()
            .find(|r| r.allows(origin, method, headers))
    }
}

/// `*` matches any run of characters (COS allows one `*` in an origin, e.g. `http://*.a.com`).
pub fn wildcard_match(pattern: &str, text: &str, case_insensitive: bool) -> bool {
    let (p, t) = if case_insensitive {
        (pattern.to_ascii_lowercase(), text.to_ascii_lowercase())
    } else {
        (pattern.to_string(), text.to_string())
    };
    match p.split_once('*') {
        None => p == t,
        Some((head, tail)) => {
            t.len() >= head.len() + tail.len() && t.starts_with(head) && t.ends_with(tail)
        }
    }
}

impl CorsRule {
    /// Origins match exactly or by wildcard, methods case-insensitively, and every requested
    /// header must match an allowed one (case-insensitively, wildcards allowed).
    pub fn allows(&self, origin: &str, method: &str, headers: &[String]) -> bool {
        self.allowed_origins
            .iter()
            .any(|o| wildcard_match(o.trim(), origin, false))
            && self
                .allowed_methods
                .iter()
                .any(|m| m.trim().eq_ignore_ascii_case(method))
            && headers.iter().all(|h| {
                self.allowed_headers
                    .iter()
                    .any(|a| wildcard_match(a.trim(), h, true))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(wildcard_match("*", "http://x.com", false));
        assert!(wildcard_match("http://*.a.com", "http://www.a.com", false));
        assert!(!wildcard_match("http://*.a.com", "http://www.b.com", false));
        assert!(wildcard_match("x-cos-*", "X-COS-META-A", true));
        assert!(!wildcard_match("http://a.com", "http://a.com.evil", false));
    }

    #[test]
    fn xml_and_matching() {
        let c = CorsConfiguration {
            rules: vec![CorsRule {
                id: Some("a&b".into()),
                allowed_origins: vec!["http://*.a.com".into()],
                allowed_methods: vec!["GET".into()],
                allowed_headers: vec!["x-cos-*".into()],
                expose_headers: vec!["ETag".into()],
                max_age_seconds: Some(600),
            }],
        };
        assert_eq!(
            c.to_xml(),
            "<CORSConfiguration><CORSRule><ID>a&amp;b</ID>\
             <AllowedOrigin>http://*.a.com</AllowedOrigin><AllowedMethod>GET</AllowedMethod>\
             <AllowedHeader>x-cos-*</AllowedHeader><ExposeHeader>ETag</ExposeHeader>\
             <MaxAgeSeconds>600</MaxAgeSeconds></CORSRule></CORSConfiguration>"
        );
        let h = vec!["x-cos-meta-a".to_string()];
        assert!(c.matching_rule("http://w.a.com", "get", &h).is_some());
        assert!(c.matching_rule("http://w.b.com", "GET", &h).is_none());
        assert!(c.matching_rule("http://w.a.com", "PUT", &[]).is_none());
        assert!(c
            .matching_rule("http://w.a.com", "GET", &["range".to_string()])
            .is_none());
    }
}
