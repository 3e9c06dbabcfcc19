//! Unit tests that need the whole crate: fault injection into the executor.
