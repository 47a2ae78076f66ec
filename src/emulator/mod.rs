//! The stateful OX App Suite SOAP emulator (issue 4 fills this in).

use clap::Args;
use tokio_util::sync::CancellationToken;

/// Flags of `ox-connector ox-emulator`.
#[derive(Debug, Args)]
pub struct EmulatorArgs {
    /// Address to listen on, e.g. 127.0.0.1:8080.
    #[arg(long)]
    pub listen: std::net::SocketAddr,
    /// Name of the OX master admin.
    #[arg(long)]
    pub master_admin: String,
    /// Password of the OX master admin.
    #[arg(long)]
    pub master_password: String,
}

/// Runs the emulator until `shutdown` is cancelled.
pub async fn run(_args: EmulatorArgs, _shutdown: CancellationToken) -> std::io::Result<()> {
    Err(std::io::Error::other(
        "the OX emulator is not implemented yet",
    ))
}
