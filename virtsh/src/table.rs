//! virsh's tables (`tools/vsh-table.c`): ` Id   Name   State`.
//!
//! Every cell is printed as `" " + cell`, padded to its column's width plus
//! two spaces (not after the last column); under the header, a line of
//! dashes as long as the sum of (width + 3). Control characters are shown
//! as `\xNN`, as virsh does. With `-q` the header and dashes are left out
//! and widths are computed from the rows alone.

/// A table: a header and rows of the same length.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

/// virsh's `vshTableSafeEncode`: control characters (and a literal `\x`)
/// become `\xNN`.
fn encode(cell: &str) -> String {
    let mut out = String::with_capacity(cell.len());
    let mut chars = cell.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_control() || (c == '\\' && chars.peek() == Some(&'x')) {
            out.push_str(&format!("\\x{:02x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

impl Table {
    /// A table with these column names.
    pub fn new(header: &[&str]) -> Table {
        Table {
            header: header.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    /// Appends a row (as many cells as the header has).
    pub fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.header.len(), "cells per row");
        self.rows.push(cells);
    }

    /// The table as virsh prints it, with or without the header.
    pub fn render(&self, with_header: bool) -> String {
        let header: Vec<String> = self.header.iter().map(|c| encode(c)).collect();
        let rows: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| r.iter().map(|c| encode(c)).collect())
            .collect();
        let mut widths = vec![0usize; header.len()];
        let counted = with_header
            .then_some(&header)
            .into_iter()
            .chain(rows.iter());
        for row in counted {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let print_row = |out: &mut String, row: &[String]| {
            for (i, cell) in row.iter().enumerate() {
                out.push(' ');
                out.push_str(cell);
                if i + 1 < row.len() {
                    let pad = widths[i] - cell.chars().count() + 2;
                    out.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push('\n');
        };
        if with_header {
            print_row(&mut out, &header);
            let dashes: usize = widths.iter().map(|w| w + 3).sum();
            out.extend(std::iter::repeat_n('-', dashes));
            out.push('\n');
        }
        for row in &rows {
            print_row(&mut out, row);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virsh_list_layout() {
        let mut t = Table::new(&["Id", "Name", "State"]);
        t.row(vec!["-".into(), "vm1".into(), "shut off".into()]);
        t.row(vec!["12".into(), "longer-name".into(), "running".into()]);
        assert_eq!(
            t.render(true),
            format!(
                " Id   Name          State\n{}\n \
                 -    vm1           shut off\n \
                 12   longer-name   running\n",
                "-".repeat(30)
            )
        );
        assert_eq!(
            t.render(false),
            " -    vm1           shut off\n 12   longer-name   running\n"
        );
    }

    #[test]
    fn empty_table_has_header_and_dashes() {
        let t = Table::new(&["Id", "Name", "State"]);
        assert_eq!(
            t.render(true),
            format!(" Id   Name   State\n{}\n", "-".repeat(20))
        );
        assert_eq!(t.render(false), "");
    }

    #[test]
    fn control_characters_are_escaped() {
        let mut t = Table::new(&["A", "B"]);
        t.row(vec!["a\tb".into(), "\\x".into()]);
        assert_eq!(t.render(false), " a\\x09b   \\x5cx\n");
    }
}
