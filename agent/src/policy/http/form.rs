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
//! multipart type, and a multipart type without a boundary as urlencoded), and a POST without a
//! media type read as urlencoded (Rack takes it as a form). Where readers differ, the scan reads
//! every way or gives up:
//! - field names are read as upstreams read query parameter names
//!   ([`super::readings::is_method_param`]);
//! - a urlencoded body is read split at `&` (PHP, Rack, Express) and split at `&` and `;` (Go
//!   before 1.17, Python before 3.9.2);
//! - a multipart part is a `_method` if any `name` or `name*` in a header ending in
//!   `Content-Disposition`, or its `Content-ID`, says so; the first delimiter may be anywhere
//!   (Rack), and parts after the close delimiter count;
//! - a boundary given twice, with `,` or white space, or with space before its `=`, a part
//!   header line without CR LF, and a delimiter inside a header block are unreadable.
//!
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
    /// A urlencoded form, read split at `&` (as PHP, Rack and Express read bodies) and at `&`
    /// and `;` (as Go before 1.17 and Python before 3.9.2 did).
    Urlencoded(Box<[Urlencoded; 2]>),
    /// A multipart body.
    Multipart(Multipart),
    /// A form body the scan cannot read (a content coding, conflicting types): one
    /// [`Found::Unreadable`] at the first chunk.
    Unreadable(Option<&'static str>),
}

impl FormScan {
    /// The scan for a request with this method and these headers (names lowercase), or `None`
    /// when its body is not a form.
    pub fn of(method: &str, headers: &[(String, String)]) -> Option<FormScan> {
        let types: Vec<&str> = headers
            .iter()
            .filter(|(k, _)| k == "content-type")
            .map(|(_, v)| v.as_str())
            .collect();
        let coded = headers.iter().any(|(k, v)| {
            k == "content-encoding"
                && v.split(',')
                    .any(|c| !c.trim().is_empty() && !c.trim().eq_ignore_ascii_case("identity"))
        });
        let scan = match types.as_slice() {
            [] => Self::untyped(method, coded)?,
            [first, rest @ ..] => {
                // Upstreams differ on which of several types they take: if any is a form, the
                // body cannot be read one way for all of them.
                if rest.iter().any(|t| t != first) {
                    return types
                        .iter()
                        .any(|t| Self::of_type(method, t, false).is_some())
                        .then_some(FormScan::Unreadable(Some(
                            "conflicting Content-Type headers",
                        )));
                }
                Self::of_type(method, first, coded)?
            }
        };
        if coded && !matches!(scan, FormScan::Unreadable(_)) {
            return Some(FormScan::Unreadable(Some(
                "a form body with a content coding",
            )));
        }
        Some(scan)
    }

    /// Rack reads a POST without a media type as a form (and does not decode a coded one).
    fn untyped(method: &str, coded: bool) -> Option<FormScan> {
        (method.eq_ignore_ascii_case("POST") && !coded).then(FormScan::urlencoded)
    }

    fn urlencoded() -> FormScan {
        FormScan::Urlencoded(Box::new([Urlencoded::new(false), Urlencoded::new(true)]))
    }

    fn of_type(method: &str, value: &str, coded: bool) -> Option<FormScan> {
        // The media type ends at `;`, and for some readers at `,` or white space.
        let value = value.trim_start_matches([' ', '\t']);
        let end = value.find([';', ',', ' ', '\t']).unwrap_or(value.len());
        let media = &value[..end];
        if media.is_empty() {
            return Self::untyped(method, coded);
        }
        if media.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
            return Some(FormScan::urlencoded());
        }
        let (kind, _) = media.split_once('/')?;
        if !kind.eq_ignore_ascii_case("multipart") {
            return None;
        }
        Some(match boundary(&value[end..]) {
            Ok(Some(b)) => FormScan::Multipart(Multipart::new(b.as_bytes())),
            // Without a boundary Rack reads the body as urlencoded.
            Ok(None) => FormScan::urlencoded(),
            Err(why) => FormScan::Unreadable(Some(why)),
        })
    }

    /// Scans the next chunk of the body; what it completes goes to `out`.
    pub fn feed(&mut self, data: &[u8], out: &mut Vec<Found>) {
        match self {
            FormScan::Urlencoded(u) => {
                let start = out.len();
                u.iter_mut().for_each(|u| u.feed(data, out));
                dedup_from(out, start);
            }
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
            FormScan::Urlencoded(u) => {
                let start = out.len();
                u.iter_mut().for_each(|u| u.end_field(out));
                dedup_from(out, start);
            }
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
            FormScan::Urlencoded(u) => u.iter().any(|u| u.in_value && u.method && !u.over),
            FormScan::Multipart(m) => m.state == State::Body && m.capture,
            FormScan::Unreadable(_) => false,
        }
    }
}

/// Drops repeats among `out[start..]` (the two urlencoded readings mostly agree).
fn dedup_from(out: &mut Vec<Found>, start: usize) {
    let mut i = start;
    while i < out.len() {
        if out[start..i].contains(&out[i]) {
            out.remove(i);
        } else {
            i += 1;
        }
    }
}

/// The `boundary` of a multipart type's parameters: `None` when there is none (or it is empty).
/// Readers differ on a second one, on a `,` or white space in it, and on space before it (Rack
/// takes the last and keeps a leading space, PHP the first and cuts at `,`): such a boundary is
/// unreadable.
fn boundary(params: &str) -> Result<Option<String>, &'static str> {
    const AMBIGUOUS: &str = "an ambiguous multipart boundary";
    let lower = params.to_ascii_lowercase();
    let mut at = lower.match_indices("boundary");
    let Some((i, _)) = at.next() else {
        return Ok(None);
    };
    if at.next().is_some() {
        return Err(AMBIGUOUS);
    }
    // `boundary =`: PHP skips to the `=`, Rack sees no boundary (and reads a urlencoded body).
    let Some(v) = params[i + "boundary".len()..].strip_prefix('=') else {
        return Err(AMBIGUOUS);
    };
    let v = match v.strip_prefix('"') {
        Some(q) => q.split('"').next().unwrap_or_default(),
        None => v.split(';').next().unwrap_or_default().trim_end(),
    };
    if v.contains([',', ' ', '\t']) {
        return Err(AMBIGUOUS);
    }
    Ok((!v.is_empty()).then(|| v.to_owned()))
}

/// Decoded bytes of a urlencoded name kept (after its leading spaces): enough to tell a longer
/// name that is `_method` to PHP (cut at a NUL or `[` right after it) from one that is not.
const NAME_PREFIX: usize = 16;

/// The state of a urlencoded scan: the field being read.
#[derive(Debug, Default)]
pub struct Urlencoded {
    /// `;` separates fields too.
    semicolons: bool,
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
    fn new(semicolons: bool) -> Self {
        Self {
            semicolons,
            ..Self::default()
        }
    }

    /// Where the current field ends in `data`, or its name (`=`) when `name` is set.
    fn stop(&self, data: &[u8], name: bool) -> Option<usize> {
        match (self.semicolons, name) {
            (true, true) => memchr3(b'&', b';', b'=', data),
            (true, false) => memchr2(b'&', b';', data),
            (false, true) => memchr2(b'&', b'=', data),
            (false, false) => memchr(b'&', data),
        }
    }

    fn feed(&mut self, mut data: &[u8], out: &mut Vec<Found>) {
        while !data.is_empty() {
            if self.in_value {
                let stop = self.stop(data, false);
                if self.method {
                    self.push_value(&data[..stop.unwrap_or(data.len())], out);
                }
                let Some(i) = stop else { return };
                self.end_field(out);
                data = &data[i + 1..];
            } else {
                let stop = self.stop(data, true);
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
            State::Body if self.capture => MAX_METHOD_VALUE.max(self.delim.len()) + 2,
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
            if self.state == State::Headers {
                // Rack reads one header block across it: read neither way.
                out.push(Found::Unreadable(
                    "a form part's headers cut by a delimiter",
                ));
            }
            self.end_part(out);
            let close = text[self.delim.len()..].starts_with(b"--");
            self.state = if close { State::Body } else { State::Headers };
            self.line = line;
            self.line.clear();
            return;
        }
        match self.state {
            State::Preamble => {}
            State::Headers if text.is_empty() && !self.over && line.as_slice() == b"\n" => {
                self.over = true;
                out.push(Found::Unreadable("a form part's header line without CR LF"));
                self.headers.clear();
                self.state = State::Body;
            }
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
                } else if !line.ends_with(b"\r\n") {
                    // Readers differ on where a header block with bare LF line breaks ends
                    // (Rack waits for CR LF CR LF).
                    self.over = true;
                    out.push(Found::Unreadable("a form part's header line without CR LF"));
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

/// Whether a part's header block may name it `_method` to some reader (header lines folded):
/// any `name` or `name*` in a header whose name ends in `Content-Disposition` (Rack 2 read
/// `X-Content-Disposition` too), anywhere in its value (quoted or not, after a `;` or not), or
/// its `Content-ID` (Rack names a part without a name by it).
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
        let name = name.trim().to_ascii_lowercase();
        if name == "content-id" {
            let id = value.trim().trim_start_matches('<').trim_end_matches('>');
            return is_method_param(id);
        }
        name.ends_with("content-disposition")
            && disposition_names(value).iter().any(|n| is_method_param(n))
    })
}

/// Every value given to `name` or `name*` anywhere in a `Content-Disposition` value (`filename`
/// included: more names read, never fewer): quoted with `"` (escapes undone) or `'`, or bare up
/// to `;` or white space; an RFC 8187 value also percent-decoded.
fn disposition_names(value: &str) -> Vec<String> {
    let lower = value.to_ascii_lowercase();
    let mut names = Vec::new();
    for (i, _) in lower.match_indices("name") {
        let rest = &value[i + 4..];
        let (star, rest) = match rest.strip_prefix('*') {
            Some(r) => (true, r),
            None => (false, rest),
        };
        let Some(rest) = rest.trim_start_matches([' ', '\t']).strip_prefix('=') else {
            continue;
        };
        let rest = rest.trim_start_matches([' ', '\t']);
        let v = if let Some(q) = rest.strip_prefix('"') {
            let mut v = String::new();
            let mut chars = q.chars();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => v.extend(chars.next()),
                    '"' => break,
                    c => v.push(c),
                }
            }
            v
        } else if let Some(q) = rest.strip_prefix('\'') {
            q.split('\'').next().unwrap_or_default().to_owned()
        } else {
            let end = rest.find([';', ' ', '\t']).unwrap_or(rest.len());
            rest[..end].to_owned()
        };
        if star && let Some(encoded) = v.splitn(3, '\'').nth(2) {
            names.push(percent_decode(encoded));
        }
        names.push(v);
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
        let mut scan = FormScan::of("POST", &h).expect("a form");
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
        // Split at `&` only, PHP cuts this name at its NUL.
        assert_eq!(scan(FORM, "_method%00;=DELETE"), [method("DELETE")]);
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
        // Only a POST (as Rack reads it), and not a coded one.
        assert!(FormScan::of("PUT", &[]).is_none());
        let gz = headers(&[("content-encoding", "gzip")]);
        assert!(FormScan::of("POST", &gz).is_none());
        let h = headers(&[("content-type", "application/json")]);
        assert!(FormScan::of("POST", &h).is_none());
        let h = headers(&[(
            "content-type",
            "Application/X-WWW-Form-Urlencoded; charset=utf-8",
        )]);
        assert!(matches!(
            FormScan::of("POST", &h),
            Some(FormScan::Urlencoded(_))
        ));
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
            part("form-data; name=\"title\"", "hello\r\n-XyZ"),
            part("form-data; name=\"_method\"", "PATCH"),
            part(
                "form-data; name=\"file\"; filename=\"a.bin\"",
                "binary\n\0data"
            ),
        );
        assert_eq!(scan(MP, &body), [method("PATCH")]);
        // Unquoted, single quotes, after a bare parameter, RFC 8187, folded, lowercase,
        // `X-Content-Disposition`, `Content-ID`, and a `filename` (read as a name too); a
        // multi-line value.
        for disposition in [
            "content-disposition: form-data;\r\n name=_method",
            "Content-Disposition: form-data; name='_method'",
            "Content-Disposition: form-data; foo; name=_method",
            "Content-Disposition: form-data; name*=UTF-8''%5Fmethod",
            "X-Content-Disposition: form-data; name=_method",
            "Content-Disposition: form-data\r\nContent-ID: <_method>",
            "Content-Disposition: form-data; name=f; filename=\"_method\"",
        ] {
            let body = format!("--XyZ\r\n{disposition}\r\n\r\nA\r\nB\r\n--XyZ--");
            assert_eq!(scan(MP, &body), [method("A\r\nB")], "{disposition}");
        }
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
    }

    #[test]
    fn boundaries_readers_could_read_otherwise() {
        // None (or empty): Rack reads the body as urlencoded.
        for ct in ["multipart/form-data", "multipart/form-data; boundary=\"\""] {
            assert_eq!(scan(Some(ct), "_method=DELETE"), [method("DELETE")], "{ct}");
        }
        // Two, a `,` or white space in it, space before the `=`: unreadable.
        for ct in [
            "multipart/form-data; boundary=AAA,BBB",
            "multipart/form-data; boundary=AAA; xboundary=BBB",
            "multipart/form-data; boundary= XyZ",
            "multipart/form-data; boundary =XyZ",
        ] {
            let h = headers(&[("content-type", ct)]);
            assert!(
                matches!(FormScan::of("POST", &h), Some(FormScan::Unreadable(_))),
                "{ct}"
            );
        }
        // The media type ends at `,` or a space for some readers.
        for ct in [
            "application/x-www-form-urlencoded,x",
            "application/x-www-form-urlencoded x",
        ] {
            assert_eq!(scan(Some(ct), "_method=DELETE"), [method("DELETE")], "{ct}");
        }
    }

    #[test]
    fn header_blocks_readers_could_split_otherwise_are_unreadable() {
        // Bare LF line breaks: Rack waits for CR LF CR LF, others end the block at LF LF.
        let body = "--XyZ\r\nX-A: a\n\nContent-Disposition: form-data; name=_method\r\n\r\nDELETE\r\n--XyZ--";
        assert_eq!(
            scan(MP, body),
            [Found::Unreadable("a form part's header line without CR LF")]
        );
        // A delimiter inside a header block: Rack reads one block across it.
        let body = "--XyZ\r\nContent-Disposition: form-data; name=_method\r\n--XyZ\r\n\
                    Content-Disposition: form-data; name=a\r\n\r\nDELETE\r\n--XyZ--";
        assert_eq!(
            scan(MP, body),
            [Found::Unreadable(
                "a form part's headers cut by a delimiter"
            )]
        );
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
        let mut scan = FormScan::of("POST", &headers(&[("content-type", MP.unwrap())])).unwrap();
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
        let mut s = FormScan::of("POST", &h).unwrap();
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
        assert!(matches!(
            FormScan::of("POST", &h),
            Some(FormScan::Unreadable(_))
        ));
        let h = headers(&[("content-type", "text/plain"), ("content-type", "text/csv")]);
        assert!(FormScan::of("POST", &h).is_none());
        let h = headers(&[("content-type", "text/plain"), ("content-encoding", "gzip")]);
        assert!(FormScan::of("POST", &h).is_none());
    }
}
