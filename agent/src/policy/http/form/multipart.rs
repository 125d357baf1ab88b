//! A multipart body read strictly, as browsers, curl, Go, Python and the other common clients
//! write it: readers (Rack 2 and 3, PHP, busboy, Go) disagree on almost every deviation (where
//! the first delimiter may be, what follows a close delimiter, a delimiter not after CR LF,
//! folded or colon-less header lines, where a name ends, RFC 2231 continuations), and each
//! disagreement can hide a `_method` part from one of them. So anything but the canonical form
//! is [`Found::Unreadable`] and the rest of the body is not read:
//!
//! - the body starts with `--boundary` and ends with `--boundary--` and an optional CR LF;
//! - the delimiter appears nowhere but after the CR LF that ends a part, followed by CR LF or
//!   `--`;
//! - a part's header lines end in CR LF, each `Name: value`, at most 8 KiB in all; at most one
//!   `Content-Disposition`, whose parameters are `name`, `filename` or `filename*`, each once, as
//!   a token or a quoted string without escapes; no other header mentions `Content-Disposition`
//!   or `Content-ID`.
//!
//! A part is a `_method` if its `name`, or its `Content-ID` (Rack names a part by it), is.
use memchr::memmem;

use super::{Found, MAX_METHOD_VALUE, is_method_param};

/// Longest header block of a part.
pub const MAX_PART_HEADERS: usize = 8192;

/// Where a multipart scan is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the first delimiter's bytes are all in.
    Start,
    /// After a delimiter: the CR LF or `--` that follows it.
    AfterDelimiter,
    /// In a part's header block.
    Headers,
    /// In a part's body.
    Body,
    /// After the close delimiter: at most a CR LF.
    Closed,
    /// Reported unreadable: nothing more is read.
    Dead,
}

/// The state of a strict multipart scan.
#[derive(Debug)]
pub struct Multipart {
    /// `--` and the boundary.
    delim: Vec<u8>,
    state: State,
    /// Bytes of the current step: the opening delimiter, the two after a delimiter, a header
    /// block, or (in a body) its last bytes, enough for a delimiter split across chunks and the
    /// CR LF before it.
    buf: Vec<u8>,
    /// The current part is a `_method`.
    capture: bool,
    /// Its body so far (a little more than a value may have).
    value: Vec<u8>,
}

impl Multipart {
    /// A scan for parts delimited by `boundary`.
    pub fn new(boundary: &[u8]) -> Self {
        let mut delim = b"--".to_vec();
        delim.extend_from_slice(boundary);
        Self {
            delim,
            state: State::Start,
            buf: Vec::new(),
            capture: false,
            value: Vec::new(),
        }
    }

    /// Whether a `_method` value is being read (it may go on in the next chunk).
    pub fn holding(&self) -> bool {
        self.state == State::Body && self.capture
    }

    fn dead(&mut self, why: &'static str, out: &mut Vec<Found>) {
        out.push(Found::Unreadable(why));
        self.state = State::Dead;
        self.buf = Vec::new();
        self.value = Vec::new();
        self.capture = false;
    }

    /// Scans the next chunk.
    pub fn feed(&mut self, mut data: &[u8], out: &mut Vec<Found>) {
        while !data.is_empty() {
            data = match self.state {
                State::Dead => return,
                State::Start => {
                    let n = (self.delim.len() - self.buf.len()).min(data.len());
                    self.buf.extend_from_slice(&data[..n]);
                    if !self.delim.starts_with(&self.buf) {
                        return self.dead("a multipart body not starting with its delimiter", out);
                    }
                    if self.buf.len() == self.delim.len() {
                        self.buf.clear();
                        self.state = State::AfterDelimiter;
                    }
                    &data[n..]
                }
                State::AfterDelimiter => {
                    let n = (2 - self.buf.len()).min(data.len());
                    self.buf.extend_from_slice(&data[..n]);
                    if self.buf.len() == 2 {
                        self.state = match self.buf.as_slice() {
                            b"\r\n" => State::Headers,
                            b"--" => State::Closed,
                            _ => return self.dead("a multipart delimiter line with more", out),
                        };
                        self.buf.clear();
                    }
                    &data[n..]
                }
                State::Headers => self.headers(data, out),
                State::Body => self.body(data, out),
                State::Closed => {
                    // Only a CR LF.
                    let fits = data.len() <= 2 - self.buf.len();
                    self.buf.extend_from_slice(&data[..data.len().min(2)]);
                    if !fits || !b"\r\n".starts_with(&self.buf) {
                        return self.dead("bytes after a multipart close delimiter", out);
                    }
                    &[]
                }
            };
        }
    }

    /// Reads a header block up to its blank line.
    fn headers<'d>(&mut self, data: &'d [u8], out: &mut Vec<Found>) -> &'d [u8] {
        let before = self.buf.len();
        let take = data.len().min(MAX_PART_HEADERS + 4 - before);
        self.buf.extend_from_slice(&data[..take]);
        // The block ends at the first CR LF CR LF (or at once for a block of no headers).
        let from = before.saturating_sub(3);
        let end = if self.buf.starts_with(b"\r\n") {
            Some(0)
        } else {
            memmem::find(&self.buf[from..], b"\r\n\r\n").map(|i| from + i + 2)
        };
        let Some(end) = end else {
            if self.buf.len() > MAX_PART_HEADERS {
                self.dead("a form part's headers too long", out);
            }
            return &[];
        };
        let block = self.buf[..end].to_vec();
        let rest = &data[end + 2 - before..];
        match part_is_method(&block, &self.delim) {
            Ok(capture) => {
                self.capture = capture;
                self.buf.clear();
                self.value.clear();
                self.state = State::Body;
                rest
            }
            Err(why) => {
                self.dead(why, out);
                &[]
            }
        }
    }

    /// Reads a part's body up to the next delimiter.
    fn body<'d>(&mut self, data: &'d [u8], out: &mut Vec<Found>) -> &'d [u8] {
        let kept = self.buf.len();
        let d = self.delim.len();
        // The first delimiter that ends in this chunk (one wholly in the kept bytes was seen
        // before): one that starts among the kept bytes or the chunk's first bytes is searched
        // for in those (appended to the kept bytes for the search), any other in the chunk in
        // place, so a big body is not copied.
        let head = &data[..data.len().min(d + 1)];
        self.buf.extend_from_slice(head);
        let early = memmem::find_iter(&self.buf, &self.delim).find(|&i| i + d > kept);
        self.buf.truncate(kept);
        let found = early.or_else(|| memmem::find(data, &self.delim).map(|j| kept + j));
        let Some(at) = found else {
            if self.capture {
                self.keep_value(data, out);
                if self.state == State::Dead {
                    return &[];
                }
            }
            // Keep the stream's last bytes, enough for a delimiter and the CR LF before it.
            let keep = (kept + data.len()).min(d + 1);
            if data.len() >= keep {
                self.buf.clear();
            } else {
                self.buf.drain(..kept + data.len() - keep);
            }
            self.buf
                .extend_from_slice(&data[data.len() - keep.min(data.len())..]);
            return &[];
        };
        // The stream's bytes: the kept ones, then the chunk's.
        let byte = |i: usize| {
            if i < kept {
                self.buf[i]
            } else {
                data[i - kept]
            }
        };
        if at < 2 || [byte(at - 2), byte(at - 1)] != *b"\r\n" {
            self.dead("a multipart delimiter not after CR LF", out);
            return &[];
        }
        self.buf.clear();
        if self.capture {
            // The value ends before that CR LF: in this chunk, or among the kept bytes.
            let in_chunk = (at - 2).saturating_sub(kept);
            self.keep_value(&data[..in_chunk], out);
            let cut = kept.saturating_sub(at - 2);
            if self.state == State::Dead {
                return &[];
            }
            let len = self.value.len().saturating_sub(cut);
            if len > MAX_METHOD_VALUE {
                self.dead("a form's _method value too long", out);
                return &[];
            }
            self.value.truncate(len);
            out.push(Found::Method(
                String::from_utf8_lossy(&self.value).into_owned(),
            ));
            self.capture = false;
            self.value.clear();
        }
        self.state = State::AfterDelimiter;
        &data[at + self.delim.len() - kept..]
    }

    fn keep_value(&mut self, bytes: &[u8], out: &mut Vec<Found>) {
        if self.value.len() + bytes.len() > MAX_METHOD_VALUE + self.delim.len() + 2 {
            self.dead("a form's _method value too long", out);
        } else {
            self.value.extend_from_slice(bytes);
        }
    }

    /// The body ended: it must have ended with its close delimiter.
    pub fn finish(&mut self, out: &mut Vec<Found>) {
        if !matches!(self.state, State::Closed | State::Dead) {
            self.dead("a multipart body without its close delimiter", out);
        }
    }
}

/// Whether a part with this header block (CR LF separated lines, without the blank line) is a
/// `_method`, or why it cannot be read one way for every reader.
fn part_is_method(block: &[u8], delim: &[u8]) -> Result<bool, &'static str> {
    if memmem::find(block, delim).is_some() {
        return Err("a multipart delimiter inside a part's headers");
    }
    let text = String::from_utf8_lossy(block);
    let mut lines = Vec::new();
    for line in text.split("\r\n").filter(|l| !l.is_empty()) {
        if line.contains(['\r', '\n']) {
            return Err("a form part's header line without CR LF");
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err("a form part's header line without a name");
        };
        if name.is_empty() || !name.bytes().all(is_tchar) {
            return Err("a form part's header line without a name");
        }
        // Rack 2.2 to 3.1 find these headers anywhere in the block (unanchored patterns):
        // in another header's value, or as the end of another header's name.
        let lower = value.to_ascii_lowercase();
        let lower_name = name.to_ascii_lowercase();
        if lower.contains("content-disposition:")
            || lower.contains("content-id:")
            || (lower_name != "content-disposition" && lower_name.ends_with("content-disposition"))
            || (lower_name != "content-id" && lower_name.ends_with("content-id"))
        {
            return Err("a form part's header naming another");
        }
        lines.push((name, value));
    }
    let mut names = Vec::new();
    let mut dispositions = 0;
    for (name, value) in lines {
        if name.eq_ignore_ascii_case("content-disposition") {
            dispositions += 1;
            if let Some(n) = disposition_name(value)? {
                names.push(n);
            }
        } else if name.eq_ignore_ascii_case("content-id") {
            let id = value.trim_matches([' ', '\t']);
            names.push(id.to_owned());
            names.push(id.trim_start_matches('<').trim_end_matches('>').to_owned());
        }
    }
    if dispositions > 1 {
        return Err("a form part with two Content-Disposition headers");
    }
    Ok(names.iter().any(|n| {
        is_method_param(n) || is_method_param(n.trim_start_matches('\'').trim_end_matches('\''))
    }))
}

/// The `name` of a `Content-Disposition` value, read strictly: its parameters are `name`,
/// `filename` and `filename*`, each at most once, each a token or a quoted string without
/// escapes.
fn disposition_name(value: &str) -> Result<Option<String>, &'static str> {
    const ODD: &str = "a form part's Content-Disposition read differently by readers";
    // PHP reads every `;`-separated word as a parameter, the first included: the type must be
    // a plain token (`name=_method` alone is a name to PHP, none to Rack).
    let (kind, rest) = value.split_once(';').unwrap_or((value, ""));
    let kind = kind.trim_matches([' ', '\t']);
    if kind.is_empty() || !kind.bytes().all(is_tchar) {
        return Err(ODD);
    }
    if rest.is_empty() && !value.contains(';') {
        return Ok(None);
    }
    let mut rest = rest;
    let mut name = None;
    let mut seen: Vec<String> = Vec::new();
    loop {
        let param = rest.trim_start_matches([' ', '\t']);
        let (key, after) = param.split_once('=').ok_or(ODD)?;
        let key = key.to_ascii_lowercase();
        if !matches!(key.as_str(), "name" | "filename" | "filename*") || seen.contains(&key) {
            return Err(ODD);
        }
        let (v, next) = if let Some(q) = after.strip_prefix('"') {
            // Where the quoted string ends, escapes honoured (Go, Spring and httpx escape `"` in
            // a filename); readers that do not honour them end it sooner.
            let mut end = None;
            let mut escaped = false;
            for (i, c) in q.char_indices() {
                match c {
                    _ if escaped => escaped = false,
                    '\\' => escaped = true,
                    '"' => {
                        end = Some(i);
                        break;
                    }
                    _ => {}
                }
            }
            let end = end.ok_or(ODD)?;
            let v = &q[..end];
            // Either way, no reader may find another parameter in it (Rack 2.2 and 3.0 take
            // the last `; name=` of the line, quotes or not), and a name reads one way only.
            if v.contains(';')
                || v.to_ascii_lowercase().contains("name=")
                || (key == "name" && v.contains('\\'))
            {
                return Err(ODD);
            }
            (v, q[end + 1..].trim_start_matches([' ', '\t']))
        } else {
            let end = after.find([';', ' ', '\t']).unwrap_or(after.len());
            let v = &after[..end];
            if v.is_empty() || !v.bytes().all(is_tchar) {
                return Err(ODD);
            }
            (v, after[end..].trim_start_matches([' ', '\t']))
        };
        if key == "name" {
            name = Some(v.to_owned());
        }
        seen.push(key);
        match next.strip_prefix(';') {
            Some(more) => rest = more,
            None if next.is_empty() => return Ok(name),
            None => return Err(ODD),
        }
    }
}

/// RFC 9110 `tchar`.
fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}
