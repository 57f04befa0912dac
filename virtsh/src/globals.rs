//! virsh's global options (`virtsh [OPTIONS] [COMMAND [ARGS]]`), parsed
//! like getopt_long with "+" (options stop at the first other word), and
//! the `--help` / `--version` texts.

use std::fmt::Write as _;
use std::path::PathBuf;

use crate::cli::{CommandTable, Group};
use crate::ctl::Settings;
use crate::error::Error;

/// What the command line asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Run commands (or the shell when `command` is empty).
    Run {
        /// The global options.
        settings: Settings,
        /// `-c URI`.
        connect: Option<String>,
        /// The words after the options.
        command: Vec<String>,
        /// Complaints that do not stop virtsh (printed as errors).
        warnings: Vec<String>,
    },
    /// `-h`: print [`usage`].
    Help,
    /// `-v`, `--version[=short]`: print the version.
    ShortVersion,
    /// `-V`, `--version=long`: print [`long_version`].
    LongVersion,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum HasArg {
    No,
    Required,
    Optional,
}

/// (long name, short letter, argument).
const LONG_OPTIONS: &[(&str, char, HasArg)] = &[
    ("connect", 'c', HasArg::Required),
    ("debug", 'd', HasArg::Required),
    ("escape", 'e', HasArg::Required),
    ("help", 'h', HasArg::No),
    ("keepalive-interval", 'k', HasArg::Required),
    ("keepalive-count", 'K', HasArg::Required),
    ("log", 'l', HasArg::Required),
    ("quiet", 'q', HasArg::No),
    ("readonly", 'r', HasArg::No),
    ("timing", 't', HasArg::No),
    ("version", 'v', HasArg::Optional),
];

/// Short letters and whether they take an argument (`-v` takes none).
const SHORT_OPTIONS: &[(char, bool)] = &[
    ('c', true),
    ('d', true),
    ('e', true),
    ('h', false),
    ('k', true),
    ('K', true),
    ('l', true),
    ('q', false),
    ('r', false),
    ('t', false),
    ('v', false),
    ('V', false),
];

fn long_name(short: char) -> Option<&'static str> {
    LONG_OPTIONS
        .iter()
        .find(|(_, s, _)| *s == short)
        .map(|(n, _, _)| *n)
}

fn missing_argument(short: char) -> Error {
    match long_name(short) {
        Some(long) => Error::msg(format!("option '-{short}'/'--{long}' requires an argument")),
        None => Error::msg(format!("option '-{short}' requires an argument")),
    }
}

/// Finds a long option by exact name or unique prefix.
fn find_long(name: &str) -> Option<(&'static str, char, HasArg)> {
    if let Some(o) = LONG_OPTIONS.iter().find(|(n, _, _)| *n == name) {
        return Some(*o);
    }
    let mut matches = LONG_OPTIONS.iter().filter(|(n, _, _)| n.starts_with(name));
    match (matches.next(), matches.next()) {
        (Some(o), None) if !name.is_empty() => Some(*o),
        _ => None,
    }
}

/// Parses the arguments after the program name.
///
/// # Errors
/// virsh's messages for unknown options, missing arguments and bad values.
pub fn parse_args(args: &[String]) -> Result<Action, Error> {
    let mut settings = Settings::default();
    let mut connect = None;
    let mut warnings = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if arg == "--" {
            break;
        }
        // (short letter, option as typed for messages, value)
        let mut found: Vec<(char, String, Option<String>)> = Vec::new();
        if let Some(body) = arg.strip_prefix("--") {
            let (name, inline) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v.to_owned())),
                None => (body, None),
            };
            let unsupported = || Error::msg(format!("unsupported option '{arg}'. See --help."));
            let (long, short, has_arg) = find_long(name).ok_or_else(unsupported)?;
            let value = match has_arg {
                HasArg::No if inline.is_some() => return Err(unsupported()),
                HasArg::No => None,
                HasArg::Optional => inline,
                HasArg::Required => match inline {
                    Some(v) => Some(v),
                    None => {
                        let v = args
                            .get(i)
                            .cloned()
                            .ok_or_else(|| missing_argument(short))?;
                        i += 1;
                        Some(v)
                    }
                },
            };
            found.push((short, format!("--{long}"), value));
        } else if arg.len() > 1 && arg.starts_with('-') {
            for (pos, c) in arg[1..].char_indices() {
                let Some((_, takes)) = SHORT_OPTIONS.iter().find(|(s, _)| *s == c) else {
                    return Err(Error::msg(format!(
                        "unsupported option '-{c}'. See --help."
                    )));
                };
                if !takes {
                    found.push((c, format!("-{c}"), None));
                    continue;
                }
                let tail = &arg[1 + pos + c.len_utf8()..];
                let value = if tail.is_empty() {
                    let v = args.get(i).cloned().ok_or_else(|| missing_argument(c))?;
                    i += 1;
                    v
                } else {
                    tail.to_owned()
                };
                found.push((c, format!("-{c}"), Some(value)));
                break;
            }
        } else {
            i -= 1;
            break;
        }
        for (short, typed, value) in found {
            let value = value.unwrap_or_default();
            match short {
                'c' => connect = Some(value),
                'd' => {
                    let level: i64 = value.parse().map_err(|_| {
                        Error::msg(format!("option {typed} takes a numeric argument"))
                    })?;
                    match u8::try_from(level) {
                        Ok(l) if l <= 4 => settings.debug = Some(l),
                        _ => warnings
                            .push(format!("ignoring debug level {level} out of range [0-4]")),
                    }
                }
                'e' => {
                    if !valid_escape(&value) {
                        return Err(Error::msg(format!(
                            "Invalid string '{value}' for escape sequence"
                        )));
                    }
                    settings.escape = value;
                }
                'h' => return Ok(Action::Help),
                'k' | 'K' => {
                    let n: i64 = value
                        .parse()
                        .map_err(|_| Error::msg(format!("Invalid value for option {typed}")))?;
                    let n = u32::try_from(n).map_err(|_| {
                        Error::msg(format!(
                            "option {typed} requires a positive integer argument"
                        ))
                    })?;
                    if short == 'k' {
                        settings.channel.keepalive_interval = Some(n);
                    } else {
                        settings.channel.keepalive_count = Some(n);
                    }
                }
                'l' => settings.log_file = Some(PathBuf::from(value)),
                'q' => settings.quiet = true,
                'r' => settings.readonly = true,
                't' => settings.timing = true,
                'v' if value == "long" => return Ok(Action::LongVersion),
                'v' => return Ok(Action::ShortVersion),
                'V' => return Ok(Action::LongVersion),
                _ => {
                    return Err(Error::msg(format!(
                        "unsupported option '{typed}'. See --help."
                    )));
                }
            }
        }
    }
    Ok(Action::Run {
        settings,
        connect,
        command: args[i..].to_vec(),
        warnings,
    })
}

/// A console escape: one character other than `^`, or `^` and a letter
/// or one of `@[\]^_`.
fn valid_escape(s: &str) -> bool {
    let chars: Vec<char> = s.chars().collect();
    match chars.as_slice() {
        [c] => *c != '^',
        ['^', c] => c.is_ascii_lowercase() || ('@'..='_').contains(c),
        _ => false,
    }
}

/// The `-h` text.
pub fn usage(table: &CommandTable) -> String {
    let mut s = String::from(
        "\n\
         virtsh [options]... [<command_string>]\n\
         virtsh [options]... <command> [args...]\n\n  \
         options:\n    \
         -c | --connect=URI      hypervisor connection URI\n    \
         -d | --debug=NUM        debug level [0-4]\n    \
         -e | --escape <char>    set escape sequence for console\n    \
         -h | --help             this help\n    \
         -k | --keepalive-interval=NUM\n                            \
         keepalive interval in seconds, 0 for disable\n    \
         -K | --keepalive-count=NUM\n                            \
         number of possible missed keepalive messages\n    \
         -l | --log=FILE         output logging to file\n    \
         -q | --quiet            quiet mode\n    \
         -r | --readonly         connect readonly\n    \
         -t | --timing           print timing information\n    \
         -v                      short version\n    \
         -V                      long version\n         \
         --version[=TYPE]   version, TYPE is short or long (default short)\n  \
         commands (non interactive mode):\n\n",
    );
    for group in Group::ALL {
        let cmds = table.group(group);
        if cmds.is_empty() {
            continue;
        }
        let _ = writeln!(s, " {} (help keyword '{}')", group.title(), group.keyword());
        for def in cmds {
            let _ = writeln!(s, "    {:<30} {}", def.name, def.help);
        }
        s.push('\n');
    }
    s.push_str("\n  (specify help <group> for details about the commands in the group)\n");
    s.push_str("\n  (specify help <command> for details about the command)\n\n");
    s
}

/// The `-V` text.
pub fn long_version() -> String {
    format!(
        "Virtsh command line tool of virt {}\n\n\
         Compiled with support for:\n \
         Hypervisors: QEMU/KVM\n \
         Networking: Remote Network\n \
         Storage: Remote\n \
         Miscellaneous: Daemon Readline\n",
        env!("CARGO_PKG_VERSION")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Action, String> {
        let v: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
        parse_args(&v).map_err(|e| e.to_string())
    }

    fn run(args: &[&str]) -> (Settings, Option<String>, Vec<String>) {
        match parse(args) {
            Ok(Action::Run {
                settings,
                connect,
                command,
                ..
            }) => (settings, connect, command),
            other => panic!("{args:?}: {other:?}"),
        }
    }

    #[test]
    fn options_then_command() {
        let (s, c, cmd) = run(&["-c", "qemu:///session", "-rq", "list", "--all", "-r"]);
        assert!(s.readonly && s.quiet && !s.timing);
        assert_eq!(c.as_deref(), Some("qemu:///session"));
        assert_eq!(cmd, ["list", "--all", "-r"]);
        let (_, c, cmd) = run(&["--connect=qemu:///system", "--", "-x"]);
        assert_eq!(c.as_deref(), Some("qemu:///system"));
        assert_eq!(cmd, ["-x"]);
        let (s, c, cmd) = run(&[
            "-cqemu:///system",
            "--read",
            "-t",
            "-k",
            "5",
            "-K3",
            "-e",
            "^a",
        ]);
        assert_eq!(c.as_deref(), Some("qemu:///system"));
        assert!(s.readonly && s.timing);
        assert_eq!(s.channel.keepalive_interval, Some(5));
        assert_eq!(s.channel.keepalive_count, Some(3));
        assert_eq!(s.escape, "^a");
        assert!(cmd.is_empty());
    }

    #[test]
    fn versions_and_help() {
        assert_eq!(parse(&["-v"]), Ok(Action::ShortVersion));
        assert_eq!(parse(&["--version"]), Ok(Action::ShortVersion));
        assert_eq!(parse(&["--version=short"]), Ok(Action::ShortVersion));
        assert_eq!(parse(&["--version=long"]), Ok(Action::LongVersion));
        assert_eq!(parse(&["-V"]), Ok(Action::LongVersion));
        assert_eq!(parse(&["-h", "-Z"]), Ok(Action::Help));
        assert_eq!(parse(&["--help"]), Ok(Action::Help));
    }

    #[test]
    fn errors() {
        assert_eq!(
            parse(&["-Z"]).err().as_deref(),
            Some("unsupported option '-Z'. See --help.")
        );
        assert_eq!(
            parse(&["--bogus"]).err().as_deref(),
            Some("unsupported option '--bogus'. See --help.")
        );
        assert_eq!(
            parse(&["-c"]).err().as_deref(),
            Some("option '-c'/'--connect' requires an argument")
        );
        assert_eq!(
            parse(&["-d", "x"]).err().as_deref(),
            Some("option -d takes a numeric argument")
        );
        assert_eq!(
            parse(&["-k", "-1"]).err().as_deref(),
            Some("option -k requires a positive integer argument")
        );
        assert_eq!(
            parse(&["-e", "^^^"]).err().as_deref(),
            Some("Invalid string '^^^' for escape sequence")
        );
        // `--ke` is ambiguous between the two keepalive options.
        assert!(parse(&["--ke", "1"]).is_err());
    }

    #[test]
    fn usage_lists_commands() {
        let u = usage(&crate::commands::TABLE);
        assert!(
            u.contains(" Host and Hypervisor (help keyword 'host')\n"),
            "{u}"
        );
        assert!(
            u.contains(&format!("    {:<30} show version\n", "version")),
            "{u}"
        );
    }
}
