//! Policy load errors: every problem of every file, each with its file, line and column.
use std::{
    fmt,
    ops::Range,
    path::{Path, PathBuf},
};

use crate::config::line_col;

/// One problem in the policy, located at a value in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    /// The policy file (or the directory, when it cannot be listed).
    pub file: PathBuf,
    /// 1-based line; 0 when the problem is with the file as a whole (e.g. unreadable).
    pub line: usize,
    /// 1-based column (in characters); 0 with `line` 0.
    pub column: usize,
    /// What is wrong, in words.
    pub reason: String,
}

impl PolicyError {
    /// A problem with `file` as a whole.
    pub fn whole_file(file: &Path, reason: impl Into<String>) -> Self {
        Self {
            file: file.to_owned(),
            line: 0,
            column: 0,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.reason)
        } else {
            let (file, line, column) = (self.file.display(), self.line, self.column);
            write!(f, "{file}:{line}:{column}: {}", self.reason)
        }
    }
}

impl std::error::Error for PolicyError {}

/// All problems found while loading a policy, in file order then position order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyErrors(pub Vec<PolicyError>);

impl fmt::Display for PolicyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for PolicyErrors {}

/// Where a value sits: file, line and column, computed from a byte span of the file's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Location {
    /// The policy file.
    pub(crate) file: PathBuf,
    /// 1-based line.
    pub(crate) line: usize,
    /// 1-based column.
    pub(crate) column: usize,
}

impl Location {
    /// An error at this location.
    pub(crate) fn error(&self, reason: impl Into<String>) -> PolicyError {
        PolicyError {
            file: self.file.clone(),
            line: self.line,
            column: self.column,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// A policy file's text, to turn byte spans into [`Location`]s.
pub(crate) struct Source<'a> {
    /// The file.
    pub(crate) file: &'a Path,
    /// Its text.
    pub(crate) text: &'a str,
}

impl Source<'_> {
    /// Location of the start of `span`.
    pub(crate) fn locate(&self, span: Range<usize>) -> Location {
        let (line, byte_column) = line_col(self.text, span.start);
        // `line_col` counts bytes; report characters so editors land on the value.
        let line_start = span.start.min(self.text.len()) + 1 - byte_column;
        let column = self
            .text
            .get(line_start..span.start.min(self.text.len()))
            .map_or(byte_column, |s| s.chars().count() + 1);
        Location {
            file: self.file.to_owned(),
            line,
            column,
        }
    }

    /// An error at the start of `span`.
    pub(crate) fn error(&self, span: Range<usize>, reason: impl Into<String>) -> PolicyError {
        self.locate(span).error(reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_one_error_per_line() {
        let errs = PolicyErrors(vec![
            PolicyError {
                file: "a.toml".into(),
                line: 3,
                column: 7,
                reason: "bad".into(),
            },
            PolicyError::whole_file(Path::new("b.toml"), "unreadable"),
        ]);
        assert_eq!(errs.to_string(), "a.toml:3:7: bad\nb.toml: unreadable");
    }

    #[test]
    fn locate_counts_characters() {
        let src = Source {
            file: Path::new("f"),
            text: "a = 1\nnamé = \"x\"\n",
        };
        let at = src.text.find("\"x").unwrap_or(0);
        let loc = src.locate(at..at + 3);
        assert_eq!((loc.line, loc.column), (2, 8));
        assert_eq!(src.locate(0..1).column, 1);
    }
}
