//! A urlencoded body's fields, read as they stream: a name keeps its first bytes only (enough to
//! tell a `_method`), a value is kept only when it is a `_method`'s.
use memchr::{memchr, memchr2, memchr3};

use super::{Found, MAX_METHOD_VALUE, Reported, decode_query_component, is_method_param};

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
    /// The name's first [`NAME_PREFIX`] decoded bytes other than `[` and `]` (and leading
    /// spaces): a name is `_method` to Rack 2 and `qs` with any run of brackets around it
    /// (`]]]]]]]]]]_method`), however long that run.
    bare: Vec<u8>,
    /// The name has more such bytes than that.
    long_bare: bool,
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
    reported: Reported,
}

impl Urlencoded {
    pub(super) fn new(semicolons: bool) -> Self {
        Self {
            semicolons,
            ..Self::default()
        }
    }

    /// Whether a `_method` value is being read (it may go on in the next chunk).
    pub(super) fn holding(&self) -> bool {
        self.in_value && self.method && !self.over
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

    pub(super) fn feed(&mut self, mut data: &[u8], out: &mut Vec<Found>) {
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
        if b == b'[' || b == b']' || (self.bare.is_empty() && b == b' ') {
            // Not kept: see `bare`.
        } else if self.bare.len() == NAME_PREFIX {
            self.long_bare = true;
        } else {
            self.bare.push(b);
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
                || (!self.long_bare && is_method_param(&String::from_utf8_lossy(&self.bare)))
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

    pub(super) fn end_field(&mut self, out: &mut Vec<Found>) {
        if self.in_value && self.method && !self.over {
            let v = decode_query_component(&String::from_utf8_lossy(&self.value));
            self.reported.report(v, out);
        }
        self.name.clear();
        self.long_name = false;
        self.bare.clear();
        self.long_bare = false;
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
