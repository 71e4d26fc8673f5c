//! `eue-sim`: plays PacketCable devices and clients against pktc-kdc.

mod bootload;
mod bootstrap;
mod cpu;
mod load;
mod pk;
mod pkload;
mod provision;
mod storm;
mod storm_net;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "eue-sim",
    version,
    about = "Device simulator and load generator for pktc-kdc"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Drive fresh TGS requests at a KDC on loopback and report throughput,
    /// latency and (with --kdc-pid) the KDC's CPU time per request.
    TgsLoad(load::TgsLoadArgs),
    /// Play one dev-realm device: PacketCable PKINIT for the provisioning
    /// server, RFC 4556 PKINIT for a TGT, then TGS with that TGT.
    Provision(provision::ProvisionArgs),
    /// Drive fresh PKINIT AS requests (each newly signed) at a KDC on
    /// loopback and report throughput, latency and the KDC's CPU per request.
    PkinitLoad(pkload::PkinitLoadArgs),
    /// Fetch a dev-realm device's IMS credentials from the certificate-
    /// bootstrapping endpoint over mutual TLS and check the profile.
    Bootstrap(bootstrap::BootstrapArgs),
    /// Full mutual-TLS handshakes + profile fetches (a new connection each)
    /// against the certificate-bootstrapping endpoint, with the server's CPU.
    BootstrapLoad(bootload::BootstrapLoadArgs),
    /// An open-loop reboot storm: PKINIT exchanges arriving at a fixed rate
    /// from distinct loopback addresses, retried on the devices' timers;
    /// reports goodput, latency, retries and the KDC's CPU and memory.
    Storm(storm::StormArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::TgsLoad(args) => load::run(&args),
        Command::Provision(args) => provision::run(&args),
        Command::PkinitLoad(args) => pkload::run(&args),
        Command::Bootstrap(args) => bootstrap::run(&args),
        Command::BootstrapLoad(args) => bootload::run(&args),
        Command::Storm(args) => storm::run(&args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("eue-sim: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
