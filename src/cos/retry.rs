//! When and how long to wait before trying a COS request again.
//!
//! Policy (DESIGN.md "Errors and limits"): network errors, HTTP 5xx and `SlowDown` are retried
//! with capped exponential backoff and jitter; other 4xx are final, except a clock-skew answer
//! which the client retries once after learning the server's time (see `client.rs`).
//!
//! Bounded waits: every attempt is watched for progress (request body bytes leaving, answer
//! headers or body bytes arriving). An attempt with no progress for the stall timeout fails
//! as a network error (and is retried); the whole operation, retries included, gets a retry
//! budget: no attempt starts after it, and once it is spent an attempt lives on only while
//! bytes keep moving (at least every [`BUDGET_GRACE`]), so a black-hole server costs a caller
//! at most about the budget, while a large upload or download that is making progress is
//! never cut.

// `CosError` (error.rs) carries its `ServiceError` inline; it is shared by every layer, so
// its size is accepted here rather than boxed.
#![allow(clippy::result_large_err)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::error::{CosError, ServiceError};

/// Longest wait for a TCP (and TLS) connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest silence of a request in flight: no body byte sent, no header or body byte received.
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest a single operation (one COS API call, all its attempts) keeps trying.
pub const DEFAULT_RETRY_BUDGET: Duration = Duration::from_secs(30);
/// Operations where COS works on its side before answering (Complete Multipart Upload merges
/// parts, PUT Copy and Upload Part Copy copy data), which can legitimately take minutes
/// (cos-protocol.md: the Python SDK waits 1200 s): their stall timeout and budget.
pub const SERVER_WORK_TIMEOUT: Duration = Duration::from_secs(1200);
/// Once the budget is spent, an attempt is kept only while bytes arrive at least this often.
pub const BUDGET_GRACE: Duration = Duration::from_secs(1);

/// Defaults: 5 attempts in all; waits of about 100 ms, 200 ms, 400 ms, 800 ms (each between half
/// and all of the nominal value), never above 5 s. Five attempts ride out a short COS throttle
/// burst or a dropped pooled connection without keeping a FUSE caller waiting for long.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;
pub const DEFAULT_BASE_DELAY: Duration = Duration::from_millis(100);
pub const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(5);
/// Default time budget: after `max_attempts`, a transient failure is still retried while the
/// next try would start within this long of the first, so a server outage of a few seconds
/// does not fail a write (`-o retry_budget=SECS`; 0 keeps only `max_attempts`).
pub const DEFAULT_BUDGET: Duration = DEFAULT_RETRY_BUDGET;

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

/// When an attempt last made progress. Cheap to clone; shared with the body being sent.
#[derive(Debug, Clone)]
pub struct Progress {
    origin: Instant,
    /// Milliseconds after `origin` of the last progress.
    last_ms: Arc<AtomicU64>,
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress {
    pub fn new() -> Self {
        Progress {
            origin: Instant::now(),
            last_ms: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Note that bytes moved just now.
    pub fn touch(&self) {
        let ms = self.origin.elapsed().as_millis() as u64;
        self.last_ms.fetch_max(ms, Ordering::Relaxed);
    }

    pub fn last(&self) -> Instant {
        self.origin + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
}

/// Why a watched attempt was given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// Nothing moved for the stall timeout.
    Stalled(Duration),
    /// The operation's budget is spent and nothing is moving.
    BudgetSpent(Duration),
}

impl Expiry {
    /// The network error a caller sees (retryable, and EIO for the filesystem).
    pub fn describe(self) -> String {
        match self {
            Expiry::Stalled(d) => format!(
                "no progress for {} (stall_timeout): the server accepted the request but stopped answering",
                fmt_secs(d)
            ),
            Expiry::BudgetSpent(d) => format!(
                "the server stopped answering and the retry budget of {} (retry_budget) is spent",
                fmt_secs(d)
            ),
        }
    }
}

fn fmt_secs(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{} s", ms / 1000)
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// The limits one operation runs under.
#[derive(Debug, Clone, Copy)]
pub struct Watch {
    pub stall: Duration,
    pub budget: Duration,
    /// When the budget is spent.
    pub deadline: Instant,
}

impl Watch {
    pub fn new(stall: Duration, budget: Duration) -> Self {
        Watch {
            stall,
            budget,
            deadline: Instant::now() + budget,
        }
    }

    /// When to give up, and why, if nothing moves after `last`.
    pub fn give_up_at(&self, last: Instant) -> (Instant, Expiry) {
        let stall_at = last + self.stall;
        let budget_at = self.deadline.max(last + BUDGET_GRACE);
        if budget_at < stall_at {
            (budget_at, Expiry::BudgetSpent(self.budget))
        } else {
            (stall_at, Expiry::Stalled(self.stall))
        }
    }

    /// Whether a retry after `delay` would still start within the budget.
    pub fn allows_retry_after(&self, delay: Duration) -> bool {
        Instant::now() + delay < self.deadline
    }

    /// Resolves when the attempt tracked by `progress` should be given up.
    pub async fn expired(&self, progress: &Progress) -> Expiry {
        loop {
            let last = progress.last();
            let (at, why) = self.give_up_at(last);
            tokio::time::sleep_until(at).await;
            if progress.last() == last {
                return why;
            }
        }
    }

    /// Wait for `fut` (one read of a body) under this watch, `last` being the previous
    /// progress; `Err` when it is to be given up.
    pub async fn read<F: std::future::Future>(
        &self,
        last: Instant,
        fut: F,
    ) -> Result<F::Output, Expiry> {
        let (at, why) = self.give_up_at(last);
        tokio::time::timeout_at(at, fut).await.map_err(|_| why)
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
        || bodiless_403_from_a_distant_clock(e)
}

/// COS refuses requests signed more than 15 minutes off its clock. A HEAD's 403 has no body
/// to say why, so one from a server whose `Date` is that far from ours counts as skew.
fn bodiless_403_from_a_distant_clock(e: &ServiceError) -> bool {
    const COS_SKEW_LIMIT: u64 = 15 * 60;
    if e.status != 403 || !e.message.is_empty() {
        return false;
    }
    let Some(server) = e
        .server_date
        .as_deref()
        .and_then(|d| httpdate::parse_http_date(d).ok())
    else {
        return false;
    };
    let now = std::time::SystemTime::now();
    let apart = server
        .duration_since(now)
        .or_else(|_| now.duration_since(server))
        .unwrap_or_default();
    apart.as_secs() > COS_SKEW_LIMIT
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
    fn a_bodiless_403_counts_as_skew_only_from_a_distant_clock() {
        let at = |t: std::time::SystemTime| ServiceError {
            status: 403,
            code: "AccessDenied".into(),
            server_date: Some(httpdate::fmt_http_date(t)),
            ..Default::default()
        };
        let now = std::time::SystemTime::now();
        assert!(is_clock_skew(&at(now + Duration::from_secs(7200))));
        assert!(is_clock_skew(&at(now - Duration::from_secs(3600))));
        assert!(!is_clock_skew(&at(now + Duration::from_secs(60))));
        let with_body = ServiceError {
            message: "Access Denied.".into(),
            ..at(now + Duration::from_secs(7200))
        };
        assert!(!is_clock_skew(&with_body), "a real AccessDenied says so");
    }

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

    #[tokio::test]
    async fn watch_gives_up_on_stall_then_on_budget() {
        // Nothing moves: the stall timeout ends the attempt.
        let watch = Watch::new(Duration::from_millis(50), Duration::from_secs(10));
        let progress = Progress::new();
        assert_eq!(
            watch.expired(&progress).await,
            Expiry::Stalled(Duration::from_millis(50))
        );
        // Bytes that keep moving keep an attempt alive past its budget; once they stop, the
        // spent budget ends it (after the grace period, long before the stall timeout).
        let watch = Watch::new(Duration::from_secs(60), Duration::from_millis(50));
        let progress = Progress::new();
        let ticker = {
            let p = progress.clone();
            tokio::spawn(async move {
                for _ in 0..10 {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    p.touch();
                }
            })
        };
        let why = watch.expired(&progress).await;
        assert_eq!(why, Expiry::BudgetSpent(Duration::from_millis(50)));
        assert!(ticker.is_finished());
        assert!(!watch.allows_retry_after(Duration::ZERO));
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
