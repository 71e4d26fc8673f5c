//! `eue-sim`: plays PacketCable devices and clients against pktc-kdc.

mod load;

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
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::TgsLoad(args) => load::run(&args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("eue-sim: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
