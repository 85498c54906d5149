//! `runtime::keep_freed_memory` keeps a worker thread's large blocks for
//! reuse. Without it (or with glibc's per-thread arenas), a thread's block
//! above 64 MiB is mapped on its own, unmapped when freed, and every page
//! faults again the next time. No test harness: the setting must come first
//! in `main`, before any other thread has an arena, as in the CLI.

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn main() {
    if !ptycho_workbench::runtime::keep_freed_memory() {
        println!("allocator: skipped, PTYCHO_KEEP_FREED_MEMORY=0 keeps glibc's defaults");
        return;
    }
    let (first, second) = std::thread::spawn(|| (touch_block(), touch_block()))
        .join()
        .expect("worker thread");
    // 96 MiB is 24 576 pages of 4 KiB (fewer with transparent huge pages)
    assert!(
        second * 4 <= first.max(16),
        "a worker thread's 96 MiB block faulted {first} pages the first time and {second} the second: \
         it was not reused"
    );
    println!("allocator: ok ({first} minor faults, then {second})");
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn main() {
    println!("allocator: skipped, glibc only");
}

/// Allocates, touches and frees 96 MiB; returns the calling thread's minor
/// page faults meanwhile.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn touch_block() -> i64 {
    let before = thread_minor_faults();
    let block = std::hint::black_box(vec![1u8; 96 << 20]);
    assert_eq!(block[block.len() - 1], 1);
    drop(block);
    thread_minor_faults() - before
}

/// Minor page faults of the calling thread so far.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn thread_minor_faults() -> i64 {
    // SAFETY: getrusage writes into the zeroed struct we pass
    unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        assert_eq!(libc::getrusage(libc::RUSAGE_THREAD, &mut usage), 0);
        usage.ru_minflt
    }
}
