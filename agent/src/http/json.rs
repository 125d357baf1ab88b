//! JSON response bodies: values masked by key and by detectors, rewriting only what changes.
//!
//! The body is scanned once, without building a document: keys, order, spacing and the escapes
//! of everything left alone are kept byte for byte; only a masked value is re-encoded. A body of
//! several top-level values separated by whitespace (JSON lines) or record separators (RFC 7464
//! JSON text sequences) is accepted, as are a leading byte order mark, `NaN`, `Infinity` and
//! `-Infinity` (Python's `json.dumps` writes them) and lone surrogate escapes (`JSON.stringify`
//! writes them): what the client's own parser may accept, tollgate must read rather than give
//! up its key rules on.
//!
//! What is masked:
//! - **by key** (the target's `json_keys`, see [`JsonKey`]): the whole value selected, with the
//!   key's style. A string becomes its masked form; a **number** becomes a masked *string*
//!   (`"card": 4111111111111111` → `"card": "[REDACTED]"`): a card number sent as a JSON number
//!   is masked only when its key matches, the detectors never look inside numbers. `true`,
//!   `false`, `null` and empty strings are kept. An object or array selected has every string
//!   and number inside it masked.
//! - **by detectors**: inside every string value (never inside keys).
use crate::{
    masking::{MaskCounts, Masker, REDACTED},
    policy::{JsonKey, JsonStep, json_key_for},
};

/// Deepest nesting accepted; deeper bodies are not JSON tollgate masks.
pub const MAX_DEPTH: usize = 256;

/// Why a body is not JSON (it is then handled as text).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not JSON at byte {at}: {what}")]
pub struct NotJson {
    /// Byte offset.
    pub at: usize,
    /// What was expected.
    pub what: &'static str,
}

/// One step of the path of a value inside the document (owned form of [`JsonStep`]).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

/// Masks `text` (a JSON body). `Ok(None)` when nothing changed, `Err` when it is not JSON.
pub fn mask(
    text: &str,
    keys: &[JsonKey],
    masker: &Masker,
    counts: &mut MaskCounts,
) -> Result<Option<String>, NotJson> {
    let mut scan = Scan {
        text,
        bytes: text.as_bytes(),
        pos: 0,
        out: String::new(),
        copied: 0,
        path: Vec::new(),
        keys,
        masker,
        counts: MaskCounts::default(),
        changed: false,
    };
    // A byte order mark is kept, as everything left alone is.
    if text.starts_with('\u{feff}') {
        scan.pos = '\u{feff}'.len_utf8();
    }
    scan.top_ws();
    if scan.pos == scan.bytes.len() {
        return Err(scan.fail("a value"));
    }
    while scan.pos < scan.bytes.len() {
        scan.value(None, 0)?;
        scan.top_ws();
    }
    // Counted only for a body that parsed: a rejected one is masked again as text.
    counts.add(&scan.counts);
    if !scan.changed {
        return Ok(None);
    }
    scan.out.push_str(&text[scan.copied..]);
    Ok(Some(scan.out))
}

struct Scan<'a, 'm> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    out: String,
    copied: usize,
    path: Vec<Step>,
    keys: &'m [JsonKey],
    masker: &'m Masker,
    counts: MaskCounts,
    changed: bool,
}

impl<'m> Scan<'_, 'm> {
    fn fail(&self, what: &'static str) -> NotJson {
        NotJson { at: self.pos, what }
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    /// Between top-level values: white space and RFC 7464's record separator.
    fn top_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r' | 0x1e) = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    fn expect(&mut self, b: u8, what: &'static str) -> Result<(), NotJson> {
        self.ws();
        if self.bytes.get(self.pos) == Some(&b) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.fail(what))
        }
    }

    /// The rule for the value at the current path, if one masks it whole.
    fn whole(&self) -> Option<&'m JsonKey> {
        if self.keys.is_empty() {
            return None;
        }
        let path: Vec<JsonStep<'_>> = self
            .path
            .iter()
            .map(|s| match s {
                Step::Key(k) => JsonStep::Key(k),
                Step::Index(i) => JsonStep::Index(*i),
            })
            .collect();
        json_key_for(self.keys, &path)
    }

    fn value(&mut self, forced: Option<&'m JsonKey>, depth: usize) -> Result<(), NotJson> {
        if depth > MAX_DEPTH {
            return Err(self.fail("less nesting"));
        }
        self.ws();
        let whole = forced.or_else(|| self.whole());
        match self.bytes.get(self.pos) {
            Some(b'{') => self.object(whole, depth),
            Some(b'[') => self.array(whole, depth),
            Some(b'"') => {
                let start = self.pos;
                let s = self.string()?;
                let masked = match whole {
                    Some(w) => self.mask_whole(w, &s),
                    None => self.masker.mask_text(&s, &mut self.counts),
                };
                if let Some(m) = masked {
                    self.replace(start, &m);
                }
                Ok(())
            }
            Some(b'-' | b'0'..=b'9' | b'N' | b'I') => {
                let start = self.pos;
                self.number()?;
                if let Some(w) = whole {
                    let n = self.text[start..self.pos].to_owned();
                    if let Some(m) = self.mask_whole(w, &n) {
                        self.replace(start, &m);
                    }
                }
                Ok(())
            }
            Some(b't') => self.literal("true"),
            Some(b'f') => self.literal("false"),
            Some(b'n') => self.literal("null"),
            _ => Err(self.fail("a value")),
        }
    }

    fn object(&mut self, whole: Option<&'m JsonKey>, depth: usize) -> Result<(), NotJson> {
        self.pos += 1;
        self.ws();
        if self.bytes.get(self.pos) == Some(&b'}') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            self.ws();
            if self.bytes.get(self.pos) != Some(&b'"') {
                return Err(self.fail("a key"));
            }
            let key = self.string()?;
            self.expect(b':', "':'")?;
            self.path.push(Step::Key(key));
            let r = self.value(whole, depth + 1);
            self.path.pop();
            r?;
            self.ws();
            match self.bytes.get(self.pos) {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(self.fail("',' or '}'")),
            }
        }
    }

    fn array(&mut self, whole: Option<&'m JsonKey>, depth: usize) -> Result<(), NotJson> {
        self.pos += 1;
        self.ws();
        if self.bytes.get(self.pos) == Some(&b']') {
            self.pos += 1;
            return Ok(());
        }
        let mut index = 0;
        loop {
            self.path.push(Step::Index(index));
            let r = self.value(whole, depth + 1);
            self.path.pop();
            r?;
            index += 1;
            self.ws();
            match self.bytes.get(self.pos) {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(self.fail("',' or ']'")),
            }
        }
    }

    fn literal(&mut self, word: &'static str) -> Result<(), NotJson> {
        if self.bytes[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(self.fail(word))
        }
    }

    fn number(&mut self) -> Result<(), NotJson> {
        let digits = |s: &mut Self| {
            let from = s.pos;
            while s.bytes.get(s.pos).is_some_and(u8::is_ascii_digit) {
                s.pos += 1;
            }
            s.pos > from
        };
        if self.bytes[self.pos..].starts_with(b"NaN") {
            self.pos += 3;
            return Ok(());
        }
        if self.bytes.get(self.pos) == Some(&b'-') {
            self.pos += 1;
        }
        if self.bytes[self.pos..].starts_with(b"Infinity") {
            self.pos += 8;
            return Ok(());
        }
        if !digits(self) {
            return Err(self.fail("digits"));
        }
        if self.bytes.get(self.pos) == Some(&b'.') {
            self.pos += 1;
            if !digits(self) {
                return Err(self.fail("digits after '.'"));
            }
        }
        if let Some(b'e' | b'E') = self.bytes.get(self.pos) {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.bytes.get(self.pos) {
                self.pos += 1;
            }
            if !digits(self) {
                return Err(self.fail("exponent digits"));
            }
        }
        Ok(())
    }

    /// Reads a string at `pos` (on its opening quote) and returns it decoded.
    fn string(&mut self) -> Result<String, NotJson> {
        self.pos += 1;
        let start = self.pos;
        // Fast path: no escape.
        while let Some(&b) = self.bytes.get(self.pos) {
            match b {
                b'"' => {
                    let s = self.text[start..self.pos].to_owned();
                    self.pos += 1;
                    return Ok(s);
                }
                b'\\' => break,
                0..=0x1f => return Err(self.fail("no control character in a string")),
                _ => self.pos += 1,
            }
        }
        let mut s = self.text[start..self.pos].to_owned();
        loop {
            match self.bytes.get(self.pos) {
                None => return Err(self.fail("end of string")),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(s);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let c = match self.bytes.get(self.pos) {
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        Some(b'u') => {
                            self.pos += 1;
                            let hi = self.hex4()?;
                            let mut code = hi;
                            if (0xD800..0xDC00).contains(&hi)
                                && self.bytes[self.pos..].starts_with(b"\\u")
                            {
                                let at = self.pos;
                                self.pos += 2;
                                let lo = self.hex4()?;
                                if (0xDC00..0xE000).contains(&lo) {
                                    code = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                                } else {
                                    // A lone high surrogate: the next escape is read on its own.
                                    self.pos = at;
                                }
                            }
                            // A lone surrogate cannot be a char: keep a replacement character.
                            s.push(char::from_u32(code).unwrap_or('\u{fffd}'));
                            continue;
                        }
                        _ => return Err(self.fail("a valid escape")),
                    };
                    s.push(c);
                    self.pos += 1;
                }
                Some(0..=0x1f) => return Err(self.fail("no control character in a string")),
                Some(_) => {
                    // Copy the run up to the next quote, escape or control character.
                    let from = self.pos;
                    while self
                        .bytes
                        .get(self.pos)
                        .is_some_and(|&b| b != b'"' && b != b'\\' && b >= 0x20)
                    {
                        self.pos += 1;
                    }
                    s.push_str(&self.text[from..self.pos]);
                }
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, NotJson> {
        let digits = self
            .text
            .get(self.pos..self.pos + 4)
            .ok_or_else(|| self.fail("four hex digits"))?;
        let v = u32::from_str_radix(digits, 16).map_err(|_| self.fail("four hex digits"))?;
        self.pos += 4;
        Ok(v)
    }

    /// The masked form of a value masked whole, `None` for an empty string (nothing to hide).
    fn mask_whole(&mut self, key: &JsonKey, value: &str) -> Option<String> {
        if value.is_empty() {
            return None;
        }
        let masked = key.style().apply(value, None);
        if masked == value {
            return None;
        }
        *self
            .counts
            .by_column
            .entry(key.as_str().to_owned())
            .or_default() += 1;
        Some(masked)
    }

    /// Replaces the value from `start` to `pos` with the JSON string `masked`.
    fn replace(&mut self, start: usize, masked: &str) {
        self.out.push_str(&self.text[self.copied..start]);
        // Serializing a &str cannot fail.
        self.out
            .push_str(&serde_json::to_string(masked).unwrap_or_else(|_| format!("\"{REDACTED}\"")));
        self.copied = self.pos;
        self.changed = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::masking::{Detector, Style};

    fn keys(patterns: &[&str]) -> Vec<JsonKey> {
        patterns
            .iter()
            .map(|p| JsonKey::new(p, Style::Redact).unwrap())
            .collect()
    }

    fn card_masker() -> Masker {
        Masker::detecting(Detector::Card, Style::Last4)
    }

    fn run(body: &str, k: &[JsonKey], m: &Masker) -> (String, MaskCounts) {
        let mut counts = MaskCounts::default();
        let out = mask(body, k, m, &mut counts).expect("json");
        (out.unwrap_or_else(|| body.to_owned()), counts)
    }

    #[test]
    fn by_key_glob_and_path() {
        let k = keys(&[
            "ssn",
            "*.card_number",
            "$.data.password",
            "$.items[*].token",
        ]);
        let m = Masker::default();
        // (body, want)
        let cases = [
            // Key name at any depth, case-insensitive; other keys untouched, spacing kept.
            (
                r#"{"SSN": "078-05-1120", "a": {"ssn":"x"}, "b": 1}"#,
                r#"{"SSN": "[REDACTED]", "a": {"ssn":"[REDACTED]"}, "b": 1}"#,
            ),
            // Dotted glob: card_number under some key, not at the top level.
            (
                r#"{"card_number":"1","p":{"card_number":"2"},"l":[{"card_number":"3"}]}"#,
                r#"{"card_number":"1","p":{"card_number":"[REDACTED]"},"l":[{"card_number":"[REDACTED]"}]}"#,
            ),
            // Path from the root only.
            (
                r#"{"password":"a","data":{"password":"b","x":{"password":"c"}}}"#,
                r#"{"password":"a","data":{"password":"[REDACTED]","x":{"password":"c"}}}"#,
            ),
            (
                r#"{"items":[{"token":"t1"},{"token":"t2","n":{"token":"t3"}}]}"#,
                r#"{"items":[{"token":"[REDACTED]"},{"token":"[REDACTED]","n":{"token":"t3"}}]}"#,
            ),
            // A number under a matching key becomes a masked string; booleans and null stay.
            (
                r#"{"ssn": 78051120, "x": {"ssn": true}, "y": {"ssn": null}}"#,
                r#"{"ssn": "[REDACTED]", "x": {"ssn": true}, "y": {"ssn": null}}"#,
            ),
            // An object or array under a matching key: every string and number inside.
            (
                r#"{"ssn": {"a": "1", "b": [2, "3", false]}}"#,
                r#"{"ssn": {"a": "[REDACTED]", "b": ["[REDACTED]", "[REDACTED]", false]}}"#,
            ),
            // Empty strings stay empty.
            (r#"{"ssn": ""}"#, r#"{"ssn": ""}"#),
        ];
        for (body, want) in cases {
            assert_eq!(run(body, &k, &m).0, want, "{body}");
        }
        let (_, counts) = run(
            r#"[{"ssn":"1"},{"ssn":"2"},{"p":{"card_number":3}}]"#,
            &k,
            &m,
        );
        assert_eq!(counts.by_column.get("ssn"), Some(&2));
        assert_eq!(counts.by_column.get("*.card_number"), Some(&1));
    }

    #[test]
    fn key_styles_apply() {
        let k = vec![JsonKey::new("*card*", Style::Last4).unwrap()];
        let (out, counts) = run(
            r#"{"Card":"4111 1111 1111 1111","cardnum":4111111111111111}"#,
            &k,
            &Masker::default(),
        );
        assert_eq!(
            out,
            r#"{"Card":"**** **** **** 1111","cardnum":"************1111"}"#
        );
        assert_eq!(counts.by_column.get("*card*"), Some(&2));
    }

    #[test]
    fn detectors_only_inside_strings() {
        let m = card_masker();
        let (out, counts) = run(
            r#"{"note":"pay with 4111111111111111 today","n":4111111111111111,"4111111111111111":"k"}"#,
            &[],
            &m,
        );
        // The string is masked; the number (no key rule) and the key are not.
        assert_eq!(
            out,
            r#"{"note":"pay with ************1111 today","n":4111111111111111,"4111111111111111":"k"}"#
        );
        assert_eq!(counts.by_detector.get("card"), Some(&1));
        // Escapes are decoded before detection and the masked string is re-encoded.
        let (out, _) = run(r#"["4111\u00201111 1111 1111\n\"q\""]"#, &[], &m);
        assert_eq!(out, r#"["**** **** **** 1111\n\"q\""]"#);
        // A key rule wins over the detectors for its value.
        let (out, _) = run(r#"{"ssn":"4111111111111111"}"#, &keys(&["ssn"]), &m);
        assert_eq!(out, r#"{"ssn":"[REDACTED]"}"#);
    }

    #[test]
    fn unchanged_bodies_are_none_and_lines_are_accepted() {
        let m = card_masker();
        let mut c = MaskCounts::default();
        assert_eq!(
            mask(
                r#" {"a": [1, 2.5e-3, -0, "x\u00e9"], "b": null} "#,
                &keys(&["z"]),
                &m,
                &mut c
            ),
            Ok(None)
        );
        assert!(c.is_empty());
        let (out, _) = run("{\"ssn\":\"1\"}\n{\"ssn\":\"2\"}\n", &keys(&["ssn"]), &m);
        assert_eq!(out, "{\"ssn\":\"[REDACTED]\"}\n{\"ssn\":\"[REDACTED]\"}\n");
    }

    /// What other parsers accept is read, so that key rules still apply: a byte order mark,
    /// RFC 7464 record separators, `NaN` and the infinities, lone surrogate escapes.
    #[test]
    fn lenient_spellings_keep_their_key_rules() {
        let k = keys(&["ssn"]);
        let m = Masker::default();
        let cases = [
            (
                "\u{feff}{\"ssn\":\"078-05-1120\"}",
                "\u{feff}{\"ssn\":\"[REDACTED]\"}",
            ),
            (
                "\u{1e}{\"ssn\":\"1\"}\n\u{1e}{\"ssn\":\"2\"}\n",
                "\u{1e}{\"ssn\":\"[REDACTED]\"}\n\u{1e}{\"ssn\":\"[REDACTED]\"}\n",
            ),
            (
                r#"{"x":NaN,"y":[Infinity,-Infinity],"ssn":"1"}"#,
                r#"{"x":NaN,"y":[Infinity,-Infinity],"ssn":"[REDACTED]"}"#,
            ),
            (r#"{"ssn":NaN}"#, r#"{"ssn":"[REDACTED]"}"#),
            (
                r#"{"name":"\ud83d\ud83d\ude00 \udc00","ssn":"1"}"#,
                r#"{"name":"\ud83d\ud83d\ude00 \udc00","ssn":"[REDACTED]"}"#,
            ),
        ];
        for (body, want) in cases {
            assert_eq!(run(body, &k, &m).0, want, "{body:?}");
        }
        // Still not JSON: these words spelled otherwise, a separator inside a value.
        for body in ["nan", "-NaN", "Inf", "{\"a\":\u{1e}1}"] {
            let mut c = MaskCounts::default();
            assert!(mask(body, &k, &m, &mut c).is_err(), "{body:?} accepted");
        }
    }

    #[test]
    fn malformed_is_not_json_and_counts_nothing() {
        let m = Masker::default();
        let k = keys(&["a"]);
        for body in [
            "",
            "   ",
            "{",
            r#"{"a" 1}"#,
            r#"{"a":1,}"#,
            "[1 2]",
            "01x",
            "\"unterminated",
            "\"bad \\x escape\"",
            "\"ctl \u{1} char\"",
            "tru",
            "{'a':1}",
            "-",
            "1.",
            r#"{"a":"x"} trailing"#,
        ] {
            let mut c = MaskCounts::default();
            assert!(mask(body, &k, &m, &mut c).is_err(), "{body:?} accepted");
            assert!(c.is_empty(), "{body:?} counted");
        }
        let deep = "[".repeat(MAX_DEPTH + 2) + &"]".repeat(MAX_DEPTH + 2);
        let mut c = MaskCounts::default();
        assert!(mask(&deep, &k, &m, &mut c).is_err());
    }
}
