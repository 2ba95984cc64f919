//! A counting global allocator, compiled in only with the `count-alloc`
//! feature: how `scripts/memory` measures what a connection costs in live
//! heap bytes, deterministically, where RSS moves in pages and arenas.
//!
//! The counts are process-wide. `SIGUSR1` prints them on stderr as one line,
//! `wscope: heap live_bytes=N live_allocations=N`, so a running `serve` or
//! `proxy` can be asked without any endpoint of its own changing.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

/// The system allocator, with every live byte and block counted.
pub struct Counting;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);
static LIVE_ALLOCATIONS: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call goes straight to `System`, which upholds the contract;
// the counters only observe the sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
            LIVE_ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
            LIVE_ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        LIVE_ALLOCATIONS.fetch_sub(1, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            LIVE_BYTES.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
        }
        new
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Heap bytes and blocks allocated and not yet freed.
pub fn live() -> (isize, isize) {
    (
        LIVE_BYTES.load(Ordering::Relaxed),
        LIVE_ALLOCATIONS.load(Ordering::Relaxed),
    )
}

/// Prints [`live`] on stderr at every `SIGUSR1`, for the life of the
/// runtime. Call from inside the runtime, before anyone may send the signal
/// (its default action ends the process).
#[cfg(unix)]
pub fn report_on_sigusr1() {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut signals) = signal(SignalKind::user_defined1()) else {
        eprintln!("wscope: count-alloc: cannot listen for SIGUSR1");
        return;
    };
    tokio::spawn(async move {
        while signals.recv().await.is_some() {
            let (bytes, allocations) = live();
            eprintln!("wscope: heap live_bytes={bytes} live_allocations={allocations}");
        }
    });
}
