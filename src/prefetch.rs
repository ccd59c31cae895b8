//! A hint to the CPU to start loading memory it will read soon.

/// Asks the CPU to bring the cache line holding `value` into its caches, and goes on
/// without waiting. Only a hint: it changes no result. A no-op off x86-64.
#[inline(always)]
pub(crate) fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    safe_arch::prefetch_t0(value);
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}
