//! The memory budget over a real mount: many parallel readers of distinct files share one
//! budget, so the daemon's peak RSS stays near `memory_limit` (plus the binary itself).

mod common;

use common::{pattern, TestEnv};

const MIB: u64 = 1 << 20;
/// What the daemon needs besides the budget: code, runtime threads, HTTP and FUSE buffers.
const SLACK: u64 = 64 * MIB;

fn vm_hwm(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM");
    let kb: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("VmHWM value");
    kb * 1024
}

#[test]
fn forty_eight_parallel_readers_stay_within_the_budget() {
    const READERS: usize = 48;
    const SIZE: usize = 8 << 20;
    let limit = 32 * MIB;
    let mut env = TestEnv::start();
    let items: Vec<(String, bytes::Bytes)> = (0..READERS)
        .map(|i| (format!("f{i}"), pattern(SIZE, i as u64).into()))
        .collect();
    env.put_many(items);
    env.mount(&["-o", "memory_limit=32M,cache_size=0"]);
    let paths: Vec<_> = (0..READERS).map(|i| env.path(&format!("f{i}"))).collect();
    let handles: Vec<_> = paths
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            std::thread::spawn(move || {
                let got = std::fs::read(&p).expect("read");
                assert!(got == pattern(SIZE, i as u64), "f{i}: wrong bytes");
            })
        })
        .collect();
    for h in handles {
        h.join().expect("reader");
    }
    let pid = env.mount_process().expect("daemon").id();
    let hwm = vm_hwm(pid);
    eprintln!("daemon VmHWM with {READERS} readers: {} MiB", hwm / MIB);
    assert!(
        hwm <= limit + SLACK,
        "peak RSS {} MiB over the budget {} MiB + {} MiB slack",
        hwm / MIB,
        limit / MIB,
        SLACK / MIB
    );
}
