//! TODO: queue (being written)
