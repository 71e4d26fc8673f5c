//! The trust store (next commit).
