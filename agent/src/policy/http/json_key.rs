//! `json_keys` of `[target.http.masking]`: which values of a JSON body are masked whole. A key
//! glob (`"ssn"`, `"*card*"`, `"customer.email"`) or a JSON path (`"$.data.items[*].token"`),
//! compiled at load. Pure.
use std::fmt;

use globset::{GlobBuilder, GlobMatcher};

use crate::masking::Style;

/// One step from a JSON value to one of its children: what the masking code passes to
/// [`JsonKey::matches`] as the path of the value at hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonStep<'a> {
    /// A member of an object, by key.
    Key(&'a str),
    /// An element of an array, by position (from 0).
    Index(usize),
}

/// A compiled `json_keys` entry: which values it selects, and how they are masked.
#[derive(Debug, Clone)]
pub struct JsonKey {
    /// As written.
    text: String,
    /// What it matches.
    matcher: Matcher,
    /// How a selected value is masked (with its hash key, for `hash`).
    style: Style,
}

#[derive(Debug, Clone)]
enum Matcher {
    /// Key-name globs, outermost first, matched against the last object keys of a value's path
    /// (array positions skipped), case-insensitive.
    Names(Vec<GlobMatcher>),
    /// A JSON path from the root, step by step.
    Path(Vec<PathStep>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PathStep {
    /// `.name`, `['name']`: this key.
    Key(String),
    /// `.*`, `['*']` is a key named `*`: any key.
    AnyKey,
    /// `[3]`: this position.
    Index(usize),
    /// `[*]`: any position.
    AnyIndex,
}

/// Why a `json_keys` entry does not compile (the entry itself is shown by the caller).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonKeyError {
    /// An empty string.
    #[error("a JSON key must not be empty")]
    Empty,
    /// A key glob with an empty part (`a..b`, `.a`, `a.`).
    #[error("empty key name between dots (a key containing a dot is written as a path: $['a.b'])")]
    EmptyName,
    /// A key glob part that is not a glob.
    #[error("invalid key glob {0:?}: {1}")]
    Glob(String, String),
    /// A path that names no step (`$`: the whole body).
    #[error("a JSON path must name at least one key or element after \"$\"")]
    WholeBody,
    /// `..` (recursive descent).
    #[error(
        "recursive descent (\"..\") is not supported: use a key glob, which matches at any depth"
    )]
    RecursiveDescent,
    /// A syntax error at a byte offset of the path.
    #[error("invalid JSON path at byte {at}: {what}")]
    Path {
        /// Byte offset in the entry.
        at: usize,
        /// What was expected.
        what: &'static str,
    },
}

impl JsonKey {
    /// Compiles an entry: a JSON path when it starts with `$`, else a key glob. `style` is final
    /// (a `hash` style already holds its key).
    pub fn new(text: &str, style: Style) -> Result<Self, JsonKeyError> {
        let matcher = if text.starts_with('$') {
            Matcher::Path(parse_path(text)?)
        } else {
            Matcher::Names(parse_names(text)?)
        };
        Ok(Self {
            text: text.to_owned(),
            matcher,
            style,
        })
    }

    /// The entry as written; also its label in the masking counts.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// How a selected value is masked.
    pub fn style(&self) -> &Style {
        &self.style
    }

    /// Whether the value at `path` (from the root of the body) is selected. A key glob
    /// `a.b` selects the values whose key matches `b` and whose nearest enclosing key (array
    /// positions skipped) matches `a`, at any depth; a path selects the values at exactly that
    /// path. The caller masks a selected value whole (an object or array: every scalar in it).
    pub fn matches(&self, path: &[JsonStep<'_>]) -> bool {
        match &self.matcher {
            Matcher::Names(globs) => {
                // The object keys of the path, innermost first; the value itself must be a member.
                if !matches!(path.last(), Some(JsonStep::Key(_))) {
                    return false;
                }
                let mut keys = path.iter().rev().filter_map(|s| match s {
                    JsonStep::Key(k) => Some(*k),
                    JsonStep::Index(_) => None,
                });
                globs
                    .iter()
                    .rev()
                    .all(|g| keys.next().is_some_and(|k| g.is_match(k)))
            }
            Matcher::Path(steps) => {
                steps.len() == path.len()
                    && steps.iter().zip(path).all(|(want, got)| match (want, got) {
                        (PathStep::Key(k), JsonStep::Key(g)) => k == g,
                        (PathStep::AnyKey, JsonStep::Key(_)) => true,
                        (PathStep::Index(i), JsonStep::Index(g)) => i == g,
                        (PathStep::AnyIndex, JsonStep::Index(_)) => true,
                        _ => false,
                    })
            }
        }
    }
}

impl fmt::Display for JsonKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.text, self.style.name())
    }
}

/// The first entry of `keys` selecting the value at `path`.
pub fn json_key_for<'k>(keys: &'k [JsonKey], path: &[JsonStep<'_>]) -> Option<&'k JsonKey> {
    keys.iter().find(|k| k.matches(path))
}

fn parse_names(text: &str) -> Result<Vec<GlobMatcher>, JsonKeyError> {
    if text.is_empty() {
        return Err(JsonKeyError::Empty);
    }
    text.split('.')
        .map(|part| {
            if part.is_empty() {
                return Err(JsonKeyError::EmptyName);
            }
            GlobBuilder::new(part)
                .case_insensitive(true)
                .literal_separator(false)
                .backslash_escape(true)
                .build()
                .map(|g| g.compile_matcher())
                .map_err(|e| JsonKeyError::Glob(part.to_owned(), e.kind().to_string()))
        })
        .collect()
}

/// `$` then steps: `.name` (letters, digits, `_`, `-`), `.*`, `[N]`, `[*]`, `['any']`,
/// `["any"]` (no escapes inside quotes).
fn parse_path(text: &str) -> Result<Vec<PathStep>, JsonKeyError> {
    let bytes = text.as_bytes();
    let err = |at: usize, what: &'static str| JsonKeyError::Path { at, what };
    let mut steps = Vec::new();
    let mut i = 1;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'.' if bytes.get(i + 1) == Some(&b'.') => return Err(JsonKeyError::RecursiveDescent),
            b'.' if bytes.get(i + 1) == Some(&b'*') => {
                steps.push(PathStep::AnyKey);
                i += 2;
            }
            b'.' => {
                let start = i + 1;
                let len = bytes[start..]
                    .iter()
                    .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-'))
                    .count();
                if len == 0 {
                    return Err(err(
                        start,
                        "a key name after \".\" (or [\"...\"] for others)",
                    ));
                }
                steps.push(PathStep::Key(text[start..start + len].to_owned()));
                i = start + len;
            }
            b'[' => {
                let start = i + 1;
                let close = match bytes.get(start) {
                    Some(q @ (b'\'' | b'"')) => {
                        let end = bytes[start + 1..]
                            .iter()
                            .position(|c| c == q)
                            .map(|n| start + 1 + n)
                            .ok_or_else(|| err(start, "a closing quote"))?;
                        steps.push(PathStep::Key(text[start + 1..end].to_owned()));
                        end + 1
                    }
                    Some(b'*') => {
                        steps.push(PathStep::AnyIndex);
                        start + 1
                    }
                    Some(c) if c.is_ascii_digit() => {
                        let len = bytes[start..]
                            .iter()
                            .take_while(|c| c.is_ascii_digit())
                            .count();
                        let n = text[start..start + len]
                            .parse()
                            .map_err(|_| err(start, "an index that fits in 64 bits"))?;
                        steps.push(PathStep::Index(n));
                        start + len
                    }
                    _ => return Err(err(start, "an index, \"*\" or a quoted key after \"[\"")),
                };
                if bytes.get(close) != Some(&b']') {
                    return Err(err(close, "\"]\""));
                }
                i = close + 1;
            }
            _ => return Err(err(i, "\".\" or \"[\"")),
        }
    }
    if steps.is_empty() {
        return Err(JsonKeyError::WholeBody);
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;
    use JsonStep::{Index as I, Key as K};

    fn key(text: &str) -> JsonKey {
        JsonKey::new(text, Style::Redact).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn matching() {
        let cases: &[(&str, &[JsonStep<'_>], bool)] = &[
            // A name at any depth, case-insensitive, through arrays.
            ("ssn", &[K("ssn")], true),
            ("ssn", &[K("data"), I(3), K("SSN")], true),
            ("ssn", &[K("ssn"), K("x")], false),
            ("ssn", &[K("ssn"), I(0)], false),
            ("ssn", &[], false),
            ("*card*", &[K("a"), K("credit_card_no")], true),
            // Dotted: the enclosing key too.
            ("*.card_number", &[K("card_number")], false),
            ("*.card_number", &[K("p"), K("card_number")], true),
            ("*.card_number", &[K("p"), I(1), K("card_number")], true),
            ("customer.email", &[K("x"), K("customer"), K("email")], true),
            (
                "customer.email",
                &[K("customer"), K("x"), K("email")],
                false,
            ),
            // Paths: exact, from the root.
            ("$.data.password", &[K("data"), K("password")], true),
            ("$.data.password", &[K("data"), K("Password")], false),
            (
                "$.data.password",
                &[K("x"), K("data"), K("password")],
                false,
            ),
            ("$.data.password", &[K("data")], false),
            ("$.items[*].token", &[K("items"), I(7), K("token")], true),
            ("$.items[*].token", &[K("items"), K("7"), K("token")], false),
            ("$.items[1].token", &[K("items"), I(1), K("token")], true),
            ("$.items[1].token", &[K("items"), I(2), K("token")], false),
            ("$.*.token", &[K("any"), K("token")], true),
            ("$['a.b']", &[K("a.b")], true),
            ("$[\"with space\"][0]", &[K("with space"), I(0)], true),
            ("$[0]", &[I(0)], true),
        ];
        for (text, path, want) in cases {
            assert_eq!(key(text).matches(path), *want, "{text} on {path:?}");
        }
    }

    #[test]
    fn first_match_wins() {
        let keys = [
            JsonKey::new("$.a.b", Style::Last4).unwrap(),
            JsonKey::new("b", Style::Redact).unwrap(),
        ];
        let found = |p: &[JsonStep<'_>]| json_key_for(&keys, p).map(JsonKey::as_str);
        assert_eq!(found(&[K("a"), K("b")]), Some("$.a.b"));
        assert_eq!(found(&[K("c"), K("b")]), Some("b"));
        assert_eq!(found(&[K("c")]), None);
    }

    #[test]
    fn compile_errors() {
        let cases: &[(&str, &str)] = &[
            ("", "must not be empty"),
            ("a..b", "empty key name"),
            (".a", "empty key name"),
            ("a.", "empty key name"),
            ("[b", "invalid key glob \"[b\""),
            ("a.{b", "invalid key glob \"{b\""),
            ("$", "at least one key"),
            ("$.", "at byte 2: a key name"),
            ("$..a", "recursive descent"),
            ("$a", "at byte 1: \".\" or \"[\""),
            ("$.a[", "at byte 4: an index"),
            ("$.a[x]", "at byte 4: an index"),
            ("$.a[1", "at byte 5: \"]\""),
            ("$.a['b]", "at byte 4: a closing quote"),
            ("$.a['b'", "at byte 7: \"]\""),
            ("$.a b", "at byte 3"),
            ("$[99999999999999999999999]", "fits in 64 bits"),
        ];
        for (text, want) in cases {
            let e = JsonKey::new(text, Style::Redact).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }
}
