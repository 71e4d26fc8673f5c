//! pktc-kdc: the PacketCable realm security service.
//!
//! `kdc` holds the request pipeline ([`kdc::Kdc::handle`]), the AS and TGS
//! exchanges, caches, listeners and the dev realm; `main.rs` owns the CLI,
//! configuration loading, logging and exit codes.

pub mod admin;
pub mod as_exchange;
pub mod certboot_service;
pub mod certs_cli;
pub mod check;
pub mod config;
pub mod crl_fetch;
pub mod db;
pub mod dev;
pub mod dev_certboot;
pub mod directory;
pub mod issue;
pub mod kdc;
pub mod kdc_identity;
pub mod kerr;
pub mod keytab_cli;
pub mod lease_hook;
pub mod lookaside;
pub mod metrics;
pub mod mps_cli;
pub mod mps_directory;
pub mod mps_responder;
pub mod overload;
pub mod pkinit_as;
pub mod pool;
pub mod rate_limit;
pub mod reason;
pub mod recheck;
pub mod recv_stamp;
pub mod redis_conn;

pub mod server;
pub mod service;
pub mod shared_cache;
pub mod state_metrics;
pub mod tcp;
pub mod tgs_exchange;
pub mod tgs_policy;
pub mod trust_cli;
