//! The command table and virsh's command-line parser.
//!
//! Every command is a [`CommandDef`] in a `const` table of its module
//! (`commands::host::COMMANDS`, ...), listed once in
//! [`crate::commands::TABLE`]. A definition carries everything the parser,
//! `help` and tab completion need: name, [`Group`], one-line help,
//! description, [`OptDef`]s, flags and the async [`Handler`].
//!
//! Parsing follows virsh (`vshCommandParse`):
//!
//! - `--opt value` and `--opt=value` set an option; a bool option takes no
//!   value (`--opt=x` is an error);
//! - other words fill the positional options in declaration order (an
//!   [`OptKind::Argv`] option takes every remaining one);
//! - `--` makes every following word positional;
//! - `cmd --help` shows `help cmd`;
//! - the errors are virsh's, e.g. `command 'X' doesn't support option --Y`,
//!   `command 'X' requires <Y> option`, `expected syntax: --Y <string>`.

use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;

use crate::ctl::Ctl;
use crate::error::Error;

/// virsh's command groups, in the order `help` lists them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Group {
    /// "Domain Management", keyword `domain`.
    Domain,
    /// "Domain Monitoring", keyword `monitor`.
    Monitor,
    /// "Domain Events", keyword `events`.
    Events,
    /// "Host and Hypervisor", keyword `host`.
    Host,
    /// "Networking", keyword `network`.
    Network,
    /// "Storage Pool", keyword `pool`.
    Pool,
    /// "Storage Volume", keyword `volume`.
    Volume,
    /// "Virsh itself", keyword `virsh`.
    Virsh,
}

impl Group {
    /// Every group, in listing order.
    pub const ALL: [Group; 8] = [
        Group::Domain,
        Group::Monitor,
        Group::Events,
        Group::Host,
        Group::Network,
        Group::Pool,
        Group::Volume,
        Group::Virsh,
    ];

    /// The group's title, e.g. `Domain Management`.
    pub fn title(self) -> &'static str {
        match self {
            Group::Domain => "Domain Management",
            Group::Monitor => "Domain Monitoring",
            Group::Events => "Domain Events",
            Group::Host => "Host and Hypervisor",
            Group::Network => "Networking",
            Group::Pool => "Storage Pool",
            Group::Volume => "Storage Volume",
            Group::Virsh => "Virsh itself",
        }
    }

    /// The group's help keyword, e.g. `domain`.
    pub fn keyword(self) -> &'static str {
        match self {
            Group::Domain => "domain",
            Group::Monitor => "monitor",
            Group::Events => "events",
            Group::Host => "host",
            Group::Network => "network",
            Group::Pool => "pool",
            Group::Volume => "volume",
            Group::Virsh => "virsh",
        }
    }

    /// The group named by its keyword or its title.
    pub fn find(name: &str) -> Option<Group> {
        Group::ALL
            .into_iter()
            .find(|g| g.keyword() == name || g.title() == name)
    }
}

/// The type of an option's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptKind {
    /// A flag without a value (`--daemon`).
    Bool,
    /// An integer (`--timeout 10`), checked when read ([`Invocation::int`]).
    Int,
    /// A string (`--domain vm1`).
    String,
    /// Any number of strings (`echo a b c`); positional ones take every
    /// remaining word.
    Argv,
}

/// One option of a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OptDef {
    /// The name, used as `--name`.
    pub name: &'static str,
    /// The value's type.
    pub kind: OptKind,
    /// The command fails without it.
    pub required: bool,
    /// It may be given without `--name`, filled from the words in order.
    pub positional: bool,
    /// Other accepted names (undocumented, as virsh's aliases). An alias
    /// written `NAME=VALUE` stands for the option with that value (virsh's
    /// `--shareable` for `--mode shareable`).
    pub aliases: &'static [&'static str],
    /// One line of help.
    pub help: &'static str,
}

impl OptDef {
    const fn new(name: &'static str, kind: OptKind, help: &'static str) -> OptDef {
        OptDef {
            name,
            kind,
            required: false,
            positional: false,
            aliases: &[],
            help,
        }
    }

    /// A bool option (a flag).
    pub const fn flag(name: &'static str, help: &'static str) -> OptDef {
        OptDef::new(name, OptKind::Bool, help)
    }

    /// A string option.
    pub const fn string(name: &'static str, help: &'static str) -> OptDef {
        OptDef::new(name, OptKind::String, help)
    }

    /// An integer option.
    pub const fn int(name: &'static str, help: &'static str) -> OptDef {
        OptDef::new(name, OptKind::Int, help)
    }

    /// A repeatable string option.
    pub const fn argv(name: &'static str, help: &'static str) -> OptDef {
        OptDef::new(name, OptKind::Argv, help)
    }

    /// Makes the option required.
    pub const fn required(mut self) -> OptDef {
        self.required = true;
        self
    }

    /// Lets the option be given without its name.
    pub const fn positional(mut self) -> OptDef {
        self.positional = true;
        self
    }

    /// Adds other names for the option.
    pub const fn aliases(mut self, aliases: &'static [&'static str]) -> OptDef {
        self.aliases = aliases;
        self
    }

    fn value_word(&self) -> &'static str {
        if self.kind == OptKind::Int {
            "number"
        } else {
            "string"
        }
    }
}

/// What a handler returns: a boxed future borrowing the control and the
/// invocation.
pub type HandlerFuture<'a> = Pin<Box<dyn Future<Output = Result<(), Error>> + 'a>>;

/// A command's implementation. Write it as
/// `fn cmd_x<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> { Box::pin(async move { ... }) }`.
pub type Handler = for<'a> fn(&'a mut Ctl, &'a Invocation) -> HandlerFuture<'a>;

/// One command.
#[derive(Clone, Copy)]
pub struct CommandDef {
    /// The name typed by the user.
    pub name: &'static str,
    /// The `help` group.
    pub group: Group,
    /// One line for the command lists.
    pub help: &'static str,
    /// The DESCRIPTION paragraph of `help NAME` (may be empty).
    pub desc: &'static str,
    /// The options, in SYNOPSIS and positional order.
    pub opts: &'static [OptDef],
    /// Runs without a connection (no URI is resolved before it).
    pub no_connect: bool,
    /// Left out of the command lists.
    pub hidden: bool,
    /// Other names of the command.
    pub aliases: &'static [&'static str],
    /// The implementation.
    pub handler: Handler,
}

impl std::fmt::Debug for CommandDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandDef")
            .field("name", &self.name)
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

impl CommandDef {
    /// A command without options that needs a connection.
    pub const fn new(
        name: &'static str,
        group: Group,
        help: &'static str,
        desc: &'static str,
        handler: Handler,
    ) -> CommandDef {
        CommandDef {
            name,
            group,
            help,
            desc,
            opts: &[],
            no_connect: false,
            hidden: false,
            aliases: &[],
            handler,
        }
    }

    /// Sets the options.
    pub const fn opts(mut self, opts: &'static [OptDef]) -> CommandDef {
        self.opts = opts;
        self
    }

    /// Marks the command as needing no connection.
    pub const fn no_connect(mut self) -> CommandDef {
        self.no_connect = true;
        self
    }

    /// Hides the command from the lists.
    pub const fn hidden(mut self) -> CommandDef {
        self.hidden = true;
        self
    }

    /// Adds other names for the command.
    pub const fn aliases(mut self, aliases: &'static [&'static str]) -> CommandDef {
        self.aliases = aliases;
        self
    }

    /// The index of the option called `name` (or aliased so).
    pub fn find_opt(&self, name: &str) -> Option<usize> {
        self.opts
            .iter()
            .position(|o| o.name == name)
            .or_else(|| self.opts.iter().position(|o| o.aliases.contains(&name)))
    }

    /// The option and value a `NAME=VALUE` alias called `name` stands for.
    fn find_value_alias(&self, name: &str) -> Option<(usize, &'static str)> {
        self.opts.iter().enumerate().find_map(|(i, o)| {
            o.aliases.iter().find_map(|a| match a.split_once('=') {
                Some((n, v)) if n == name => Some((i, v)),
                _ => None,
            })
        })
    }
}

/// All commands: a list of per-module tables.
#[derive(Debug)]
pub struct CommandTable {
    parts: &'static [&'static [CommandDef]],
}

impl CommandTable {
    /// A table made of the given module tables.
    pub const fn new(parts: &'static [&'static [CommandDef]]) -> CommandTable {
        CommandTable { parts }
    }

    /// Every command, hidden ones included.
    pub fn iter(&self) -> impl Iterator<Item = &'static CommandDef> + use<> {
        let parts: &'static [&'static [CommandDef]] = self.parts;
        parts.iter().flat_map(|p| p.iter())
    }

    /// The command called `name` or aliased so.
    pub fn lookup(&self, name: &str) -> Option<&'static CommandDef> {
        self.iter()
            .find(|c| c.name == name)
            .or_else(|| self.iter().find(|c| c.aliases.contains(&name)))
    }

    /// The visible commands of `group`, sorted by name.
    pub fn group(&self, group: Group) -> Vec<&'static CommandDef> {
        let mut v: Vec<_> = self
            .iter()
            .filter(|c| c.group == group && !c.hidden)
            .collect();
        v.sort_by_key(|c| c.name);
        v
    }
}

/// A parsed command: its definition and the option values given.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// The command.
    pub def: &'static CommandDef,
    /// Values per option (parallel to `def.opts`); a set bool holds one
    /// empty string.
    values: Vec<Vec<String>>,
}

impl Invocation {
    /// An invocation with no option set.
    pub fn new(def: &'static CommandDef) -> Invocation {
        Invocation {
            def,
            values: vec![Vec::new(); def.opts.len()],
        }
    }

    fn slot(&self, name: &str) -> Option<&Vec<String>> {
        let idx = self.def.find_opt(name);
        debug_assert!(
            idx.is_some(),
            "command '{}' has no option '{name}'",
            self.def.name
        );
        idx.map(|i| &self.values[i])
    }

    /// Whether the option was given at all.
    pub fn is_set(&self, name: &str) -> bool {
        self.slot(name).is_some_and(|v| !v.is_empty())
    }

    /// Whether the bool option `name` was given.
    pub fn flag(&self, name: &str) -> bool {
        self.is_set(name)
    }

    /// The value of a string option.
    pub fn string(&self, name: &str) -> Option<&str> {
        self.slot(name).and_then(|v| v.first()).map(String::as_str)
    }

    /// The value of an integer option, parsed as `T`.
    ///
    /// # Errors
    /// virsh's `Numeric value 'X' for <name> option is malformed or out of range`.
    pub fn int<T: FromStr>(&self, name: &str) -> Result<Option<T>, Error> {
        match self.string(name) {
            None => Ok(None),
            Some(s) => s.parse::<T>().map(Some).map_err(|_| {
                Error::msg(format!(
                    "Numeric value '{s}' for <{name}> option is malformed or out of range"
                ))
            }),
        }
    }

    /// Every value of an argv option (empty if none).
    pub fn argv(&self, name: &str) -> &[String] {
        self.slot(name).map_or(&[], Vec::as_slice)
    }

    /// Sets an option by index (used by the parser).
    fn push(&mut self, idx: usize, value: String) {
        self.values[idx].push(value);
    }
}

/// Parses one command's words (`words[0]` is the command name).
///
/// # Errors
/// virsh's parse errors: unknown command, unknown option, missing value,
/// duplicate option, unexpected data, missing required option.
pub fn parse_command(table: &CommandTable, words: &[String]) -> Result<Invocation, Error> {
    let Some(name) = words.first() else {
        return Err(Error::msg("missing command"));
    };
    let def = table
        .lookup(name)
        .ok_or_else(|| Error::msg(format!("unknown command: '{name}'")))?;
    let mut inv = Invocation::new(def);
    let mut data_only = false;
    let mut rest = words[1..].iter();
    while let Some(word) = rest.next() {
        if !data_only && word == "--" {
            data_only = true;
            continue;
        }
        if !data_only && word.len() > 2 && word.starts_with("--") {
            let body = &word[2..];
            let (oname, inline) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (body, None),
            };
            if def.find_opt(oname).is_none()
                && let Some((idx, value)) = def.find_value_alias(oname)
            {
                let opt = &def.opts[idx];
                if inline.is_some() {
                    return Err(Error::msg(format!("invalid '=' after option --{oname}")));
                }
                if !inv.values[idx].is_empty() {
                    return Err(Error::msg(format!("option --{} already seen", opt.name)));
                }
                inv.push(idx, value.to_owned());
                continue;
            }
            let Some(idx) = def.find_opt(oname) else {
                if oname == "help"
                    && let Some(help) = help_for(table, def)
                {
                    return Ok(help);
                }
                return Err(Error::msg(format!(
                    "command '{}' doesn't support option --{oname}",
                    def.name
                )));
            };
            let opt = &def.opts[idx];
            if opt.kind != OptKind::Argv && !inv.values[idx].is_empty() {
                return Err(Error::msg(format!("option --{} already seen", opt.name)));
            }
            if opt.kind == OptKind::Bool {
                if inline.is_some() {
                    return Err(Error::msg(format!(
                        "invalid '=' after option --{}",
                        opt.name
                    )));
                }
                inv.push(idx, String::new());
                continue;
            }
            let value = match inline {
                Some(v) => v.to_owned(),
                None => rest.next().cloned().ok_or_else(|| {
                    Error::msg(format!(
                        "expected syntax: --{} <{}>",
                        opt.name,
                        opt.value_word()
                    ))
                })?,
            };
            inv.push(idx, value);
            continue;
        }
        let slot = def.opts.iter().enumerate().position(|(i, o)| {
            o.positional && (o.kind == OptKind::Argv || inv.values[i].is_empty())
        });
        match slot {
            Some(idx) => inv.push(idx, word.clone()),
            None => return Err(Error::msg(format!("unexpected data '{word}'"))),
        }
    }
    for (i, opt) in def.opts.iter().enumerate() {
        if opt.required && inv.values[i].is_empty() {
            return Err(Error::msg(if opt.positional {
                format!("command '{}' requires <{}> option", def.name, opt.name)
            } else {
                format!("command '{}' requires --{} option", def.name, opt.name)
            }));
        }
    }
    Ok(inv)
}

/// `help <def>`, for `cmd --help`, when the table has a `help` command.
fn help_for(table: &CommandTable, def: &'static CommandDef) -> Option<Invocation> {
    let help = table.lookup("help")?;
    let idx = help.find_opt("command")?;
    let mut inv = Invocation::new(help);
    inv.push(idx, def.name.to_owned());
    Some(inv)
}

/// virsh's `help COMMAND` text: NAME, SYNOPSIS, DESCRIPTION and OPTIONS.
pub fn command_help(def: &CommandDef) -> String {
    let mut s = String::new();
    s.push_str("  NAME\n");
    let _ = writeln!(s, "    {} - {}", def.name, def.help);
    s.push_str("\n  SYNOPSIS\n");
    let _ = write!(s, "    {}", def.name);
    for opt in def.opts {
        let named = if opt.positional {
            format!("[--{}]", opt.name)
        } else {
            format!("--{}", opt.name)
        };
        let _ = match opt.kind {
            OptKind::Bool => write!(s, " [--{}]", opt.name),
            OptKind::String | OptKind::Int => {
                let inner = format!("{named} <{}>", opt.value_word());
                if opt.required {
                    write!(s, " {inner}")
                } else {
                    write!(s, " [{inner}]")
                }
            }
            OptKind::Argv => {
                if opt.required {
                    write!(s, " {{{named} <string>}}...")
                } else {
                    write!(s, " [{named} <string>]...")
                }
            }
        };
    }
    s.push('\n');
    if !def.desc.is_empty() {
        s.push_str("\n  DESCRIPTION\n");
        let _ = writeln!(s, "    {}", def.desc);
    }
    if !def.opts.is_empty() {
        s.push_str("\n  OPTIONS\n");
        for opt in def.opts {
            let name = if opt.positional {
                format!("[--{}]", opt.name)
            } else {
                format!("--{}", opt.name)
            };
            let spec = match opt.kind {
                OptKind::Bool => format!("--{}", opt.name),
                _ => format!("{name} <{}>", opt.value_word()),
            };
            let _ = writeln!(s, "    {spec:<15}  {}", opt.help);
        }
    }
    s.push('\n');
    s
}

/// One group's list, as `help GROUP` prints it.
pub fn group_help(table: &CommandTable, group: Group) -> String {
    let mut s = format!(" {} (help keyword '{}'):\n", group.title(), group.keyword());
    for def in table.group(group) {
        let _ = writeln!(s, "    {:<30} {}", def.name, def.help);
    }
    s
}

/// The full grouped list, as `help` prints it (empty groups left out).
pub fn all_help(table: &CommandTable) -> String {
    let mut s = String::from("Grouped commands:\n\n");
    for group in Group::ALL {
        if table.group(group).is_empty() {
            continue;
        }
        s.push_str(&group_help(table, group));
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nop<'a>(_: &'a mut Ctl, _: &'a Invocation) -> HandlerFuture<'a> {
        Box::pin(async { Ok(()) })
    }

    const OPTS: &[OptDef] = &[
        OptDef::string("domain", "domain name, id or uuid")
            .required()
            .positional(),
        OptDef::int("timeout", "seconds to wait"),
        OptDef::string("file", "an XML file").positional(),
        OptDef::flag("force", "do it anyway").aliases(&["forced"]),
        OptDef::string("mode", "the mode").aliases(&["fast=quick"]),
    ];

    const CMDS: &[CommandDef] = &[
        CommandDef::new(
            "dostuff",
            Group::Domain,
            "do stuff to a domain",
            "Does stuff.",
            nop,
        )
        .opts(OPTS),
        CommandDef::new("say", Group::Virsh, "say things", "", nop)
            .opts(&[
                OptDef::flag("loud", "shout"),
                OptDef::argv("string", "what to say").positional(),
            ])
            .no_connect(),
        CommandDef::new("help", Group::Virsh, "print help", "", nop)
            .opts(&[OptDef::string("command", "which").positional()])
            .no_connect(),
    ];

    static TABLE: CommandTable = CommandTable::new(&[CMDS]);

    fn parse(line: &[&str]) -> Result<Invocation, String> {
        let words: Vec<String> = line.iter().map(|s| (*s).to_owned()).collect();
        parse_command(&TABLE, &words).map_err(|e| e.to_string())
    }

    fn ok(line: &[&str]) -> Invocation {
        match parse(line) {
            Ok(i) => i,
            Err(e) => panic!("{line:?}: {e}"),
        }
    }

    #[test]
    fn named_and_equals_forms() {
        let i = ok(&["dostuff", "--domain", "vm1", "--timeout=5", "--force"]);
        assert_eq!(i.def.name, "dostuff");
        assert_eq!(i.string("domain"), Some("vm1"));
        assert_eq!(i.int::<u32>("timeout").ok().flatten(), Some(5));
        assert!(i.flag("force"));
        assert!(!i.is_set("file"));
        let i = ok(&["dostuff", "--domain=a=b", "--mode", "--x"]);
        assert_eq!(i.string("domain"), Some("a=b"));
        assert_eq!(i.string("mode"), Some("--x"));
    }

    #[test]
    fn positionals_fill_in_order() {
        let i = ok(&["dostuff", "vm1", "f.xml"]);
        assert_eq!(i.string("domain"), Some("vm1"));
        assert_eq!(i.string("file"), Some("f.xml"));
        let i = ok(&["dostuff", "--domain", "vm1", "f.xml"]);
        assert_eq!(i.string("file"), Some("f.xml"));
        let i = ok(&["dostuff", "--file", "f.xml", "vm1"]);
        assert_eq!(i.string("domain"), Some("vm1"));
        assert_eq!(
            parse(&["dostuff", "a", "b", "c"]).err().as_deref(),
            Some("unexpected data 'c'")
        );
    }

    #[test]
    fn double_dash_ends_options() {
        let i = ok(&["dostuff", "--", "--weird-name"]);
        assert_eq!(i.string("domain"), Some("--weird-name"));
        let i = ok(&["say", "--loud", "--", "--loud", "-x"]);
        assert!(i.flag("loud"));
        assert_eq!(i.argv("string"), ["--loud", "-x"]);
        let i = ok(&["say", "a", "b", "--loud", "c"]);
        assert_eq!(i.argv("string"), ["a", "b", "c"]);
    }

    #[test]
    fn aliases_work() {
        assert!(ok(&["dostuff", "vm", "--forced"]).flag("force"));
        assert_eq!(
            ok(&["dostuff", "vm", "--fast"]).string("mode"),
            Some("quick")
        );
        assert_eq!(
            parse(&["dostuff", "vm", "--mode", "x", "--fast"])
                .err()
                .as_deref(),
            Some("option --mode already seen")
        );
        assert_eq!(
            parse(&["dostuff", "vm", "--fast=1"]).err().as_deref(),
            Some("invalid '=' after option --fast")
        );
        assert_eq!(
            parse(&["dostuff", "vm", "--fast=quick"]).err().as_deref(),
            Some("invalid '=' after option --fast")
        );
    }

    #[test]
    fn errors_are_virsh_errors() {
        assert_eq!(
            parse(&["nosuch"]).err().as_deref(),
            Some("unknown command: 'nosuch'")
        );
        assert_eq!(
            parse(&["dostuff", "vm", "--bogus"]).err().as_deref(),
            Some("command 'dostuff' doesn't support option --bogus")
        );
        assert_eq!(
            parse(&["dostuff"]).err().as_deref(),
            Some("command 'dostuff' requires <domain> option")
        );
        assert_eq!(
            parse(&["dostuff", "vm", "--mode"]).err().as_deref(),
            Some("expected syntax: --mode <string>")
        );
        assert_eq!(
            parse(&["dostuff", "vm", "--timeout"]).err().as_deref(),
            Some("expected syntax: --timeout <number>")
        );
        assert_eq!(
            parse(&["dostuff", "vm", "--force=yes"]).err().as_deref(),
            Some("invalid '=' after option --force")
        );
        assert_eq!(
            parse(&["dostuff", "vm", "--mode", "a", "--mode", "b"])
                .err()
                .as_deref(),
            Some("option --mode already seen")
        );
        let i = ok(&["dostuff", "vm", "--timeout", "abc"]);
        assert_eq!(
            i.int::<u32>("timeout")
                .err()
                .map(|e| e.to_string())
                .as_deref(),
            Some("Numeric value 'abc' for <timeout> option is malformed or out of range")
        );
    }

    #[test]
    fn dash_dash_help_means_help_command() {
        let i = ok(&["dostuff", "--help"]);
        assert_eq!(i.def.name, "help");
        assert_eq!(i.string("command"), Some("dostuff"));
    }

    #[test]
    fn command_help_layout() {
        let def = TABLE.lookup("dostuff").expect("defined");
        assert_eq!(
            command_help(def),
            "  NAME\n\
             \x20   dostuff - do stuff to a domain\n\
             \n  SYNOPSIS\n\
             \x20   dostuff [--domain] <string> [--timeout <number>] [[--file] <string>] [--force] [--mode <string>]\n\
             \n  DESCRIPTION\n\
             \x20   Does stuff.\n\
             \n  OPTIONS\n\
             \x20   [--domain] <string>  domain name, id or uuid\n\
             \x20   --timeout <number>  seconds to wait\n\
             \x20   [--file] <string>  an XML file\n\
             \x20   --force          do it anyway\n\
             \x20   --mode <string>  the mode\n\
             \n"
        );
        let say = TABLE.lookup("say").expect("defined");
        let text = command_help(say);
        assert!(
            text.contains("    say [--loud] [[--string] <string>]...\n"),
            "{text}"
        );
        assert!(!text.contains("DESCRIPTION"), "{text}");
    }

    #[test]
    fn group_listing() {
        assert_eq!(
            all_help(&TABLE),
            "Grouped commands:\n\n \
             Domain Management (help keyword 'domain'):\n    \
             dostuff                        do stuff to a domain\n\n \
             Virsh itself (help keyword 'virsh'):\n    \
             help                           print help\n    \
             say                            say things\n\n"
        );
        assert_eq!(Group::find("pool"), Some(Group::Pool));
        assert_eq!(Group::find("Storage Volume"), Some(Group::Volume));
        assert_eq!(Group::find("nope"), None);
    }
}
