//! virtsh: a virsh-compatible command line client of the virt daemons.
//!
//! A virsh user should feel at home: same command names, options, output
//! and exit codes, talking gRPC to virtqemud, virtstoraged and virtnetworkd
//! instead of libvirt's RPC.
//!
//! # Structure
//!
//! | module          | what                                                        |
//! |-----------------|-------------------------------------------------------------|
//! | [`globals`]     | global options (`-c`, `-r`, `-q`, `-t`, ...), `-h`/`-V` text  |
//! | [`uri`]         | connection URIs (`qemu:///system`, `qemu+tls://h/system`)   |
//! | [`connection`]  | lazily dialed channels per daemon; the transport seam       |
//! | [`cli`]         | the command table types and virsh's option parser, help     |
//! | [`ctl`]         | run state (settings, connection, output), the command loop  |
//! | [`shell`]       | line tokenizer (quotes, `;`) and the interactive shell      |
//! | [`commands`]    | the commands, one module per virsh group                    |
//! | [`table`]       | virsh's column tables (`list`)                              |
//! | [`error`]       | errors, `error: ...` lines, gRPC status → message mapping   |
//!
//! # Adding a command
//!
//! Add a [`cli::CommandDef`] to the `COMMANDS` table of the group's module
//! under [`commands`], with its [`cli::OptDef`]s and a handler
//! `fn(&mut Ctl, &Invocation) -> HandlerFuture`. Parsing, `help`, `--help`
//! and completion follow from the definition.

pub mod cli;
pub mod commands;
pub mod connection;
pub mod ctl;
pub mod error;
pub mod globals;
pub mod shell;
pub mod table;
pub mod uri;

use std::io::Write as _;

use crate::cli::parse_command;
use crate::ctl::Ctl;
use crate::error::Error;
use crate::globals::Action;

/// Runs virtsh with `args` (without the program name) and returns the
/// process exit code: 0 when the (last) command succeeded, 1 otherwise.
pub fn run(args: &[String]) -> u8 {
    let table = &commands::TABLE;
    let action = match globals::parse_args(args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    let (settings, connect, command, warnings) = match action {
        Action::Help => {
            print!("{}", globals::usage(table));
            return 0;
        }
        Action::ShortVersion => {
            println!("{}", env!("CARGO_PKG_VERSION"));
            return 0;
        }
        Action::LongVersion => {
            print!("{}", globals::long_version());
            return 0;
        }
        Action::Run {
            settings,
            connect,
            command,
            warnings,
        } => (settings, connect, command, warnings),
    };
    for w in warnings {
        eprintln!("error: {w}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return 1;
        }
    };
    let mut ctl = Ctl::new(table, settings, connect);
    let ok = if command.is_empty() {
        shell::interactive(&runtime, &mut ctl)
    } else {
        // One word is a command string (`virtsh 'list; uri'`), several are
        // one command's words, as virsh does it.
        let parsed: Result<Vec<_>, Error> = match command.as_slice() {
            [line] => ctl.parse_line(line),
            words => parse_command(table, words).map(|c| vec![c]),
        };
        match parsed {
            Ok(cmds) => runtime.block_on(ctl.run(&cmds)),
            Err(e) => {
                ctl.report(&e);
                false
            }
        }
    };
    let _ = std::io::stdout().flush();
    u8::from(!ok)
}
