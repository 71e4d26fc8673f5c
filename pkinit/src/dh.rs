//! DH and ECDH key agreement and PKINIT key derivation (being written).
