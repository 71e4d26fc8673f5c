//! `pktc-kdc certs` subcommands (being written).
