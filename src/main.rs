use clap::Parser;
use ox_connector::cli::{Cli, Command};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let shutdown = CancellationToken::new();
    match cli.command {
        Command::OxEmulator(args) => ox_connector::emulator::run(args, shutdown).await?,
    }
    Ok(())
}
