//! The interactive shell and virsh's command-line tokenizer.
//!
//! [`split_commands`] turns a line into commands and words exactly as
//! virsh does: blanks separate words; `;` and newlines separate commands;
//! `'...'` quotes literally; `"..."` quotes with `\` escapes; `\` escapes
//! outside quotes; a word starting with `#` starts a comment.
//!
//! [`interactive`] runs the read-eval loop with rustyline: history in
//! `$XDG_CACHE_HOME/virtsh/history` (`~/.cache/virtsh/history`), tab
//! completion of command names and of the current command's options.

use std::borrow::Cow;
use std::path::PathBuf;

use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{CompletionType, Config, Context, Editor, Helper};

use crate::cli::CommandTable;
use crate::ctl::Ctl;
use crate::error::Error;

/// Splits a command line into commands, each a list of words.
///
/// # Errors
/// `dangling \` (a backslash at the end) and `missing "` (an open double
/// quote), as virsh reports them.
pub fn split_commands(line: &str) -> Result<Vec<Vec<String>>, Error> {
    let mut commands = Vec::new();
    let mut words: Vec<String> = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        // Skip blanks and backslash-newline between words.
        while let Some(&c) = chars.peek() {
            if c == ' ' || c == '\t' {
                chars.next();
            } else if c == '\\' {
                let mut ahead = chars.clone();
                ahead.next();
                if ahead.peek() == Some(&'\n') {
                    chars.next();
                    chars.next();
                } else {
                    break;
                }
            } else {
                break;
            }
        }
        match chars.peek() {
            None => break,
            Some(';' | '\n') => {
                chars.next();
                if !words.is_empty() {
                    commands.push(std::mem::take(&mut words));
                }
                continue;
            }
            Some('#') => {
                // A comment up to the end of the line.
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
                if !words.is_empty() {
                    commands.push(std::mem::take(&mut words));
                }
                continue;
            }
            Some(_) => {}
        }
        let mut word = String::new();
        let mut single = false;
        let mut double = false;
        while let Some(&c) = chars.peek() {
            if !single && !double && matches!(c, ' ' | '\t' | ';' | '\n') {
                break;
            }
            chars.next();
            if !double && c == '\'' {
                single = !single;
                continue;
            }
            if !single && c == '"' {
                double = !double;
                continue;
            }
            if !single && c == '\\' {
                match chars.next() {
                    None => return Err(Error::msg("dangling \\")),
                    Some('\n') => continue,
                    Some(escaped) => {
                        word.push(escaped);
                        continue;
                    }
                }
            }
            word.push(c);
        }
        if double {
            return Err(Error::msg("missing \""));
        }
        words.push(word);
    }
    if !words.is_empty() {
        commands.push(words);
    }
    Ok(commands)
}

/// Where the shell keeps its history: `$XDG_CACHE_HOME/virtsh/history`,
/// else `~/.cache/virtsh/history`.
pub fn history_path() -> Option<PathBuf> {
    let cache = match std::env::var_os("XDG_CACHE_HOME") {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => PathBuf::from(std::env::var_os("HOME").filter(|h| !h.is_empty())?).join(".cache"),
    };
    Some(cache.join("virtsh").join("history"))
}

/// How many lines of history are kept.
const HISTORY_SIZE: usize = 500;

/// Runs the interactive shell until `quit`, `exit` or end of input.
/// Returns `true` (the shell itself never fails, as in virsh), or `false`
/// when the terminal could not be set up.
pub fn interactive(rt: &tokio::runtime::Runtime, ctl: &mut Ctl) -> bool {
    ctl.set_interactive(true);
    if !ctl.settings.quiet {
        let _ = write!(
            ctl.out(),
            "Welcome to virtsh, the virtualization interactive terminal.\n\n\
             Type:  'help' for help with commands\n       'quit' to quit\n\n"
        );
        let _ = ctl.out().flush();
    }
    let config = Config::builder()
        .max_history_size(HISTORY_SIZE)
        .and_then(|b| b.history_ignore_dups(true))
        .map(|b| {
            b.auto_add_history(false)
                .completion_type(CompletionType::List)
                .build()
        });
    let editor = config.and_then(Editor::<ShellHelper, DefaultHistory>::with_config);
    let mut editor = match editor {
        Ok(e) => e,
        Err(e) => {
            ctl.report(&Error::msg(format!("cannot start the shell: {e}")));
            return false;
        }
    };
    editor.set_helper(Some(ShellHelper { table: ctl.table() }));
    let history = history_path();
    if let Some(path) = &history {
        let _ = editor.load_history(path);
    }
    loop {
        match editor.readline(ctl.prompt()) {
            Ok(line) => {
                if line.trim().is_empty() {
                    continue;
                }
                let _ = editor.add_history_entry(line.as_str());
                match ctl.parse_line(&line) {
                    Ok(cmds) => {
                        rt.block_on(ctl.run(&cmds));
                    }
                    Err(e) => ctl.report(&e),
                }
                if ctl.quit_requested() {
                    break;
                }
            }
            Err(ReadlineError::Interrupted) => {}
            Err(ReadlineError::Eof) => {
                // A line break after the lone prompt, as virsh.
                let _ = writeln!(ctl.out());
                break;
            }
            Err(e) => {
                ctl.report(&Error::msg(e.to_string()));
                break;
            }
        }
    }
    if let Some(path) = &history {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = editor.save_history(path);
    }
    let _ = ctl.out().flush();
    true
}

/// rustyline helper: completes command names and option names.
#[derive(Debug)]
pub struct ShellHelper {
    table: &'static CommandTable,
}

impl ShellHelper {
    /// A helper completing from `table`.
    pub fn new(table: &'static CommandTable) -> ShellHelper {
        ShellHelper { table }
    }

    /// The candidates for the word ending at `pos`, and where it starts.
    pub fn candidates(&self, line: &str, pos: usize) -> (usize, Vec<String>) {
        let before = line.get(..pos).unwrap_or(line);
        let cmd_start = before.rfind([';', '\n']).map_or(0, |i| i + 1);
        let segment = &before[cmd_start..];
        let word_start = segment
            .rfind([' ', '\t'])
            .map_or(cmd_start, |i| cmd_start + i + 1);
        let word = &before[word_start..];
        let mut words = segment.split_whitespace();
        let first = words.next();
        let is_first = segment[..word_start - cmd_start].trim().is_empty();
        let mut out: Vec<String> = if is_first {
            self.table
                .iter()
                .filter(|c| !c.hidden && c.name.starts_with(word))
                .map(|c| c.name.to_owned())
                .collect()
        } else if let (Some(name), Some(prefix)) = (first, word.strip_prefix("--")) {
            let used: Vec<&str> = segment.split_whitespace().collect();
            match self.table.lookup(name) {
                Some(def) => def
                    .opts
                    .iter()
                    .filter(|o| o.name.starts_with(prefix))
                    .map(|o| format!("--{}", o.name))
                    .filter(|o| !used.contains(&o.as_str()) || o.as_str() == word)
                    .collect(),
                None => Vec::new(),
            }
        } else {
            Vec::new()
        };
        out.sort();
        out.dedup();
        (word_start, out)
    }
}

impl Completer for ShellHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let (start, names) = self.candidates(line, pos);
        let pairs = names
            .into_iter()
            .map(|n| Pair {
                replacement: format!("{n} "),
                display: n,
            })
            .collect();
        Ok((start, pairs))
    }
}

impl Hinter for ShellHelper {
    type Hint = String;
}

impl Highlighter for ShellHelper {
    fn highlight<'l>(&self, line: &'l str, _pos: usize) -> Cow<'l, str> {
        Cow::Borrowed(line)
    }
}

impl Validator for ShellHelper {}

impl Helper for ShellHelper {}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(line: &str) -> Vec<Vec<String>> {
        match split_commands(line) {
            Ok(c) => c,
            Err(e) => panic!("{line:?}: {e}"),
        }
    }

    fn words(line: &str) -> Vec<String> {
        let mut c = split(line);
        assert_eq!(c.len(), 1, "{line:?} gave {c:?}");
        c.remove(0)
    }

    #[test]
    fn blanks_separate_words() {
        assert_eq!(
            words("  list   --all\t--name "),
            ["list", "--all", "--name"]
        );
        assert!(split("   ").is_empty());
    }

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(words("echo 'a b' \"c d\""), ["echo", "a b", "c d"]);
        assert_eq!(
            words(r#"echo 'it''s' "say \"hi\"""#),
            ["echo", "its", "say \"hi\""]
        );
        assert_eq!(words(r"echo a\ b \'x"), ["echo", "a b", "'x"]);
        assert_eq!(
            words(r#"echo 'back\slash' "dq\\""#),
            ["echo", r"back\slash", r"dq\"]
        );
        assert_eq!(words("echo ''"), ["echo", ""]);
        assert_eq!(words("echo a'b c'd"), ["echo", "ab cd"]);
        assert_eq!(words("echo \"a;b\" 'c#d'"), ["echo", "a;b", "c#d"]);
    }

    #[test]
    fn semicolons_and_newlines_separate_commands() {
        assert_eq!(
            split("version; uri ;;hostname\necho x"),
            vec![
                vec!["version".to_owned()],
                vec!["uri".to_owned()],
                vec!["hostname".to_owned()],
                vec!["echo".to_owned(), "x".to_owned()],
            ]
        );
        assert_eq!(split("echo a\\\nb"), vec![vec!["echo", "ab"]]);
    }

    #[test]
    fn comments() {
        assert_eq!(split("echo a # b c; d"), vec![vec!["echo", "a"]]);
        assert_eq!(split("# all comment\necho x"), vec![vec!["echo", "x"]]);
        assert_eq!(words("echo a#b"), ["echo", "a#b"]);
    }

    #[test]
    fn quoting_errors() {
        assert_eq!(
            split_commands("echo \"abc")
                .err()
                .map(|e| e.to_string())
                .as_deref(),
            Some("missing \"")
        );
        assert_eq!(
            split_commands("echo abc\\")
                .err()
                .map(|e| e.to_string())
                .as_deref(),
            Some("dangling \\")
        );
    }

    #[test]
    fn completion() {
        let h = ShellHelper::new(&crate::commands::TABLE);
        let (start, c) = h.candidates("ver", 3);
        assert_eq!((start, c), (0, vec!["version".to_owned()]));
        let (start, c) = h.candidates("uri; ver", 8);
        assert_eq!((start, c), (5, vec!["version".to_owned()]));
        let (start, c) = h.candidates("version --d", 11);
        assert_eq!((start, c), (8, vec!["--daemon".to_owned()]));
        let (_, c) = h.candidates("version --daemon --d", 20);
        assert!(c.is_empty(), "{c:?}");
        let (_, c) = h.candidates("help ver", 8);
        assert!(c.is_empty());
    }
}
