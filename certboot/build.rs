// Present so that the optional `openssl-src` build-dependency (feature
// `legacy-3des`) is a real build-dependency of this crate; see Cargo.toml.
fn main() {}
