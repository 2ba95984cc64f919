//! How glibc's allocator is asked to keep freed message buffers rather than
//! hand them back to the kernel after every message.
//!
//! A relay that holds messages (the shaping relay) allocates and frees
//! buffers the size of a message for each one. With glibc's defaults an
//! arena gives memory back once 128 KiB is free at its top, so each 64 KiB
//! message's buffers went back to the kernel when freed and were faulted
//! in again, zeroed, for the next: a fifth of the shaping proxy's CPU at
//! 64 KiB messages (BENCHMARKS.md). Setting either threshold stops glibc
//! from sliding them itself, so both are set: blocks under 4 MiB come from
//! the arenas, and an arena gives memory back once 8 MiB is free at its
//! top. What the program holds is unchanged; what is kept free is bounded
//! per arena.

/// Sets the thresholds; whether the allocator took them (always false
/// where the allocator is not glibc's).
pub fn keep_freed_buffers() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes the allocator's parameters and takes
        // its locks itself; `main` calls it before other threads start.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, 8 << 20) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    #[test]
    fn glibc_takes_the_thresholds() {
        assert!(super::keep_freed_buffers());
    }
}
