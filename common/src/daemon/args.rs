//! Command-line flags, as libvirt's daemons take them.

use std::path::PathBuf;

use clap::Parser;

/// `virtqemud [OPTIONS]` and its siblings.
#[derive(Clone, Debug, Parser)]
#[command(disable_version_flag = true)]
pub struct Args {
    /// Configuration file (default: <config_dir>/<daemon>.conf).
    #[arg(short = 'f', long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Exit after SECS seconds with no client connected and nothing active.
    #[arg(short = 't', long = "timeout", value_name = "SECS")]
    pub timeout: Option<u64>,
    /// Verbose logging (debug level unless RUST_LOG or log_filters say otherwise).
    #[arg(short = 'v', long = "verbose")]
    pub verbose: bool,
    /// Run in the background (detach from the terminal).
    #[arg(short = 'd', long = "daemon")]
    pub daemon: bool,
    /// Pid file (default: <run>/<daemon>.pid).
    #[arg(short = 'p', long = "pid-file", value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// Listen on TCP/TLS as the config's listen_tls / listen_tcp say
    /// (virtproxyd only; socket-activated listeners need no flag).
    #[arg(short = 'l', long = "listen")]
    pub listen: bool,
    /// Print the version and exit.
    #[arg(short = 'V', long = "version")]
    pub version: bool,
}
