//! The `_method` a form body gives: Rails (Rack's `MethodOverride`), Laravel, Symfony and
//! Express's `method-override` take a POSTed form's `_method` field as the request's method, so
//! `POST /orders/7` with the body `_method=DELETE` is a `DELETE` to them. A rule that allows the
//! POST and denies the DELETE must see that field, as it sees `?_method=` (see
//! [`super::readings`]).
//!
//! [`FormScan`] reads a request body as it streams, without holding it: the caller feeds each
//! chunk before forwarding it, so the upstream never has the whole body (and so never acts on
//! it) before the scan has seen every byte, and it holds back only the chunks of a `_method`
//! value that may go on in the next one ([`FormScan::holding`]).
//!
//! Bodies scanned: `application/x-www-form-urlencoded`, `multipart/*` (Rack parses every
//! multipart type), and a body without `Content-Type` read as urlencoded (Rack takes a POST
//! without one as a form). Field names are read as upstreams read query parameter names
//! ([`super::readings::is_method_param`]); a urlencoded body is split at `;` as well as `&` (as
//! Rack 2 did), a multipart part is named by `name` or `name*` in its `Content-Disposition`.
//! Fail closed: what the scan cannot read ([`Found::Unreadable`]) is denied, since an upstream
//! might read a `_method` in it. JSON bodies are not read (Laravel takes a JSON body's
//! `_method` too; see the README).
use memchr::{memchr, memchr2, memchr3};

use super::{path::decode_query_component, readings::is_method_param};

/// Longest `_method` value read, in bytes as sent; a longer one is unreadable.
pub const MAX_METHOD_VALUE: usize = 256;
/// Longest header block of a multipart part; a longer one is unreadable.
pub const MAX_PART_HEADERS: usize = 8192;

/// What a scan found in a body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// A `_method` field and its value (percent-decoded for a urlencoded body).
    Method(String),
    /// Something an upstream might read a `_method` in and the scan cannot: why.
    Unreadable(&'static str),
}

/// A streaming scan of one request body for `_method` fields.
#[derive(Debug)]
pub enum FormScan {
    /// A urlencoded form.
    Urlencoded(Urlencoded),
    /// A multipart body.
    Multipart(Multipart),
    /// A form body the scan cannot read (a content coding, conflicting types): one
    /// [`Found::Unreadable`] at the first chunk.
    Unreadable(Option<&'static str>),
}

impl FormScan {
    /// The scan for a request with these headers (names lowercase), or `None` when its body is
    /// not a form.
    pub fn of(headers: &[(String, String)]) -> Option<FormScan> {
        let types: Vec<&str> = headers
            .iter()
            .filter(|(k, _)| k == "content-type")
            .map(|(_, v)| v.as_str())
            .collect();
        let scan = match types.as_slice() {
            [] => FormScan::Urlencoded(Urlencoded::default()),
            [first, rest @ ..] => {
                // Upstreams differ on which of several types they take: if any is a form, the
                // body cannot be read one way for all of them.
                if rest.iter().any(|t| t != first) {
                    return types.iter().any(|t| Self::of_type(t).is_some()).then_some(
                        FormScan::Unreadable(Some("conflicting Content-Type headers")),
                    );
                }
                Self::of_type(first)?
            }
        };
        let coded = headers.iter().any(|(k, v)| {
            k == "content-encoding"
                && v.split(',')
                    .any(|c| !c.trim().is_empty() && !c.trim().eq_ignore_ascii_case("identity"))
        });
        if coded {
            return Some(FormScan::Unreadable(Some(
                "a form body with a content coding",
            )));
        }
        Some(scan)
    }

    fn of_type(value: &str) -> Option<FormScan> {
        let mut params = value.split(';');
        let media = params.next().unwrap_or_default().trim();
        if media.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
            return Some(FormScan::Urlencoded(Urlencoded::default()));
        }
        let (kind, _) = media.split_once('/')?;
        if !kind.eq_ignore_ascii_case("multipart") {
            return None;
        }
        let boundary = params.find_map(|p| {
            let (k, v) = p.split_once('=')?;
            k.trim()
                .eq_ignore_ascii_case("boundary")
                .then(|| v.trim().trim_matches('"').to_owned())
        });
        Some(match boundary {
            Some(b) if !b.is_empty() => FormScan::Multipart(Multipart::new(b.as_bytes())),
            // No upstream can split it into parts: no field in it is read.
            _ => return None,
        })
    }

    /// Scans the next chunk of the body; what it completes goes to `out`.
    pub fn feed(&mut self, data: &[u8], out: &mut Vec<Found>) {
        match self {
            FormScan::Urlencoded(u) => u.feed(data, out),
            FormScan::Multipart(m) => m.feed(data, out),
            FormScan::Unreadable(why) => {
                if let Some(why) = why.take() {
                    out.push(Found::Unreadable(why));
                }
            }
        }
    }

    /// The body ended: what was still open goes to `out`.
    pub fn finish(&mut self, out: &mut Vec<Found>) {
        match self {
            FormScan::Urlencoded(u) => u.end_field(out),
            FormScan::Multipart(m) => m.finish(out),
            FormScan::Unreadable(why) => {
                if let Some(why) = why.take() {
                    out.push(Found::Unreadable(why));
                }
            }
        }
    }

    /// Whether the scan is inside a `_method` value that the next bytes may go on with: the
    /// chunks it is in must not be forwarded yet.
    pub fn holding(&self) -> bool {
        match self {
            FormScan::Urlencoded(u) => u.in_value && u.method && !u.over,
            FormScan::Multipart(m) => m.state == State::Body && m.capture,
            FormScan::Unreadable(_) => false,
        }
    }
}

/// Decoded bytes of a urlencoded name kept (after its leading spaces): enough to tell a longer
/// name that is `_method` to PHP (cut at a NUL or `[` right after it) from one that is not.
const NAME_PREFIX: usize = 16;

/// The state of a urlencoded scan: the field being read.
#[derive(Debug, Default)]
pub struct Urlencoded {
    /// The name's first [`NAME_PREFIX`] decoded bytes after its leading spaces.
    name: Vec<u8>,
    /// The name is longer than that.
    long_name: bool,
    /// An escape under way in the name: `%` and what followed it, as sent.
    escape: Vec<u8>,
    /// Past the field's `=`.
    in_value: bool,
    /// The field is a `_method`.
    method: bool,
    /// Its value so far, as sent.
    value: Vec<u8>,
    /// The value went past [`MAX_METHOD_VALUE`] (reported once).
    over: bool,
}

impl Urlencoded {
    fn feed(&mut self, mut data: &[u8], out: &mut Vec<Found>) {
        while !data.is_empty() {
            if self.in_value {
                let stop = memchr2(b'&', b';', data);
                if self.method {
                    self.push_value(&data[..stop.unwrap_or(data.len())], out);
                }
                let Some(i) = stop else { return };
                self.end_field(out);
                data = &data[i + 1..];
            } else {
                let stop = memchr3(b'&', b';', b'=', data);
                for &c in &data[..stop.unwrap_or(data.len())] {
                    self.name_char(c);
                }
                let Some(i) = stop else { return };
                if data[i] == b'=' {
                    self.end_name();
                } else {
                    self.end_field(out);
                }
                data = &data[i + 1..];
            }
        }
    }

    /// One byte of the name as sent: `+` is a space, `%XY` a byte, a `%` without two hex
    /// digits after it itself (as [`decode_query_component`] reads it).
    fn name_char(&mut self, c: u8) {
        if self.escape.is_empty() && c != b'%' {
            self.name_byte(if c == b'+' { b' ' } else { c });
            return;
        }
        self.escape.push(c);
        if self.escape.len() < 3 {
            return;
        }
        let esc = std::mem::take(&mut self.escape);
        match (hex(esc[1]), hex(esc[2])) {
            (Some(hi), Some(lo)) => self.name_byte(hi << 4 | lo),
            _ => {
                self.name_byte(b'%');
                self.name_char(esc[1]);
                self.name_char(esc[2]);
            }
        }
    }

    fn name_byte(&mut self, b: u8) {
        if self.name.is_empty() && b == b' ' {
            // Leading spaces: PHP drops them.
        } else if self.name.len() == NAME_PREFIX {
            self.long_name = true;
        } else {
            self.name.push(b);
        }
    }

    fn end_name(&mut self) {
        // An escape cut short by the `=` is its bytes as they are.
        for c in std::mem::take(&mut self.escape) {
            self.name_byte(if c == b'+' { b' ' } else { c });
        }
        self.method = if self.long_name {
            // Longer than `_method`: it is one only when cut right after it.
            let cut = self
                .name
                .iter()
                .position(|&b| b == 0 || b == b'[')
                .map_or(&self.name[..0], |i| &self.name[..i]);
            is_method_param(&String::from_utf8_lossy(cut))
        } else {
            is_method_param(&String::from_utf8_lossy(&self.name))
        };
        self.in_value = true;
    }

    fn push_value(&mut self, bytes: &[u8], out: &mut Vec<Found>) {
        if self.over {
            return;
        }
        if self.value.len() + bytes.len() > MAX_METHOD_VALUE {
            self.over = true;
            self.value.clear();
            out.push(Found::Unreadable("a form's _method value too long"));
            return;
        }
        self.value.extend_from_slice(bytes);
    }

    fn end_field(&mut self, out: &mut Vec<Found>) {
        if self.in_value && self.method && !self.over {
            out.push(Found::Method(decode_query_component(
                &String::from_utf8_lossy(&self.value),
            )));
        }
        self.name.clear();
        self.long_name = false;
        self.escape.clear();
        self.in_value = false;
        self.method = false;
        self.value.clear();
        self.over = false;
    }
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// Where a multipart scan is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the first delimiter.
    Preamble,
    /// In a part's header block.
    Headers,
    /// In a part's body, or after the close delimiter (a part may follow it all the same).
    Body,
}

/// The state of a multipart scan, read line by line: a delimiter (`--boundary`) starts a line.
#[derive(Debug)]
pub struct Multipart {
    /// `--` and the boundary.
    delim: Vec<u8>,
    state: State,
    /// The current line's first bytes (all of it in a header block or a `_method` value).
    line: Vec<u8>,
    /// The current part's header block so far.
    headers: Vec<u8>,
    /// The header block went past its limit (reported once per part).
    over: bool,
    /// The current part is a `_method`.
    capture: bool,
    /// Its value so far, line breaks included.
    value: Vec<u8>,
    /// In the preamble, its last bytes (fewer than the delimiter's): the first delimiter may
    /// start in one chunk and end in the next.
    tail: Vec<u8>,
}

impl Multipart {
    fn new(boundary: &[u8]) -> Self {
        let mut delim = b"--".to_vec();
        delim.extend_from_slice(boundary);
        Self {
            delim,
            state: State::Preamble,
            line: Vec::new(),
            headers: Vec::new(),
            over: false,
            capture: false,
            value: Vec::new(),
            tail: Vec::new(),
        }
    }

    fn feed(&mut self, mut data: &[u8], out: &mut Vec<Found>) {
        if self.state == State::Preamble {
            match self.first_delimiter(data) {
                Some(after) => data = after,
                None => return,
            }
        }
        while !data.is_empty() {
            let nl = memchr(b'\n', data);
            let end = nl.map_or(data.len(), |i| i + 1);
            self.keep(&data[..end], out);
            if nl.is_some() {
                self.end_line(out);
            }
            data = &data[end..];
        }
    }

    /// In the preamble: what follows the first delimiter in `data`, if it ends there. Rack
    /// takes the first delimiter wherever it is, not only at the start of a line; so does this
    /// (the delimiter is then read as the start of a line).
    fn first_delimiter<'d>(&mut self, data: &'d [u8]) -> Option<&'d [u8]> {
        let mut hay = std::mem::take(&mut self.tail);
        let before = hay.len();
        hay.extend_from_slice(data);
        match memchr::memmem::find(&hay, &self.delim) {
            Some(i) => {
                self.state = State::Body;
                self.line.clone_from(&self.delim);
                Some(&data[i + self.delim.len() - before..])
            }
            None => {
                let keep = hay.len().min(self.delim.len() - 1);
                self.tail = hay.split_off(hay.len() - keep);
                None
            }
        }
    }

    /// How much of a line is kept: enough to tell a delimiter, and all of a header or
    /// `_method` line up to their limits.
    fn keep(&mut self, bytes: &[u8], out: &mut Vec<Found>) {
        let room = match self.state {
            State::Headers => MAX_PART_HEADERS + 2,
            State::Body if self.capture => MAX_METHOD_VALUE + 2,
            _ => self.delim.len() + 2,
        }
        .saturating_sub(self.line.len());
        self.line.extend_from_slice(&bytes[..bytes.len().min(room)]);
        if bytes.len() > room && self.state == State::Body && self.capture {
            self.capture = false;
            out.push(Found::Unreadable("a form's _method value too long"));
        }
    }

    fn end_line(&mut self, out: &mut Vec<Found>) {
        let line = std::mem::take(&mut self.line);
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        if text.starts_with(&self.delim) {
            // A delimiter, in any state (a header block cut short, the epilogue included); what
            // follows the boundary is read as padding, so a longer boundary that shares this
            // prefix counts too (more parts read, never fewer).
            self.end_part(out);
            let close = text[self.delim.len()..].starts_with(b"--");
            self.state = if close { State::Body } else { State::Headers };
            self.line = line;
            self.line.clear();
            return;
        }
        match self.state {
            State::Preamble => {}
            State::Headers if text.is_empty() => {
                self.capture = !self.over && names_method(&self.headers);
                self.headers.clear();
                self.over = false;
                self.state = State::Body;
            }
            State::Headers => {
                if self.over {
                } else if self.headers.len() + line.len() > MAX_PART_HEADERS {
                    self.over = true;
                    out.push(Found::Unreadable("a form part's headers too long"));
                } else {
                    self.headers.extend_from_slice(&line);
                }
            }
            State::Body if self.capture => {
                if self.value.len() + line.len() > MAX_METHOD_VALUE + 2 {
                    self.capture = false;
                    out.push(Found::Unreadable("a form's _method value too long"));
                } else {
                    self.value.extend_from_slice(&line);
                }
            }
            State::Body => {}
        }
        self.line = line;
        self.line.clear();
    }

    /// A delimiter or the end: the `_method` part being read is complete (its last line break
    /// belongs to the delimiter).
    fn end_part(&mut self, out: &mut Vec<Found>) {
        if self.state == State::Body && self.capture {
            let v = self.value.strip_suffix(b"\n").unwrap_or(&self.value);
            let v = v.strip_suffix(b"\r").unwrap_or(v);
            out.push(Found::Method(String::from_utf8_lossy(v).into_owned()));
        }
        self.capture = false;
        self.value.clear();
        self.headers.clear();
        self.over = false;
    }

    fn finish(&mut self, out: &mut Vec<Found>) {
        // A last line without a line break.
        if !self.line.is_empty() {
            self.end_line(out);
        }
        // No close delimiter: what was read is the value, as a lenient parser reads it.
        self.end_part(out);
    }
}

/// Whether a part's header block names it `_method`: any `name` or `name*` parameter of any
/// `Content-Disposition` (header lines folded).
fn names_method(block: &[u8]) -> bool {
    let text = String::from_utf8_lossy(block);
    let mut headers: Vec<String> = Vec::new();
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.starts_with([' ', '\t']) {
            if let Some(last) = headers.last_mut() {
                last.push_str(line);
            }
        } else if !line.is_empty() {
            headers.push(line.to_owned());
        }
    }
    headers.iter().any(|h| {
        let Some((name, value)) = h.split_once(':') else {
            return false;
        };
        name.trim().eq_ignore_ascii_case("content-disposition")
            && disposition_names(value).iter().any(|n| is_method_param(n))
    })
}

/// The `name` and `name*` parameters of a `Content-Disposition` value: quoted strings
/// unescaped, an RFC 8187 value percent-decoded.
fn disposition_names(value: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = value;
    while let Some(i) = rest.find(';') {
        rest = &rest[i + 1..];
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let key = key.trim();
        let after = after.trim_start_matches([' ', '\t']);
        let (v, next) = if let Some(quoted) = after.strip_prefix('"') {
            let mut v = String::new();
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((j, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, e)) = chars.next() {
                            v.push(e);
                        }
                    }
                    '"' => {
                        end = j + 1;
                        break;
                    }
                    c => v.push(c),
                }
            }
            (v, &quoted[end..])
        } else {
            let end = after.find(';').unwrap_or(after.len());
            (after[..end].trim().to_owned(), &after[end..])
        };
        if key.eq_ignore_ascii_case("name") {
            names.push(v);
        } else if key.eq_ignore_ascii_case("name*") {
            let encoded = v.splitn(3, '\'').nth(2).unwrap_or(&v);
            names.push(percent_decode(encoded));
        }
        rest = next;
    }
    names
}

/// Percent-decoded (`+` kept), invalid escapes kept.
fn percent_decode(s: &str) -> String {
    decode_query_component(&s.replace('+', "%2B"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// The whole body fed in chunks of `n` bytes: what the scan found, and whether it held
    /// after each chunk.
    fn scan_in(ct: Option<&str>, body: &[u8], n: usize) -> (Vec<Found>, Vec<bool>) {
        let h = ct
            .map(|t| headers(&[("content-type", t)]))
            .unwrap_or_default();
        let mut scan = FormScan::of(&h).expect("a form");
        let mut out = Vec::new();
        let mut held = Vec::new();
        for chunk in body.chunks(n) {
            scan.feed(chunk, &mut out);
            held.push(scan.holding());
        }
        scan.finish(&mut out);
        (out, held)
    }

    /// Found the same, whatever the chunking.
    fn scan(ct: Option<&str>, body: &str) -> Vec<Found> {
        let whole = scan_in(ct, body.as_bytes(), body.len().max(1)).0;
        for n in 1..=7 {
            assert_eq!(scan_in(ct, body.as_bytes(), n).0, whole, "chunks of {n}");
        }
        whole
    }

    fn method(m: &str) -> Found {
        Found::Method(m.to_owned())
    }

    const FORM: Option<&str> = Some("application/x-www-form-urlencoded");

    #[test]
    fn urlencoded_method_fields_under_every_spelling() {
        assert_eq!(scan(FORM, "a=1&_method=DELETE&b=2"), [method("DELETE")]);
        assert_eq!(scan(FORM, "_method=delete"), [method("delete")]);
        // Percent-encoded name, `+` and PHP's spellings; `;` splits as Rack 2 split it.
        assert_eq!(scan(FORM, "%5Fmethod=PUT"), [method("PUT")]);
        assert_eq!(scan(FORM, "x=1;_method=PATCH"), [method("PATCH")]);
        assert_eq!(
            scan(FORM, "+_method=A&.method=B&_METHOD[]=C"),
            [method("A"), method("B"), method("C")]
        );
        assert_eq!(scan(FORM, "_method=DE%4CETE+X"), [method("DELETE X")]);
        // Not a `_method`: other names, a name alone, a value that only looks like one.
        assert_eq!(scan(FORM, "method=DELETE&x=_method%3DDELETE&_method"), []);
        assert_eq!(scan(FORM, ""), []);
    }

    #[test]
    fn a_body_without_content_type_is_read_as_urlencoded() {
        assert_eq!(scan(None, "_method=DELETE"), [method("DELETE")]);
        let h = headers(&[("content-type", "application/json")]);
        assert!(FormScan::of(&h).is_none());
        let h = headers(&[(
            "content-type",
            "Application/X-WWW-Form-Urlencoded; charset=utf-8",
        )]);
        assert!(matches!(FormScan::of(&h), Some(FormScan::Urlencoded(_))));
    }

    #[test]
    fn a_method_value_is_held_until_it_ends() {
        let (found, held) = scan_in(FORM, b"a=1&_method=DEL", 5);
        // "a=1&_", "metho", "d=DEL": held from where the value starts, to the end.
        assert_eq!(held, [false, false, true]);
        assert_eq!(found, [method("DEL")]);
        let (_, held) = scan_in(FORM, b"_method=X&b=22222", 10);
        assert_eq!(held, [false, false]);
    }

    #[test]
    fn long_names_are_read_without_being_kept() {
        let pad = |c: &str| c.repeat(10_000);
        assert_eq!(scan(FORM, &format!("{}=1", pad("a"))), []);
        // Leading spaces however many, a NUL or an array right after `_method`.
        assert_eq!(scan(FORM, &format!("{}_method=A", pad("+"))), [method("A")]);
        assert_eq!(
            scan(FORM, &format!("_method%00{}=B", pad("x"))),
            [method("B")]
        );
        assert_eq!(
            scan(FORM, &format!("_method[{}]=C", pad("k"))),
            [method("C")]
        );
        assert_eq!(scan(FORM, &format!("_methodx{}=D", pad("x"))), []);
        // A whole body without a separator (a file posted with curl -d) is one long name.
        assert_eq!(
            scan_in(FORM, pad("z").as_bytes(), 4096),
            (vec![], vec![false; 3])
        );
        // Escapes cut by the chunking or by the `=`, and invalid ones.
        assert_eq!(scan(FORM, "%5f%6Dethod=E&%5=F&%%5Fmethod=G"), [method("E")]);
    }

    #[test]
    fn an_over_long_method_value_is_unreadable() {
        let long = format!("_method={}&_method=GET", "A".repeat(MAX_METHOD_VALUE + 1));
        assert_eq!(
            scan(FORM, &long),
            [
                Found::Unreadable("a form's _method value too long"),
                method("GET")
            ]
        );
        // Long values of other fields are skipped, not kept.
        let long = format!("data={}&_method=GET", "x".repeat(100_000));
        assert_eq!(scan_in(FORM, long.as_bytes(), 4096).0, [method("GET")]);
    }

    const MP: Option<&str> = Some("multipart/form-data; boundary=XyZ");

    fn part(name_header: &str, body: &str) -> String {
        format!("--XyZ\r\nContent-Disposition: {name_header}\r\n\r\n{body}\r\n")
    }

    #[test]
    fn multipart_method_parts() {
        let body = format!(
            "preamble\r\n{}{}{}--XyZ--\r\nepilogue",
            part("form-data; name=\"title\"", "hello\r\n--XyZ-not"),
            part("form-data; name=\"_method\"", "PATCH"),
            part(
                "form-data; name=\"file\"; filename=\"_method\"",
                "binary\n\0data"
            ),
        );
        assert_eq!(scan(MP, &body), [method("PATCH")]);
        // Unquoted, RFC 8187, folded, lowercase header, LF line breaks, a multi-line value.
        let body = "--XyZ\ncontent-disposition: form-data;\n name=_method\n\nPUT\n--XyZ\r\n\
                    Content-Disposition: form-data; name*=UTF-8''%5Fmethod\r\n\r\nA\r\nB\r\n--XyZ--";
        assert_eq!(scan(MP, body), [method("PUT"), method("A\r\nB")]);
        // A quoted boundary; a part without a close delimiter.
        let ct = Some("multipart/mixed; boundary=\"XyZ\"");
        assert_eq!(
            scan(ct, &part("form-data; name=\"_method\"", "DELETE")),
            [method("DELETE")]
        );
        assert_eq!(
            scan(
                MP,
                "--XyZ\r\nContent-Disposition: form-data; name=_method\r\n\r\nGET"
            ),
            [method("GET")]
        );
        // No boundary: no upstream reads a field of it.
        let h = headers(&[("content-type", "multipart/form-data")]);
        assert!(FormScan::of(&h).is_none());
    }

    #[test]
    fn the_first_delimiter_anywhere_and_parts_after_the_close() {
        // Rack finds the first delimiter in the middle of the preamble's line.
        let body = format!("junk--XyZ\r\n{}", part("form-data; name=_method", "PUT"));
        let body = body.replacen("--XyZ\r\nContent", "Content", 1);
        assert_eq!(scan(MP, &body), [method("PUT")]);
        assert_eq!(scan(MP, "no delimiter at all -XyZ --Xy"), []);
        // A part after the close delimiter is read too.
        let body = format!("--XyZ--\r\n{}", part("form-data; name=_method", "PUT"));
        assert_eq!(scan(MP, &body), [method("PUT")]);
    }

    #[test]
    fn a_delimiter_ends_a_header_block_cut_short() {
        // The first part never ends its headers; the second is a `_method` all the same.
        let body = format!(
            "--XyZ\r\nContent-Disposition: form-data; name=a\r\n{}--XyZ--",
            part("form-data; name=_method", "DELETE")
        );
        assert_eq!(scan(MP, &body), [method("DELETE")]);
    }

    #[test]
    fn multipart_limits_are_unreadable() {
        let big = format!("X-Pad: {}", "p".repeat(MAX_PART_HEADERS));
        let body = format!(
            "--XyZ\r\n{big}\r\nContent-Disposition: form-data; name=_method\r\n\r\nDELETE\r\n--XyZ--"
        );
        assert_eq!(
            scan(MP, &body),
            [Found::Unreadable("a form part's headers too long")]
        );
        let body = part("form-data; name=_method", &"A".repeat(MAX_METHOD_VALUE + 3));
        assert_eq!(
            scan(MP, &body),
            [Found::Unreadable("a form's _method value too long")]
        );
        // A big file part is neither kept nor a problem.
        let body = format!(
            "{}{}--XyZ--",
            part("form-data; name=f; filename=a", &"z".repeat(200_000)),
            part("form-data; name=_method", "PUT")
        );
        assert_eq!(scan_in(MP, body.as_bytes(), 8192).0, [method("PUT")]);
    }

    #[test]
    fn a_multipart_method_value_is_held_until_its_delimiter() {
        let body = part("form-data; name=_method", "PUT");
        let cut = body.find("PUT").unwrap();
        let (b1, b2) = body.as_bytes().split_at(cut);
        let mut scan = FormScan::of(&headers(&[("content-type", MP.unwrap())])).unwrap();
        let mut out = Vec::new();
        scan.feed(b1, &mut out);
        assert!(scan.holding(), "the value starts in the next chunk");
        scan.feed(b2, &mut out);
        assert!(scan.holding(), "its delimiter has not come");
        scan.feed(b"--XyZ--\r\n", &mut out);
        assert!(!scan.holding());
        assert_eq!(out, [method("PUT")]);
    }

    #[test]
    fn coded_or_conflicting_forms_are_unreadable() {
        let h = headers(&[
            ("content-type", "application/x-www-form-urlencoded"),
            ("content-encoding", "gzip"),
        ]);
        let mut s = FormScan::of(&h).unwrap();
        let mut out = Vec::new();
        s.feed(b"\x1f\x8b", &mut out);
        s.feed(b"more", &mut out);
        assert_eq!(
            out,
            [Found::Unreadable("a form body with a content coding")]
        );
        let h = headers(&[
            ("content-type", "text/plain"),
            ("content-type", "application/x-www-form-urlencoded"),
        ]);
        assert!(matches!(FormScan::of(&h), Some(FormScan::Unreadable(_))));
        let h = headers(&[("content-type", "text/plain"), ("content-type", "text/csv")]);
        assert!(FormScan::of(&h).is_none());
        let h = headers(&[("content-type", "text/plain"), ("content-encoding", "gzip")]);
        assert!(FormScan::of(&h).is_none());
    }
}
