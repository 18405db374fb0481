//! The script file format: commands, each followed by the output it must
//! produce, in the shape of etcd's `datadriven` files.
//!
//! ```text
//! # A comment: kept as it is when the file is rewritten.
//! tick 1 10
//! ----
//! 1: tick 10/10
//!   record #1 HardState term=1 vote=1 role=candidate
//!
//! status 1
//! ----
//! 1: term=1 role=candidate ...
//! ```
//!
//! A *case* is a command line, a `----` line, and the expected output up to
//! the next blank line (or the end of the file). Outside a case, blank lines
//! and lines starting with `#` are text, kept verbatim. A command line not
//! followed by `----` has no expected output yet: it fails the test, and
//! `REWRITE=1` fills it in — so a new case is written as just its command.
//! Output never contains blank lines (the environment prints `ok` when a
//! command has nothing to say), which is what lets a blank line end a case.

use std::fmt::Write as _;

/// One piece of a script, in file order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    /// A comment or blank line outside any case, kept verbatim.
    Text(String),
    /// A command and what it must print.
    Case(Case),
}

/// A command and its expected output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Case {
    /// Line number of the command (1-based), for error messages.
    pub line: usize,
    /// The command line.
    pub command: String,
    /// The expected output lines; `None` if the file has none yet.
    pub expected: Option<Vec<String>>,
}

/// A parsed script.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Script {
    /// Everything in the file, in order.
    pub items: Vec<Item>,
}

/// The separator between a command and its expected output.
pub const SEPARATOR: &str = "----";

impl Script {
    /// Parses a script; an error names the 1-based line.
    pub fn parse(src: &str) -> Result<Script, String> {
        let lines: Vec<&str> = src.lines().collect();
        let mut items = Vec::new();
        let mut i = 0;
        while i < lines.len() {
            let line = lines[i];
            let trimmed = line.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                items.push(Item::Text(line.to_string()));
                i += 1;
                continue;
            }
            if trimmed == SEPARATOR {
                return Err(format!("line {}: `{SEPARATOR}` without a command before it", i + 1));
            }
            let case_line = i + 1;
            let command = trimmed.to_string();
            i += 1;
            let mut expected = None;
            if lines.get(i).is_some_and(|l| l.trim() == SEPARATOR) {
                i += 1;
                let mut out = Vec::new();
                while i < lines.len() && !lines[i].trim().is_empty() {
                    out.push(lines[i].to_string());
                    i += 1;
                }
                if out.is_empty() {
                    return Err(format!("line {case_line}: `{command}` has a `{SEPARATOR}` but no output after it"));
                }
                // The blank line that ends the case belongs to it.
                if i < lines.len() {
                    i += 1;
                }
                expected = Some(out);
            }
            items.push(Item::Case(Case { line: case_line, command, expected }));
        }
        Ok(Script { items })
    }

    /// The cases, in order.
    pub fn cases(&self) -> impl Iterator<Item = &Case> {
        self.items.iter().filter_map(|it| match it {
            Item::Case(c) => Some(c),
            Item::Text(_) => None,
        })
    }

    /// The file again, with each case's expected output replaced by
    /// `outputs[k]` for the k-th case (cases beyond `outputs` keep theirs).
    /// Rendering a parsed file with its own outputs gives the file back
    /// (up to a missing final newline), so a rewrite changes only outputs.
    pub fn render(&self, outputs: &[Vec<String>]) -> String {
        let mut s = String::new();
        let mut k = 0;
        for (n, item) in self.items.iter().enumerate() {
            match item {
                Item::Text(t) => {
                    s.push_str(t);
                    s.push('\n');
                }
                Item::Case(c) => {
                    let out = outputs.get(k).or(c.expected.as_ref());
                    k += 1;
                    s.push_str(&c.command);
                    s.push('\n');
                    if let Some(out) = out {
                        s.push_str(SEPARATOR);
                        s.push('\n');
                        for l in out {
                            s.push_str(l);
                            s.push('\n');
                        }
                        // The blank line that ends a case, unless it is the last
                        // thing or a blank line follows anyway (a case that had
                        // no output yet was followed by its own).
                        let next_blank = matches!(self.items.get(n + 1), Some(Item::Text(t)) if t.trim().is_empty());
                        if n + 1 < self.items.len() && !next_blank {
                            s.push('\n');
                        }
                    }
                }
            }
        }
        s
    }
}

/// A line diff of `expected` against `actual` (longest common subsequence):
/// ` ` kept, `-` expected but missing, `+` printed but not expected.
pub fn diff(expected: &[String], actual: &[String]) -> String {
    let (n, m) = (expected.len(), actual.len());
    // lcs[i][j]: length of the LCS of expected[i..] and actual[j..].
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if expected[i] == actual[j] { lcs[i + 1][j + 1] + 1 } else { lcs[i + 1][j].max(lcs[i][j + 1]) };
        }
    }
    let mut out = String::new();
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && expected[i] == actual[j] {
            let _ = writeln!(out, "  {}", expected[i]);
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            let _ = writeln!(out, "- {}", expected[i]);
            i += 1;
        } else {
            let _ = writeln!(out, "+ {}", actual[j]);
            j += 1;
        }
    }
    out
}
