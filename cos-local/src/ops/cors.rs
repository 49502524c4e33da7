//! Bucket CORS: configuration get/put/delete, OPTIONS preflight answered from the rules, and
//! CORS headers on actual requests whose Origin matches a rule.

use std::sync::Arc;

use axum::body::Body;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Response, StatusCode};

use super::{authorize, empty, set_header, xml_response, Access, MAX_XML_BODY};
use crate::error::{CosErr, OpResult};
use crate::server::{App, Ctx};
use crate::store::Bucket;
use crate::xml;
use cos_protocol::cors::{CorsConfiguration, CorsRule, ALLOWED_METHODS};

pub async fn put_cors(ctx: &mut Ctx, bucket: &Arc<Bucket>) -> OpResult<Response<Body>> {
    authorize(ctx, bucket, Access::Owner)?;
    let body = ctx.small_body(MAX_XML_BODY).await?;
    let parsed: xml::CorsConfiguration = xml::parse(&body)?;
    if parsed.rules.is_empty() {
        return Err(CosErr::malformed_xml(
            "A CORS configuration needs at least one CORSRule.",
        ));
    }
    let mut rules = Vec::new();
    for r in parsed.rules {
        if r.allowed_origins.is_empty() || r.allowed_methods.is_empty() {
            return Err(CosErr::malformed_xml(
                "Every CORSRule needs AllowedOrigin and AllowedMethod.",
            ));
        }
        if let Some(m) = r
            .allowed_methods
            .iter()
            .find(|m| !ALLOWED_METHODS.contains(&m.trim().to_ascii_uppercase().as_str()))
        {
            return Err(CosErr::invalid_argument(format!(
                "Unsupported CORS method {m}."
            )));
        }
        rules.push(CorsRule {
            id: r.id,
            allowed_origins: r.allowed_origins,
            allowed_methods: r.allowed_methods,
            allowed_headers: r.allowed_headers,
            expose_headers: r.expose_headers,
            max_age_seconds: r.max_age_seconds,
        });
    }
    bucket.update_config(|c| c.cors = Some(CorsConfiguration { rules }))?;
    Ok(empty(StatusCode::OK))
}

fn no_cors() -> CosErr {
    CosErr::new(
        StatusCode::NOT_FOUND,
        "NoSuchCORSConfiguration",
        "The CORS configuration does not exist.",
    )
}

pub fn get_cors(ctx: &mut Ctx, bucket: &Arc<Bucket>) -> OpResult<Response<Body>> {
    authorize(ctx, bucket, Access::Owner)?;
    let config = bucket.config().cors.ok_or_else(no_cors)?;
    Ok(xml_response(format!(
        "{}{}",
        xml::DECLARATION,
        config.to_xml()
    )))
}

pub fn delete_cors(ctx: &mut Ctx, bucket: &Arc<Bucket>) -> OpResult<Response<Body>> {
    authorize(ctx, bucket, Access::Owner)?;
    bucket.update_config(|c| c.cors = None)?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// OPTIONS Object / Bucket: a browser preflight, never signed.
pub fn preflight(ctx: &mut Ctx, bucket: &Arc<Bucket>) -> OpResult<Response<Body>> {
    let (Some(origin), Some(method)) = (
        ctx.header("origin"),
        ctx.header("access-control-request-method"),
    ) else {
        return Err(CosErr::invalid_request(
            "A preflight needs Origin and Access-Control-Request-Method.",
        ));
    };
    let requested: Vec<String> = ctx
        .header("access-control-request-headers")
        .map(|h| {
            h.split(',')
                .map(|s| s.trim().to_ascii_lowercase())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let denied = || {
        CosErr::access_denied("CORSResponse: This CORS request is not allowed. This is usually because the evalution of Origin, request method / Access-Control-Request-Method or Access-Control-Requet-Headers are not whitelisted by the resource's CORS spec.")
    };
    let config = bucket.config().cors.ok_or_else(denied)?;
    let rule = config
        .matching_rule(origin, method, &requested)
        .ok_or_else(denied)?;
    let mut resp = empty(StatusCode::OK);
    set_header(&mut resp, "access-control-allow-origin", origin);
    set_header(
        &mut resp,
        "access-control-allow-methods",
        &rule.allowed_methods.join(","),
    );
    if !requested.is_empty() {
        set_header(
            &mut resp,
            "access-control-allow-headers",
            &requested.join(","),
        );
    }
    if !rule.expose_headers.is_empty() {
        set_header(
            &mut resp,
            "access-control-expose-headers",
            &rule.expose_headers.join(","),
        );
    }
    if let Some(age) = rule.max_age_seconds {
        set_header(&mut resp, "access-control-max-age", &age.to_string());
    }
    set_header(
        &mut resp,
        "vary",
        "Origin, Access-Control-Request-Headers, Access-Control-Request-Method",
    );
    Ok(resp)
}

/// CORS headers for an actual (non-preflight) request with an Origin.
pub fn add_actual_request_headers(
    app: &App,
    bucket: &str,
    origin: &str,
    method: &str,
    headers: &mut HeaderMap,
) {
    let Some(config) = app.store.bucket(bucket).and_then(|b| b.config().cors) else {
        return;
    };
    let Some(rule) = config.matching_rule(origin, method, &[]) else {
        return;
    };
    let mut put = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(HeaderName::from_static(name), v);
        }
    };
    put("access-control-allow-origin", origin);
    put(
        "access-control-allow-methods",
        &rule.allowed_methods.join(","),
    );
    if !rule.expose_headers.is_empty() {
        put(
            "access-control-expose-headers",
            &rule.expose_headers.join(","),
        );
    }
    if let Some(age) = rule.max_age_seconds {
        put("access-control-max-age", &age.to_string());
    }
    put("vary", "Origin");
}
