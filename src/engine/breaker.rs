//! TODO: breaker (being written)
