//! The `virtsh` program; everything is in the library.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let tracing = common::trace::init_client("virtsh");
    let code = virtsh::run(&args);
    drop(tracing); // flush spans before exit
    ExitCode::from(code)
}
