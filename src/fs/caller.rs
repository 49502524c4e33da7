//! Releasing a caller that was killed while its request waits on COS.
//!
//! Once a FUSE request has reached the daemon, the kernel keeps its caller in uninterruptible
//! sleep until the answer comes, even after SIGKILL; FUSE_INTERRUPT would tell us, but fuser
//! 0.18 answers it ENOSYS itself (request.rs: "TODO: handle FUSE_INTERRUPT"). So requests that
//! only read watch their caller instead: when a fatal signal is pending for it, the request is
//! dropped (its reply goes out as EIO to a process that is dying anyway) and the caller is
//! released at once instead of after the retry budget.

use std::time::Duration;

/// How often a waiting request looks at its caller.
const POLL: Duration = Duration::from_millis(100);

/// SIGKILL's bit in the pending-signal masks of /proc/PID/status.
const SIGKILL_BIT: u64 = 1 << (libc::SIGKILL - 1);

/// Is SIGKILL pending for task `pid` (a FUSE request's pid), or is the task gone?
pub fn fatal_signal_pending(pid: u32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return true;
    };
    sigkill_pending_in(&status)
}

/// SIGKILL in `SigPnd` (the thread's) or `ShdPnd` (the process's) of a /proc status text.
fn sigkill_pending_in(status: &str) -> bool {
    status.lines().any(|line| {
        let Some((name, mask)) = line.split_once(':') else {
            return false;
        };
        (name == "SigPnd" || name == "ShdPnd")
            && u64::from_str_radix(mask.trim(), 16).is_ok_and(|m| m & SIGKILL_BIT != 0)
    })
}

/// Resolves when caller `pid` has been killed. Never for pid 0 (requests the kernel makes on
/// its own behalf). The first look is after one poll interval: most requests end before.
pub async fn killed(pid: u32) {
    if pid == 0 {
        return std::future::pending().await;
    }
    loop {
        tokio::time::sleep(POLL).await;
        if fatal_signal_pending(pid) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigkill_is_found_in_either_pending_mask() {
        let idle = "Name:\tcat\nSigPnd:\t0000000000000000\nShdPnd:\t0000000000000000\n";
        assert!(!sigkill_pending_in(idle));
        assert!(sigkill_pending_in(
            "SigPnd:\t0000000000000100\nShdPnd:\t0000000000000000\n"
        ));
        assert!(sigkill_pending_in(
            "SigPnd:\t0000000000000000\nShdPnd:\t0000000000000100\n"
        ));
        // SIGTERM (bit 15) alone is not fatal here: the program may handle it.
        assert!(!sigkill_pending_in("SigPnd:\t0000000000004000\n"));
        assert!(!sigkill_pending_in("SigPnd:\tzz\n"));
    }

    #[test]
    fn this_process_is_not_being_killed() {
        assert!(!fatal_signal_pending(std::process::id()));
    }
}
