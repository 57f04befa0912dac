//! libvirt's `virCommandToString` layout of a command line.

use super::QemuCommand;

const SPECIAL: &str = "\r\t\n !\"#$&'()*;<>?[\\]^`{|}~";

/// Quotes one word as libvirt's `virBufferEscapeShell` does.
pub fn shell_quote(s: &str) -> String {
    if s.is_empty() {
        return "''".to_owned();
    }
    if !s.chars().any(|c| SPECIAL.contains(c)) {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// Formats the environment, program and arguments: each variable on its
/// own line, then the program and its arguments, breaking the line before
/// every option and keeping an option's value on the option's line.
pub fn args_to_string(cmd: &QemuCommand) -> String {
    let mut s = String::new();
    for (k, v) in &cmd.env {
        s.push_str(k);
        s.push('=');
        s.push_str(&shell_quote(v));
        s.push_str(" \\\n");
    }
    s.push_str(&shell_quote(&cmd.program));
    let args = &cmd.args;
    let mut seen_option = false;
    for (i, a) in args.iter().enumerate() {
        let is_opt = a.starts_with('-');
        let brk = is_opt || !seen_option || {
            let prev_is_opt = i > 0 && args[i - 1].starts_with('-');
            let later_opt = args[i + 1..].iter().any(|x| x.starts_with('-'));
            !prev_is_opt && !later_opt
        };
        if is_opt {
            seen_option = true;
        }
        s.push_str(if brk { " \\\n" } else { " " });
        s.push_str(&shell_quote(a));
    }
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(env: &[(&str, &str)], args: &[&str]) -> QemuCommand {
        QemuCommand {
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            program: "/usr/bin/qemu".to_owned(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            fds: Vec::new(),
        }
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a,b=c"), "a,b=c");
        assert_eq!(shell_quote("{\"a\":1}"), "'{\"a\":1}'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote("[::]:1"), "'[::]:1'");
    }

    #[test]
    fn line_breaks() {
        let c = cmd(&[("A", "1")], &["-S", "-m", "5", "-f", "x", "y"]);
        assert_eq!(
            args_to_string(&c),
            "A=1 \\\n/usr/bin/qemu \\\n-S \\\n-m 5 \\\n-f x \\\ny\n"
        );
        // Non-options before any option go on their own lines.
        let c = cmd(&[], &["a", "b", "--t", "f"]);
        assert_eq!(args_to_string(&c), "/usr/bin/qemu \\\na \\\nb \\\n--t f\n");
    }
}
