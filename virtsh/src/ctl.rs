//! The control state of one virtsh run (virsh's `vshControl`): global
//! settings, the current connection, the output streams, and the loop that
//! runs parsed commands.

use std::fmt;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use proto::domain::v1::domain_service_client::DomainServiceClient;
use proto::network::v1::network_service_client::NetworkServiceClient;
use proto::storage::v1::storage_service_client::StorageServiceClient;
use tracing::Instrument;

use crate::cli::{CommandTable, Invocation, parse_command};
use crate::connection::{ChannelOptions, ConnectError, Connection, VirtChannel};
use crate::error::Error;
use crate::shell::split_commands;
use crate::uri::{ConnectUri, default_uri};

/// The global options (`-r`, `-q`, `-t`, ...).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// `-r`: use the read-only sockets.
    pub readonly: bool,
    /// `-q`: no banner, no blank line after each command.
    pub quiet: bool,
    /// `-t`: print the time each command took.
    pub timing: bool,
    /// `-d N`: debug level (accepted, not used yet).
    pub debug: Option<u8>,
    /// `-e`: the console escape sequence.
    pub escape: String,
    /// `-k`/`-K`: keepalive settings.
    pub channel: ChannelOptions,
    /// `-l FILE`: log file (accepted, not used yet).
    pub log_file: Option<PathBuf>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            readonly: false,
            quiet: false,
            timing: false,
            debug: None,
            escape: "^]".to_owned(),
            channel: ChannelOptions::default(),
            log_file: None,
        }
    }
}

/// Everything a command handler may use.
pub struct Ctl {
    table: &'static CommandTable,
    /// The global options.
    pub settings: Settings,
    connect_name: Option<String>,
    conn: Option<Connection>,
    interactive: bool,
    quit: bool,
    out: Box<dyn Write>,
    err: Box<dyn Write>,
}

impl fmt::Debug for Ctl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ctl")
            .field("settings", &self.settings)
            .field("connect_name", &self.connect_name)
            .field("conn", &self.conn)
            .field("interactive", &self.interactive)
            .finish_non_exhaustive()
    }
}

impl Ctl {
    /// A control writing to stdout and stderr. `connect_name` is the URI
    /// given with `-c` (`None`: the default URI).
    pub fn new(
        table: &'static CommandTable,
        settings: Settings,
        connect_name: Option<String>,
    ) -> Ctl {
        Ctl {
            table,
            settings,
            connect_name: connect_name.filter(|n| !n.is_empty()),
            conn: None,
            interactive: false,
            quit: false,
            out: Box::new(std::io::stdout()),
            err: Box::new(std::io::stderr()),
        }
    }

    /// Replaces the output streams (for tests and embedding).
    pub fn with_output(mut self, out: Box<dyn Write>, err: Box<dyn Write>) -> Ctl {
        self.out = out;
        self.err = err;
        self
    }

    /// The command table.
    pub fn table(&self) -> &'static CommandTable {
        self.table
    }

    /// Where command output goes.
    pub fn out(&mut self) -> &mut dyn Write {
        &mut *self.out
    }

    /// Prints an error as `error: <line>` lines on the error stream.
    pub fn report(&mut self, e: &Error) {
        for line in e.lines() {
            let _ = writeln!(self.err, "error: {line}");
        }
        let _ = self.err.flush();
    }

    /// Whether the interactive shell is running.
    pub fn is_interactive(&self) -> bool {
        self.interactive
    }

    /// Marks the run as interactive (or not).
    pub fn set_interactive(&mut self, interactive: bool) {
        self.interactive = interactive;
    }

    /// Asks the shell (or the command list) to stop after this command.
    pub fn request_quit(&mut self) {
        self.quit = true;
    }

    /// Whether `quit` or `exit` ran.
    pub fn quit_requested(&self) -> bool {
        self.quit
    }

    /// The shell prompt: `virtsh > ` when read-only, else `virtsh # ` for
    /// root and `virtsh $ ` for other users.
    pub fn prompt(&self) -> &'static str {
        if self.settings.readonly {
            "virtsh > "
        } else if nix::unistd::geteuid().is_root() {
            "virtsh # "
        } else {
            "virtsh $ "
        }
    }

    /// The URI in use: the one given (`-c`, `connect`) or the default one.
    pub fn uri_string(&self) -> String {
        match &self.connect_name {
            Some(n) => n.clone(),
            None => default_uri().0,
        }
    }

    /// The current connection, created (without dialing) from the URI the
    /// first time.
    ///
    /// # Errors
    /// `failed to connect to the hypervisor` with the URI's problem.
    pub fn connection(&mut self) -> Result<&mut Connection, Error> {
        if self.conn.is_none() {
            let uri = ConnectUri::parse(&self.uri_string()).map_err(ConnectError::from)?;
            self.conn = Some(Connection::new(
                uri,
                self.settings.readonly,
                self.settings.channel,
            ));
        }
        match self.conn.as_mut() {
            Some(c) => Ok(c),
            None => Err(Error::msg("no valid connection")),
        }
    }

    /// Drops the current connection and opens `name` (the default URI when
    /// `None`), as virsh's `connect`.
    ///
    /// # Errors
    /// As [`Ctl::connection`].
    pub fn reconnect(&mut self, name: Option<String>, readonly: bool) -> Result<(), Error> {
        self.conn = None;
        self.connect_name = name.filter(|n| !n.is_empty());
        self.settings.readonly = readonly;
        self.connection().map(|_| ())
    }

    /// A virtqemud `DomainService` client (domains and the host).
    ///
    /// # Errors
    /// `failed to connect to the hypervisor` and the reason.
    pub async fn domain(&mut self) -> Result<DomainServiceClient<VirtChannel>, Error> {
        Ok(self.connection()?.domain().await?)
    }

    /// A virtstoraged `StorageService` client.
    ///
    /// # Errors
    /// `failed to connect to the hypervisor` and the reason.
    pub async fn storage(&mut self) -> Result<StorageServiceClient<VirtChannel>, Error> {
        Ok(self.connection()?.storage().await?)
    }

    /// A virtnetworkd `NetworkService` client.
    ///
    /// # Errors
    /// `failed to connect to the hypervisor` and the reason.
    pub async fn network(&mut self) -> Result<NetworkServiceClient<VirtChannel>, Error> {
        Ok(self.connection()?.network().await?)
    }

    /// Splits a command line (`;`-separated, quoted as in virsh) and parses
    /// every command in it; nothing runs if any part is wrong.
    ///
    /// # Errors
    /// The first quoting or parse error.
    pub fn parse_line(&self, line: &str) -> Result<Vec<Invocation>, Error> {
        split_commands(line)?
            .iter()
            .map(|words| parse_command(self.table, words))
            .collect()
    }

    /// Runs commands in order, as virsh's `vshCommandRun`: each failure is
    /// reported and the next command still runs; `quit`/`exit` stops the
    /// list. After each command a blank line is printed (unless `-q`), or
    /// the time it took with `-t`. Returns whether the last command
    /// succeeded.
    pub async fn run(&mut self, cmds: &[Invocation]) -> bool {
        let mut ok = true;
        for inv in cmds {
            let start = Instant::now();
            let result = if inv.def.no_connect {
                Ok(())
            } else {
                self.connection().map(|_| ())
            };
            let span =
                tracing::info_span!("virtsh", otel.name = inv.def.name, command = inv.def.name);
            let result = match result {
                Ok(()) => (inv.def.handler)(self, inv).instrument(span).await,
                Err(e) => Err(e),
            };
            let elapsed = start.elapsed();
            let _ = self.out.flush();
            ok = result.is_ok();
            if let Err(e) = &result {
                self.report(e);
                if e.is_disconnect()
                    && let Some(conn) = self.conn.as_mut()
                {
                    // Dial again next time, reporting the socket's state.
                    conn.reset();
                }
            }
            if self.quit {
                return ok;
            }
            let trailer = if self.settings.timing {
                format!("\n(Time: {:.3} ms)\n\n", elapsed.as_secs_f64() * 1000.0)
            } else if self.settings.quiet {
                String::new()
            } else {
                "\n".to_owned()
            };
            let _ = self.out.write_all(trailer.as_bytes());
            let _ = self.out.flush();
        }
        ok
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;

    use super::*;

    #[derive(Clone, Default)]
    struct Buf(Rc<RefCell<Vec<u8>>>);

    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.borrow_mut().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Buf {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.borrow()).into_owned()
        }
    }

    fn ctl(settings: Settings, uri: Option<&str>) -> (Ctl, Buf, Buf) {
        let (out, err) = (Buf::default(), Buf::default());
        let c = Ctl::new(&crate::commands::TABLE, settings, uri.map(str::to_owned))
            .with_output(Box::new(out.clone()), Box::new(err.clone()));
        (c, out, err)
    }

    async fn run_line(c: &mut Ctl, line: &str) -> bool {
        match c.parse_line(line) {
            Ok(cmds) => c.run(&cmds).await,
            Err(e) => panic!("{line}: {e}"),
        }
    }

    #[tokio::test]
    async fn each_command_is_followed_by_a_blank_line() {
        let (mut c, out, err) = ctl(Settings::default(), None);
        assert!(run_line(&mut c, "echo a; help nosuch; echo b").await);
        assert_eq!(out.text(), "a\n\n\nb\n\n");
        assert_eq!(
            err.text(),
            "error: command or command group 'nosuch' doesn't exist\n"
        );
        assert!(!run_line(&mut c, "echo a; help nosuch").await);
    }

    #[tokio::test]
    async fn quiet_timing_and_quit() {
        let quiet = Settings {
            quiet: true,
            ..Settings::default()
        };
        let (mut c, out, _) = ctl(quiet, None);
        assert!(run_line(&mut c, "echo a; quit; echo b").await);
        assert_eq!(out.text(), "a\n");
        assert!(c.quit_requested());

        let timing = Settings {
            timing: true,
            ..Settings::default()
        };
        let (mut c, out, _) = ctl(timing, None);
        assert!(run_line(&mut c, "echo a").await);
        let text = out.text();
        assert!(
            text.starts_with("a\n\n(Time: ") && text.ends_with(" ms)\n\n"),
            "{text:?}"
        );
    }

    #[tokio::test]
    async fn uri_and_connect_need_no_daemon() {
        let (mut c, out, err) = ctl(
            Settings::default(),
            Some("qemu+unix:///system?socket=/nonexistent/s"),
        );
        assert!(run_line(&mut c, "uri").await);
        assert_eq!(out.text(), "qemu+unix:///system?socket=/nonexistent/s\n\n");
        assert!(!run_line(&mut c, "connect xen:///system").await);
        assert!(!run_line(&mut c, "hostname").await);
        assert!(run_line(&mut c, "connect qemu+tcp://h/session --readonly; uri").await);
        assert!(c.settings.readonly);
        assert_eq!(c.prompt(), "virtsh > ");
        assert_eq!(
            err.text(),
            "error: failed to connect to the hypervisor\n\
             error: no connection driver available for xen:///system\n\
             error: failed to connect to the hypervisor\n\
             error: no connection driver available for xen:///system\n"
        );
        assert!(out.text().ends_with("qemu+tcp://h/session\n\n"));
    }

    #[tokio::test]
    async fn missing_daemon_is_reported() {
        let (mut c, _, err) = ctl(
            Settings::default(),
            Some("qemu:///system?socket=/nonexistent/virtqemud-sock"),
        );
        assert!(!run_line(&mut c, "version").await);
        assert_eq!(
            err.text(),
            "error: failed to connect to the hypervisor\n\
             error: Failed to connect socket to '/nonexistent/virtqemud-sock': No such file or directory\n"
        );
    }
}
