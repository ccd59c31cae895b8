//! TODO: modes (being written)
