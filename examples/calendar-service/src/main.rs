//! `cargo run -p calendar-service [-- --port N --cache URL --strategy NAME --db FILE]`:
//! serves the calendar page and its API on 127.0.0.1 (see `--help`).

use std::io::IsTerminal;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use calendar_service::{serve, App, Config};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        // Colours only on a terminal: logs sent to a file stay plain text.
        .with_ansi(std::io::stdout().is_terminal())
        .init();
    let config = Config::parse();
    match run(&config).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(config: &Config) -> Result<(), Box<dyn std::error::Error>> {
    let app = App::start(config).await?;
    let listener = tokio::net::TcpListener::bind(config.addr()).await?;
    tracing::info!(
        cache = %app.backend_label,
        strategy = %app.cache.strategy().name(),
        "serving the calendar on http://{}/?date=2025-10-01",
        listener.local_addr()?
    );
    serve(listener, app).await?;
    Ok(())
}
