//! A hint to the CPU to start loading memory it will read soon.

/// Asks the CPU to bring the cache line holding `value` into its caches, and goes on
/// without waiting. Only a hint: it changes no result, and it is a no-op on targets
/// other than x86-64.
#[inline(always)]
pub fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `_mm_prefetch` reads nothing the program can observe and cannot fault,
    // whatever the address (here a live reference); SSE, the feature it needs, is
    // part of the x86-64 baseline, so every x86-64 CPU has it.
    #[allow(unsafe_code)]
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(std::ptr::from_ref(value).cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}
