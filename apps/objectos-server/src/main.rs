//! The `objectos` binary: installs the TLS crypto provider, parses the command line, runs it.

use std::process::ExitCode;

use clap::Parser;
use objectos_server::cli::Cli;

fn main() -> ExitCode {
    // Exactly one rustls provider (ring) is compiled in; crates that use the process default need it installed first.
    if rustls::crypto::ring::default_provider()
        .install_default()
        .is_err()
    {
        eprintln!("objectos: a TLS crypto provider was already installed; continuing with it");
    }
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("objectos: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(objectos_server::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("objectos: {e:#}");
            ExitCode::FAILURE
        }
    }
}
