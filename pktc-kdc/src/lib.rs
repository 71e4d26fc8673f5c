//! pktc-kdc: the PacketCable realm security service around the `kdc`
//! engine: listeners (UDP, TCP, certificate bootstrapping), metrics,
//! configuration loading, the operator tools (`cli/`, `check/`) and the
//! dev realm (`dev/`). `main.rs` owns the CLI, logging and exit codes.

pub mod admin;
pub mod certboot_service;
pub mod check;
pub mod cli;
pub mod config;
pub mod crl_fetch;
pub mod dev;
pub mod engine;
pub mod kdc_identity;
pub mod metrics;
pub mod mps_directory;
pub mod overload;
pub mod recheck;
pub mod recv_stamp;
pub mod redis_conn;
pub mod server;
pub mod service;
pub mod shared_cache;
pub mod state_metrics;
pub mod tcp;
