//! Principal names (being written).
