//! The command line: subcommands and their flags. Parsing only; `main` dispatches.

use clap::{Parser, Subcommand};

/// Provisions Open-Xchange App Suite from a UCS directory.
#[derive(Debug, Parser)]
#[command(name = "ox-connector", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the stateful OX App Suite SOAP emulator (for tests, benchmarks and the demo).
    OxEmulator(crate::emulator::EmulatorArgs),
}
