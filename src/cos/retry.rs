//! When and how long to wait before trying a COS request again.
//!
//! Policy (DESIGN.md "Errors and limits"): network errors, HTTP 5xx and `SlowDown` are retried
//! with capped exponential backoff and jitter; other 4xx are final, except a clock-skew answer
//! which the client retries once after learning the server's time (see `client.rs`).

// `CosError` (error.rs) carries its `ServiceError` inline; it is shared by every layer, so
// its size is accepted here rather than boxed.
#![allow(clippy::result_large_err)]

use std::time::Duration;

use super::error::{CosError, ServiceError};

/// Defaults: 5 attempts in all; waits of about 100 ms, 200 ms, 400 ms, 800 ms (each between half
/// and all of the nominal value), never above 5 s. Five attempts ride out a short COS throttle
/// burst or a dropped pooled connection without keeping a FUSE caller waiting for long.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;
pub const DEFAULT_BASE_DELAY: Duration = Duration::from_millis(100);
pub const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(5);
/// Default time budget: after `max_attempts`, a transient failure is still retried while the
/// next try would start within this long of the first, so a server outage of a few seconds
/// does not fail a write (`-o retry_budget=SECS`; 0 keeps only `max_attempts`).
pub const DEFAULT_BUDGET: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total tries including the first (1 = never retry).
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// Keep retrying past `max_attempts` while the next try starts within this long of the
    /// first one.
    pub budget: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            base_delay: DEFAULT_BASE_DELAY,
            max_delay: DEFAULT_MAX_DELAY,
            budget: DEFAULT_BUDGET,
        }
    }
}

impl RetryPolicy {
    /// Whether to try again after failed attempt `attempt`, `elapsed` after the first began,
    /// waiting `delay` first.
    pub fn should_retry(&self, attempt: u32, elapsed: Duration, delay: Duration) -> bool {
        attempt < self.max_attempts || elapsed + delay <= self.budget
    }

    /// How long to wait after failed attempt number `attempt` (1-based): `base * 2^(attempt-1)`
    /// capped at `max_delay`, then "equal jitter" (a uniform pick in the upper half) so many
    /// clients throttled together do not retry in lockstep, yet each still backs off.
    pub fn delay_after(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(20);
        let nominal = self
            .base_delay
            .saturating_mul(1u32 << exp)
            .min(self.max_delay);
        let half = nominal / 2;
        let jitter_ms = half.as_millis() as u64;
        let extra = if jitter_ms == 0 {
            0
        } else {
            rand::random_range(0..=jitter_ms)
        };
        half + Duration::from_millis(extra)
    }
}

/// Whether COS's answer is worth another try: server errors and throttling.
pub fn is_retryable_service_error(e: &ServiceError) -> bool {
    // A 200 carrying <Error> (Complete, Copy) is the operation's result, not a transport glitch.
    if e.status < 400 {
        return false;
    }
    e.status >= 500 || e.code == "SlowDown"
}

/// Whether the answer says our clock is off: re-signing with the server's time may fix it.
pub fn is_clock_skew(e: &ServiceError) -> bool {
    e.code == "RequestTimeTooSkewed"
        || (e.code == "AccessDenied" && e.message.to_ascii_lowercase().contains("expired"))
}

/// Whether an error is one a retry could fix: a network failure or a retryable service error.
pub fn is_transient(e: &CosError) -> bool {
    match e {
        CosError::Network { .. } => true,
        CosError::Service(s) => is_retryable_service_error(s),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_are_capped() {
        let p = RetryPolicy::default();
        for attempt in 1..=30 {
            let d = p.delay_after(attempt);
            assert!(d <= p.max_delay, "attempt {attempt}: {d:?}");
        }
        let first = p.delay_after(1);
        assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
        let fourth = p.delay_after(4);
        assert!(fourth >= Duration::from_millis(400) && fourth <= Duration::from_millis(800));
        let late = p.delay_after(12);
        assert!(late >= Duration::from_millis(2500));
    }

    #[test]
    fn classification() {
        let e = |status: u16, code: &str, message: &str| ServiceError {
            status,
            code: code.into(),
            message: message.into(),
            ..Default::default()
        };
        assert!(is_retryable_service_error(&e(503, "SlowDown", "")));
        assert!(is_retryable_service_error(&e(500, "InternalError", "")));
        assert!(!is_retryable_service_error(&e(404, "NoSuchKey", "")));
        assert!(!is_retryable_service_error(&e(200, "InternalError", "")));
        assert!(is_clock_skew(&e(403, "RequestTimeTooSkewed", "")));
        assert!(is_clock_skew(&e(
            403,
            "AccessDenied",
            "Request has expired"
        )));
        assert!(!is_clock_skew(&e(403, "AccessDenied", "no permission")));
    }
}
