//! "Virsh itself" commands: `help`, `quit`, `exit`, `echo`, `pwd`, `cd`,
//! `connect`. None of them needs a connection.

use crate::cli::{
    CommandDef, Group, HandlerFuture, Invocation, OptDef, all_help, command_help, group_help,
};
use crate::ctl::Ctl;
use crate::error::Error;

/// The commands of this module.
pub const COMMANDS: &[CommandDef] = &[
    CommandDef::new(
        "help",
        Group::Virsh,
        "print help",
        "Prints global help, command specific help, or help for a\ngroup of related commands",
        cmd_help,
    )
    .opts(&[OptDef::string(
        "command",
        "Prints global help, command specific help, or help for a group of related commands",
    )
    .positional()])
    .no_connect(),
    CommandDef::new(
        "quit",
        Group::Virsh,
        "quit this interactive terminal",
        "",
        cmd_quit,
    )
    .no_connect(),
    CommandDef::new(
        "exit",
        Group::Virsh,
        "quit this interactive terminal",
        "",
        cmd_quit,
    )
    .no_connect(),
    CommandDef::new(
        "echo",
        Group::Virsh,
        "echo arguments. Used for internal testing.",
        "Echo back arguments, possibly with quoting. Used for internal testing.",
        cmd_echo,
    )
    .opts(&[
        OptDef::flag("shell", "escape for shell use"),
        OptDef::flag("xml", "escape for XML use"),
        OptDef::flag(
            "split",
            "split each argument on ','; ',,' is an escape sequence",
        ),
        OptDef::flag("err", "output to stderr"),
        OptDef::argv("string", "arguments to echo")
            .positional()
            .aliases(&["str"]),
    ])
    .no_connect(),
    CommandDef::new(
        "pwd",
        Group::Virsh,
        "print the current directory",
        "Print the current directory.",
        cmd_pwd,
    )
    .no_connect(),
    CommandDef::new(
        "cd",
        Group::Virsh,
        "change the current directory",
        "Change the current directory.",
        cmd_cd,
    )
    .opts(&[
        OptDef::string("dir", "directory to switch to (default: home or else root)").positional(),
    ])
    .no_connect(),
    CommandDef::new(
        "connect",
        Group::Virsh,
        "(re)connect to hypervisor",
        "Connect to local hypervisor. This is built-in command after shell start up.",
        cmd_connect,
    )
    .opts(&[
        OptDef::string("name", "hypervisor connection URI").positional(),
        OptDef::flag("readonly", "read-only connection"),
    ])
    .no_connect(),
];

/// `help [COMMAND|GROUP]`.
fn cmd_help<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(async move {
        let table = ctl.table();
        let text = match inv.string("command") {
            None => all_help(table),
            Some(name) => {
                if let Some(def) = table.lookup(name) {
                    command_help(def)
                } else if let Some(group) = Group::find(name) {
                    group_help(table, group)
                } else {
                    return Err(Error::msg(format!(
                        "command or command group '{name}' doesn't exist"
                    )));
                }
            }
        };
        ctl.out().write_all(text.as_bytes())?;
        Ok(())
    })
}

/// `quit` and `exit`.
fn cmd_quit<'a>(ctl: &'a mut Ctl, _inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(async move {
        ctl.request_quit();
        Ok(())
    })
}

/// `echo [--shell] [--xml] [--split] [--err] [STRING]...`.
fn cmd_echo<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(async move {
        let line = echo_line(
            inv.argv("string"),
            inv.flag("shell"),
            inv.flag("xml"),
            inv.flag("split"),
        );
        if inv.flag("err") {
            ctl.report(&Error::msg(line));
        } else {
            writeln!(ctl.out(), "{line}")?;
        }
        Ok(())
    })
}

/// The text `echo` prints for `args`.
pub fn echo_line(args: &[String], shell: bool, xml: bool, split: bool) -> String {
    let pieces: Vec<String> = if split {
        args.iter().flat_map(|a| split_commas(a)).collect()
    } else {
        args.to_vec()
    };
    pieces
        .iter()
        .map(|p| {
            let s = if xml { xml_escape(p) } else { p.clone() };
            if shell { shell_escape(&s) } else { s }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Splits on `,`, with `,,` standing for a literal comma.
fn split_commas(s: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ',' {
            if chars.peek() == Some(&',') {
                chars.next();
                if let Some(last) = out.last_mut() {
                    last.push(',');
                }
            } else {
                out.push(String::new());
            }
        } else if let Some(last) = out.last_mut() {
            last.push(c);
        }
    }
    out
}

/// Escapes `<>&'"` for XML.
fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

/// Quotes for a POSIX shell when needed (libvirt's `virBufferEscapeShell`).
fn shell_escape(s: &str) -> String {
    const SPECIAL: &str = "\r\t\n !\"#$&'()*;<>?[\\]^`{|}~";
    if !s.is_empty() && !s.contains(|c| SPECIAL.contains(c)) {
        return s.to_owned();
    }
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// `pwd`.
fn cmd_pwd<'a>(ctl: &'a mut Ctl, _inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(async move {
        let cwd = std::env::current_dir()
            .map_err(|e| Error::msg(format!("pwd: cannot get current directory: {e}")))?;
        writeln!(ctl.out(), "{}", cwd.display())?;
        Ok(())
    })
}

/// `cd [DIR]` (interactive mode only, as in virsh).
fn cmd_cd<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(async move {
        if !ctl.is_interactive() {
            return Err(Error::msg("cd: command valid only in interactive mode"));
        }
        let dir = match inv.string("dir") {
            Some(d) if !d.is_empty() => d.to_owned(),
            _ => std::env::var("HOME")
                .ok()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "/".to_owned()),
        };
        std::env::set_current_dir(&dir).map_err(|e| {
            let reason = std::io::Error::from_raw_os_error(e.raw_os_error().unwrap_or(0));
            let reason = reason.to_string();
            let reason = reason
                .split(" (os error")
                .next()
                .unwrap_or(&reason)
                .to_owned();
            Error::msg(format!("cd: {reason}: {dir}"))
        })?;
        Ok(())
    })
}

/// `connect [NAME] [--readonly]`.
fn cmd_connect<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(
        async move { ctl.reconnect(inv.string("name").map(str::to_owned), inv.flag("readonly")) },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn echo_plain_and_escaped() {
        assert_eq!(
            echo_line(&strings(&["a", "b c"]), false, false, false),
            "a b c"
        );
        assert_eq!(
            echo_line(&strings(&["a", "b c", "it's", ""]), true, false, false),
            "a 'b c' 'it'\\''s' ''"
        );
        assert_eq!(
            echo_line(&strings(&["<a href=\"x\">&"]), false, true, false),
            "&lt;a href=&quot;x&quot;&gt;&amp;"
        );
        assert_eq!(
            echo_line(&strings(&["a,b,,c"]), false, false, true),
            "a b,c"
        );
    }

    #[test]
    fn help_text_of_version() {
        let def = crate::commands::TABLE.lookup("version").expect("defined");
        assert_eq!(
            command_help(def),
            "  NAME\n    version - show version\n\n  SYNOPSIS\n    version [--daemon]\n\n  \
             DESCRIPTION\n    Display the system version information.\n\n  OPTIONS\n    \
             --daemon         report daemon version too\n\n"
        );
    }

    #[test]
    fn help_text_of_connect() {
        let def = crate::commands::TABLE.lookup("connect").expect("defined");
        let text = command_help(def);
        assert!(
            text.contains("    connect [[--name] <string>] [--readonly]\n"),
            "{text}"
        );
        assert!(
            text.contains("    [--name] <string>  hypervisor connection URI\n"),
            "{text}"
        );
    }
}
