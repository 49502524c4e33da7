//! The server's clock, optionally shifted by `--clock-offset` (so tests can play a client whose
//! clock is hours off), and COS's clock-skew rule: a header-signed request whose `Date`, or any
//! request whose q-sign-time start, is more than 15 minutes ahead of (for `Date`: away from)
//! the server's time gets 403 `RequestTimeTooSkewed`.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hyper::header::HeaderMap;
use hyper::StatusCode;

use crate::error::CosErr;

/// How far a request's time may be from the server's.
pub const MAX_SKEW_SECS: i64 = 15 * 60;

/// Seconds added to the system clock (process-wide: one server per process).
static OFFSET_SECS: AtomicI64 = AtomicI64::new(0);

/// Shift the server's clock by `secs` (negative: behind the system clock).
pub fn set_offset(secs: i64) {
    OFFSET_SECS.store(secs, Ordering::Relaxed);
}

pub fn offset() -> i64 {
    OFFSET_SECS.load(Ordering::Relaxed)
}

/// The server's time.
pub fn now() -> SystemTime {
    let offset = offset();
    let magnitude = Duration::from_secs(offset.unsigned_abs());
    let system = SystemTime::now();
    if offset >= 0 {
        system.checked_add(magnitude).unwrap_or(system)
    } else {
        system.checked_sub(magnitude).unwrap_or(system)
    }
}

/// Milliseconds since the Unix epoch, server time.
pub fn now_ms() -> i64 {
    now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Seconds since the Unix epoch, server time.
pub fn unix_now() -> i64 {
    now_ms().div_euclid(1000)
}

/// The `Date` response header value.
pub fn http_date_now() -> String {
    httpdate::fmt_http_date(now())
}

/// The start of the `q-sign-time` window of an Authorization header or presigned query.
fn sign_time_start(headers: &HeaderMap, query: &[(String, String)]) -> Option<i64> {
    let from_pair = |v: &str| {
        v.split_once(';')
            .and_then(|(start, _)| start.trim().parse::<i64>().ok())
    };
    if let Some(auth) = headers.get(hyper::header::AUTHORIZATION) {
        let text = String::from_utf8_lossy(auth.as_bytes());
        return text
            .split('&')
            .find_map(|kv| kv.trim().strip_prefix("q-sign-time="))
            .and_then(from_pair);
    }
    query
        .iter()
        .find(|(k, _)| k == "q-sign-time")
        .and_then(|(_, v)| from_pair(v))
}

/// COS's skew rule for a request received at `now` (Unix seconds, server time).
pub fn check_skew(headers: &HeaderMap, query: &[(String, String)], now: i64) -> Result<(), CosErr> {
    let skewed = |detail: String| {
        CosErr::new(
            StatusCode::FORBIDDEN,
            "RequestTimeTooSkewed",
            "The difference between the request time and the server's time is too large.",
        )
        .with("RequestTime", detail)
        .with("ServerTime", httpdate::fmt_http_date(unix_to_system(now)))
        .with(
            "MaxAllowedSkewMilliseconds",
            (MAX_SKEW_SECS * 1000).to_string(),
        )
    };
    if headers.contains_key(hyper::header::AUTHORIZATION) {
        if let Some(date) = headers
            .get(hyper::header::DATE)
            .and_then(|d| d.to_str().ok())
            .and_then(|d| httpdate::parse_http_date(d).ok().map(|t| (d, t)))
        {
            let t = system_to_unix(date.1);
            if (t - now).abs() > MAX_SKEW_SECS {
                return Err(skewed(date.0.to_string()));
            }
        }
    }
    // A window that starts in the past is normal (presigned URLs are used long after signing);
    // one that starts more than 15 minutes in the future comes from a clock that is ahead.
    if let Some(start) = sign_time_start(headers, query) {
        if start - now > MAX_SKEW_SECS {
            return Err(skewed(format!("q-sign-time start {start}")));
        }
    }
    Ok(())
}

fn unix_to_system(secs: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs.max(0) as u64)
}

fn system_to_unix(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth_headers(start: i64, date: Option<i64>) -> HeaderMap {
        let mut h = HeaderMap::new();
        let auth = format!(
            "q-sign-algorithm=sha1&q-ak=AK&q-sign-time={start};{}&q-key-time={start};{}&q-header-list=&q-url-param-list=&q-signature=00",
            start + 600,
            start + 600
        );
        h.insert(hyper::header::AUTHORIZATION, auth.parse().unwrap());
        if let Some(d) = date {
            h.insert(
                hyper::header::DATE,
                httpdate::fmt_http_date(unix_to_system(d)).parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn skew_rule() {
        let now = 1_800_000_000;
        assert!(check_skew(&auth_headers(now - 60, Some(now)), &[], now).is_ok());
        // 15 minutes exactly is fine, more is not.
        assert!(check_skew(&auth_headers(now + 900, None), &[], now).is_ok());
        let e = check_skew(&auth_headers(now + 901, None), &[], now).unwrap_err();
        assert_eq!((e.status.as_u16(), e.code), (403, "RequestTimeTooSkewed"));
        // A start long past is a presigned URL used later, not a skewed clock.
        assert!(check_skew(&auth_headers(now - 86_400, None), &[], now).is_ok());
        // Date is checked both ways.
        assert!(check_skew(&auth_headers(now - 60, Some(now - 7200)), &[], now).is_err());
        assert!(check_skew(&auth_headers(now - 60, Some(now + 1000)), &[], now).is_err());
        let q = vec![(
            "q-sign-time".to_string(),
            format!("{};{}", now + 3600, now + 7200),
        )];
        assert!(check_skew(&HeaderMap::new(), &q, now).is_err());
        assert!(check_skew(&HeaderMap::new(), &[], now).is_ok());
    }

    #[test]
    fn offset_shifts_the_clock() {
        // The only test touching the process-wide offset.
        let before = unix_now();
        set_offset(7200);
        let shifted = unix_now();
        set_offset(0);
        assert!((shifted - before - 7200).abs() <= 2);
    }
}
