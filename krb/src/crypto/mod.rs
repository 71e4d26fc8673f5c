//! RFC 3961/3962/8009 crypto (being written).
