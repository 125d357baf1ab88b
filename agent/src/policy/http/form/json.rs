//! A JSON body's top-level `_method` member: Laravel reads a JSON body as its request input, so
//! Symfony's `getMethod` takes a top-level `"_method": "DELETE"` as the method, as does an
//! Express `method-override` getter that reads `req.body._method`. Only a string value counts
//! (Symfony ignores any other). Read as it streams: strings other than top-level keys and a
//! `_method`'s value are skipped, not kept. Invalid JSON is read as far as it goes (no reader
//! takes a member from it, so what the scan finds there only adds readings).
use super::{Found, MAX_METHOD_VALUE, Reported, is_method_param};

/// Longest top-level key kept (decoded bytes); a longer one is not `_method`.
const MAX_KEY: usize = 64;

/// What comes next in the top-level object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Key,
    Colon,
    Value,
    Comma,
}

/// An escape under way in a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Escape {
    None,
    Backslash,
    /// `\u` and the hex digits so far.
    Unicode {
        digits: u8,
        code: u32,
    },
}

/// The state of a JSON scan.
#[derive(Debug)]
pub struct Json {
    /// Nesting: 1 inside the top-level value.
    depth: usize,
    /// The top-level value is an object.
    object: bool,
    expect: Expect,
    in_string: bool,
    escape: Escape,
    /// The string being read is kept: a top-level key, or a `_method`'s value.
    keep: Option<Keep>,
    /// The kept string so far, decoded.
    buf: Vec<u8>,
    /// It went past its limit.
    over: bool,
    /// The last top-level key was `_method`, its value not yet over.
    method_key: bool,
    /// Bytes between that key and its value (white space and the colon), bounded.
    gap: usize,
    reported: Reported,
}

/// What a kept string is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keep {
    Key,
    Value,
}

impl Json {
    /// A scan of a body's first byte.
    pub fn new() -> Self {
        Self {
            depth: 0,
            object: false,
            expect: Expect::Key,
            in_string: false,
            escape: Escape::None,
            keep: None,
            buf: Vec::new(),
            over: false,
            method_key: false,
            gap: 0,
            reported: Reported::default(),
        }
    }

    /// Whether a `_method` member's value is being read (it may go on in the next chunk).
    pub fn holding(&self) -> bool {
        self.method_key
    }

    /// Scans the next chunk.
    pub fn feed(&mut self, data: &[u8], out: &mut Vec<Found>) {
        let mut i = 0;
        while i < data.len() {
            let c = data[i];
            i += 1;
            if self.in_string {
                if self.keep.is_none() && self.escape == Escape::None {
                    // A string nobody reads: skip to its next quote or backslash.
                    match memchr::memchr2(b'"', b'\\', &data[i - 1..]) {
                        Some(j) => i += j,
                        None => return,
                    }
                    let c = data[i - 1];
                    if c == b'"' {
                        self.end_string(out);
                    } else {
                        self.escape = Escape::Backslash;
                    }
                    continue;
                }
                self.string_byte(c, out);
                continue;
            }
            match c {
                b'"' => {
                    let top = self.depth == 1 && self.object;
                    self.keep = match self.expect {
                        Expect::Key if top => Some(Keep::Key),
                        Expect::Value if top && self.method_key => Some(Keep::Value),
                        _ => None,
                    };
                    self.in_string = true;
                    self.buf.clear();
                    self.over = false;
                }
                b'{' | b'[' => {
                    if self.depth == 0 {
                        self.object = c == b'{';
                        self.expect = Expect::Key;
                    } else {
                        if c == b'[' && self.method_key && self.expect == Expect::Value {
                            // method-override takes an array's first element.
                            out.push(Found::Unreadable("a JSON _method that is an array"));
                        }
                        self.value_done();
                    }
                    self.depth += 1;
                }
                b'}' | b']' => self.depth = self.depth.saturating_sub(1),
                b':' if self.depth == 1 => {
                    self.expect = Expect::Value;
                    self.gap(out);
                }
                b',' if self.depth == 1 => {
                    self.expect = Expect::Key;
                    self.method_key = false;
                }
                b' ' | b'\t' | b'\r' | b'\n' => self.gap(out),
                // A number or a literal.
                _ => self.value_done(),
            }
        }
    }

    /// A byte between a `_method` key and its value: too many and the chunks held for the
    /// value would pile up.
    fn gap(&mut self, out: &mut Vec<Found>) {
        if self.method_key {
            self.gap += 1;
            if self.gap > MAX_METHOD_VALUE {
                out.push(Found::Unreadable("a form's _method value too long"));
                self.method_key = false;
            }
        }
    }

    /// A top-level member's value that is not a string began: it is no method.
    fn value_done(&mut self) {
        if self.depth == 1 && self.expect == Expect::Value {
            self.method_key = false;
            self.expect = Expect::Comma;
        }
    }

    fn string_byte(&mut self, c: u8, out: &mut Vec<Found>) {
        match self.escape {
            Escape::None => match c {
                b'"' => self.end_string(out),
                b'\\' => self.escape = Escape::Backslash,
                c => self.keep_bytes(&[c]),
            },
            Escape::Backslash => {
                self.escape = Escape::None;
                let ch = match c {
                    b'u' => {
                        self.escape = Escape::Unicode { digits: 0, code: 0 };
                        return;
                    }
                    b'b' => '\u{8}',
                    b'f' => '\u{c}',
                    b'n' => '\n',
                    b'r' => '\r',
                    b't' => '\t',
                    c => c as char,
                };
                self.keep_char(ch);
            }
            Escape::Unicode { digits, code } => {
                let Some(d) = (c as char).to_digit(16) else {
                    self.escape = Escape::None;
                    self.keep_char('\u{fffd}');
                    return self.string_byte(c, out);
                };
                let code = code * 16 + d;
                if digits == 3 {
                    self.escape = Escape::None;
                    self.keep_char(char::from_u32(code).unwrap_or('\u{fffd}'));
                } else {
                    self.escape = Escape::Unicode {
                        digits: digits + 1,
                        code,
                    };
                }
            }
        }
    }

    fn keep_char(&mut self, ch: char) {
        let mut b = [0; 4];
        self.keep_bytes(ch.encode_utf8(&mut b).as_bytes());
    }

    fn keep_bytes(&mut self, bytes: &[u8]) {
        let limit = match self.keep {
            None => return,
            Some(Keep::Key) => MAX_KEY,
            Some(Keep::Value) => MAX_METHOD_VALUE,
        };
        if self.buf.len() + bytes.len() > limit {
            self.over = true;
        } else if !self.over {
            self.buf.extend_from_slice(bytes);
        }
    }

    fn end_string(&mut self, out: &mut Vec<Found>) {
        self.in_string = false;
        self.escape = Escape::None;
        match self.keep.take() {
            Some(Keep::Key) => {
                self.method_key =
                    !self.over && is_method_param(&String::from_utf8_lossy(&self.buf));
                self.expect = Expect::Colon;
                self.gap = 0;
            }
            Some(Keep::Value) => {
                if self.over {
                    out.push(Found::Unreadable("a form's _method value too long"));
                } else {
                    self.reported
                        .report(String::from_utf8_lossy(&self.buf).into_owned(), out);
                }
                self.method_key = false;
                self.expect = Expect::Comma;
            }
            None => self.value_done(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{super::MAX_VALUES, *};

    /// Found in `body`, the same in chunks of every size from 1 to 7.
    fn scan(body: &str) -> Vec<Found> {
        let whole = {
            let mut j = Json::new();
            let mut out = Vec::new();
            j.feed(body.as_bytes(), &mut out);
            out
        };
        for n in 1..=7 {
            let mut j = Json::new();
            let mut out = Vec::new();
            for chunk in body.as_bytes().chunks(n) {
                j.feed(chunk, &mut out);
            }
            assert_eq!(out, whole, "chunks of {n}: {body}");
        }
        whole
    }

    fn method(m: &str) -> Found {
        Found::Method(m.to_owned())
    }

    #[test]
    fn top_level_method_strings() {
        assert_eq!(scan(r#"{"a":1,"_method":"DELETE"}"#), [method("DELETE")]);
        assert_eq!(
            scan(r#" { "\u005fmethod" : "DE\u004cETE" } "#),
            [method("DELETE")]
        );
        assert_eq!(
            scan(r#"{"x":"\"_method\":","_method":"P\"T"}"#),
            [method("P\"T")]
        );
        // Every duplicate counts (the last wins for PHP and JavaScript).
        assert_eq!(
            scan(r#"{"_method":"A","_method":"B"}"#),
            [method("A"), method("B")]
        );
    }

    #[test]
    fn what_is_not_a_method() {
        for body in [
            r#"{"a":{"_method":"DELETE"}}"#,
            r#"[{"_method":"DELETE"}]"#,
            r#"{"_method":{"a":"DELETE"},"b":{"_method":"X"}}"#,
            r#"{"_method":null,"x":"_method"}"#,
            r#"{"_method":5,"y":"DELETE"}"#,
            r#""_method""#,
        ] {
            assert_eq!(scan(body), [], "{body}");
        }
    }

    #[test]
    fn holding_lasts_from_the_key_to_the_end_of_its_value() {
        let mut j = Json::new();
        let mut out = Vec::new();
        j.feed(br#"{"a":"x","_method""#, &mut out);
        assert!(j.holding());
        j.feed(br#":"DEL"#, &mut out);
        assert!(j.holding());
        j.feed(br#"ETE"}"#, &mut out);
        assert!(!j.holding());
        assert_eq!(out, [method("DELETE")]);
    }

    #[test]
    fn an_array_or_a_long_gap_is_unreadable() {
        assert_eq!(
            scan(r#"{"_method":["DELETE"]}"#),
            [Found::Unreadable("a JSON _method that is an array")]
        );
        let gap = format!(r#"{{"_method"{}:"PUT"}}"#, " ".repeat(MAX_METHOD_VALUE + 1));
        assert_eq!(
            scan(&gap),
            [Found::Unreadable("a form's _method value too long")]
        );
    }

    #[test]
    fn limits() {
        let long = format!(r#"{{"_method":"{}"}}"#, "A".repeat(MAX_METHOD_VALUE + 1));
        assert_eq!(
            scan(&long),
            [Found::Unreadable("a form's _method value too long")]
        );
        let many: String = (0..20).map(|i| format!(r#""_method":"M{i}","#)).collect();
        let found = scan(&format!("{{{many}\"z\":0}}"));
        assert_eq!(found.len(), MAX_VALUES + 1);
        // A big string of another member is skipped.
        let big = format!(r#"{{"data":"{}","_method":"PUT"}}"#, "x\\\"".repeat(50_000));
        let mut j = Json::new();
        let mut out = Vec::new();
        for chunk in big.as_bytes().chunks(4096) {
            j.feed(chunk, &mut out);
        }
        assert_eq!(out, [method("PUT")]);
    }
}
