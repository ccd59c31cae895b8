//! Names made `&'static str` once: the names a declared service gives its
//! dependencies, endpoints and parts, which its events and replies carry on the hot
//! path as plain references (the seed service's are literals).
//!
//! Each distinct name is leaked once per process and kept in a set, so the memory
//! this holds is bounded by the distinct names of the services loaded, never by
//! traffic or by how many runs a sweep makes.

use std::collections::BTreeSet;
use std::sync::Mutex;

static NAMES: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());

/// `name` as a `&'static str`: the same reference for the same text.
pub fn intern(name: &str) -> &'static str {
    let mut names = NAMES
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(&known) = names.get(name) {
        return known;
    }
    let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
    names.insert(leaked);
    leaked
}

#[cfg(test)]
mod tests {
    use super::intern;

    #[test]
    fn the_same_text_is_the_same_reference() {
        let a = intern("payments");
        let b = intern(&String::from("payments"));
        assert!(std::ptr::eq(a, b));
        assert_eq!(intern("inventory"), "inventory");
    }
}
