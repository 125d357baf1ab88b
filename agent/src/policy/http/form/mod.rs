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
//! media type read as urlencoded, coded or not (Rack takes it as a form, raw). Where readers
//! differ, the scan reads every way or gives up:
//! - field names are read as upstreams read query parameter names
//!   ([`super::readings::is_method_param`], brackets dropped too);
//! - a urlencoded body is read split at `&` (PHP, Rack, Express) and split at `&` and `;` (Go
//!   before 1.17, Python before 3.9.2); at most 16 distinct values each;
//! - a multipart body is read only in the canonical form clients write ([`multipart`]); any
//!   other form is unreadable, and so is a boundary PHP and Rack could read differently;
//! - a JSON body (a type holding `/json` or `+json`, as Laravel tells it) is read for its
//!   top-level `_method` string ([`json`]); one with a `gzip`, `deflate` or `br` coding is
//!   inflated for the scan as it streams ([`coded`]), as Express's `body-parser` inflates it
//!   (Laravel does not); one with another coding is unreadable (`body-parser` may come to read
//!   one), one with several is not read (`body-parser` refuses it, the others do not decode).
//!
//! Fail closed: what the scan cannot read ([`Found::Unreadable`]) is denied, since an upstream
//! might read a `_method` in it.
mod coded;
mod json;
mod multipart;
mod urlencoded;

pub use self::coded::{Coding as BodyCoding, Named as NamedCodings, brotli_window_bits};
pub use self::urlencoded::Urlencoded;
use self::{
    coded::{Inflating, Named},
    json::Json,
    multipart::Multipart,
};
use super::{path::decode_query_component, readings::is_method_param};

/// Longest `_method` value read, in bytes as sent; a longer one is unreadable.
pub const MAX_METHOD_VALUE: usize = 256;
/// Distinct `_method` values a reading reports; more are unreadable.
pub const MAX_VALUES: usize = 16;

/// What a scan found in a body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// A `_method` field and its value (percent-decoded for a urlencoded body).
    Method(String),
    /// Something an upstream might read a `_method` in and the scan cannot: why.
    Unreadable(&'static str),
}

/// How far one step of a scan went ([`FormScan::feed_step`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fed {
    /// The chunk is scanned.
    All,
    /// A step's worth was scanned, taking the first `n` bytes of the chunk: scan the rest in
    /// the next step (it may be empty: a decoder can still hold output).
    Partly(usize),
}

/// A streaming scan of one request body for `_method` fields.
#[derive(Debug)]
pub enum FormScan {
    /// A urlencoded form, read split at `&` (as PHP, Rack and Express read bodies) and at `&`
    /// and `;` (as Go before 1.17 and Python before 3.9.2 did).
    Urlencoded(Box<[Urlencoded; 2]>),
    /// A multipart body.
    Multipart(Multipart),
    /// A JSON body.
    Json(Json),
    /// A JSON body with a content coding, inflated for the scan.
    Coded(Box<Inflating>),
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
        let coding = Named::of(
            headers
                .iter()
                .filter(|(k, _)| k == "content-encoding")
                .map(|(_, v)| v.as_str()),
        );
        let coded = coding.is_some();
        let scan = match types.as_slice() {
            // Rack reads it raw, coded or not.
            [] => return Self::untyped(method),
            [first, rest @ ..] => {
                // Upstreams differ on which of several types they take: if any is a form, the
                // body cannot be read one way for all of them.
                if rest.iter().any(|t| t != first) {
                    return types
                        .iter()
                        .any(|t| Self::of_type(method, t).is_some())
                        .then_some(FormScan::Unreadable(Some(
                            "conflicting Content-Type headers",
                        )));
                }
                Self::of_type(method, first)?
            }
        };
        match scan {
            // Express's `body-parser` inflates it (Laravel does not); it refuses several
            // codings, and may come to read one more.
            FormScan::Json(_) if coded => match coding {
                Some(Named::One(c)) => Some(FormScan::Coded(Box::new(Inflating::new(c)))),
                Some(Named::Other) => Some(FormScan::Unreadable(Some(
                    "a JSON body with a content coding the scan does not decode",
                ))),
                Some(Named::Several) | None => None,
            },
            FormScan::Urlencoded(_) | FormScan::Multipart(_) if coded => Some(
                FormScan::Unreadable(Some("a form body with a content coding")),
            ),
            scan => Some(scan),
        }
    }

    /// Rack reads a POST without a media type as a urlencoded form.
    fn untyped(method: &str) -> Option<FormScan> {
        method
            .eq_ignore_ascii_case("POST")
            .then(FormScan::urlencoded)
    }

    fn urlencoded() -> FormScan {
        FormScan::Urlencoded(Box::new([Urlencoded::new(false), Urlencoded::new(true)]))
    }

    fn of_type(method: &str, value: &str) -> Option<FormScan> {
        // The media type ends at `;`, and for some readers at `,` or white space.
        let value = value.trim_start_matches([' ', '\t']);
        let end = value.find([';', ',', ' ', '\t']).unwrap_or(value.len());
        let media = &value[..end];
        // Laravel reads a body as JSON when its type holds `/json` or `+json` anywhere, the
        // parameters included; others go by the media type.
        let lower = value.to_ascii_lowercase();
        let json = |t: &str| t.contains("/json") || t.contains("+json");
        let form = media.is_empty()
            || media.eq_ignore_ascii_case("application/x-www-form-urlencoded")
            || media
                .split_once('/')
                .is_some_and(|(kind, _)| kind.eq_ignore_ascii_case("multipart"));
        if json(&lower) && form && !json(&media.to_ascii_lowercase()) {
            return Some(FormScan::Unreadable(Some(
                "a Content-Type read as JSON by some and as a form by others",
            )));
        }
        if json(&lower) {
            return Some(FormScan::Json(Json::new()));
        }
        if media.is_empty() {
            return Self::untyped(method);
        }
        if media.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
            return Some(FormScan::urlencoded());
        }
        if !form {
            return None;
        }
        Some(match boundary(value) {
            Ok(Some(b)) => FormScan::Multipart(Multipart::new(b.as_bytes())),
            // Without a boundary Rack reads the body as urlencoded.
            Ok(None) => FormScan::urlencoded(),
            Err(why) => FormScan::Unreadable(Some(why)),
        })
    }

    /// Scans the next chunk of the body; what it completes goes to `out`.
    pub fn feed(&mut self, mut data: &[u8], out: &mut Vec<Found>) {
        while let Fed::Partly(n) = self.feed_step(data, out) {
            data = &data[n..];
        }
    }

    /// Scans the next chunk of the body, or a step of it: a coded body's scan stops after
    /// about [`coded::STEP`] decoded bytes, however few bytes that took, so that its caller can
    /// let other work run before the next step. Other scans take the whole chunk at once.
    pub fn feed_step(&mut self, data: &[u8], out: &mut Vec<Found>) -> Fed {
        match self {
            FormScan::Urlencoded(u) => {
                let start = out.len();
                u.iter_mut().for_each(|u| u.feed(data, out));
                dedup_from(out, start);
            }
            FormScan::Multipart(m) => m.feed(data, out),
            FormScan::Json(j) => j.feed(data, out),
            FormScan::Coded(c) => return c.feed_step(data, out),
            FormScan::Unreadable(why) => {
                if let Some(why) = why.take() {
                    out.push(Found::Unreadable(why));
                }
            }
        }
        Fed::All
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
            FormScan::Json(_) => {}
            FormScan::Coded(c) => c.finish(out),
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
            FormScan::Urlencoded(u) => u.iter().any(Urlencoded::holding),
            FormScan::Multipart(m) => m.holding(),
            FormScan::Json(j) => j.holding(),
            FormScan::Coded(c) => c.holding(),
            FormScan::Unreadable(_) => false,
        }
    }
}

/// The `_method` values one reading reported: each once and at most [`MAX_VALUES`]; one more
/// makes the body unreadable.
#[derive(Debug, Default)]
struct Reported {
    values: Vec<String>,
    /// More were found (reported once).
    too_many: bool,
}

impl Reported {
    fn report(&mut self, v: String, out: &mut Vec<Found>) {
        if self.values.contains(&v) {
        } else if self.values.len() < MAX_VALUES {
            self.values.push(v.clone());
            out.push(Found::Method(v));
        } else if !self.too_many {
            self.too_many = true;
            out.push(Found::Unreadable("more than 16 _method values in a form"));
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

/// The `boundary` of a multipart `Content-Type` value: `None` when there is none (or it is
/// empty). PHP takes the first `boundary` in the value (case-sensitively first, then in any
/// case) up to `,` or `;`; Rack the last `boundary=`, up to `,` or `;`. A boundary they could
/// read differently is unreadable: not a parameter's key, space before its `=`, a second
/// `boundary=`, a `,` or (unquoted) white space in it, or bytes that are not UTF-8.
fn boundary(value: &str) -> Result<Option<String>, &'static str> {
    const AMBIGUOUS: &str = "an ambiguous multipart boundary";
    let lower = value.to_ascii_lowercase();
    let Some(at) = value.find("boundary").or_else(|| lower.find("boundary")) else {
        return Ok(None);
    };
    let key = value[..at].trim_end_matches([' ', '\t']).ends_with(';');
    let rest = &value[at + "boundary".len()..];
    let Some(v) = rest.strip_prefix('=').filter(|_| key) else {
        return Err(AMBIGUOUS);
    };
    if lower.matches("boundary=").count() != 1 {
        return Err(AMBIGUOUS);
    }
    let v = match v.strip_prefix('"') {
        Some(q) => match q.split_once('"') {
            Some((inner, after))
                if after.trim_start_matches([' ', '\t']).is_empty()
                    || after.trim_start_matches([' ', '\t']).starts_with(';') =>
            {
                inner
            }
            _ => return Err(AMBIGUOUS),
        },
        None => {
            let v = v.split(';').next().unwrap_or_default();
            if v.contains([' ', '\t']) {
                return Err(AMBIGUOUS);
            }
            v
        }
    };
    // Rack's boundary also stops at `"` and `;` (quoted or not).
    if v.contains([',', '"', ';', '\u{fffd}']) {
        return Err(AMBIGUOUS);
    }
    Ok((!v.is_empty()).then(|| v.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// The scan for a `method` request of this one `Content-Type`.
    fn typed(method: &str, ct: &str) -> Option<FormScan> {
        FormScan::of(method, &headers(&[("content-type", ct)]))
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
        // Brackets: `qs` and Rack 2 drop them.
        assert_eq!(
            scan(FORM, "[_method]=A&_method]=B&]_method=C&x[_method]=D"),
            [method("A"), method("B"), method("C")]
        );
        // However many brackets: Rack 2 drops any run of them before and after the name.
        assert_eq!(
            scan(
                FORM,
                "]]]]]]]]]]_method=A&[[[[[[[[[[_method=B&_method]]]]]]]]]]=C&%5D%5D%5D%5D%5D%5D%5D%5D%5D%5D_method=D"
            ),
            [method("A"), method("B"), method("C"), method("D")]
        );
        assert_eq!(scan(FORM, "]]]]]]]]]]_methodx=A&]]]]]]]]]]x_method=B"), []);
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
        // Only a POST (as Rack reads it).
        assert!(FormScan::of("PUT", &[]).is_none());
        // Rack reads a coded one raw.
        let gz = headers(&[("content-encoding", "gzip")]);
        assert!(matches!(
            FormScan::of("POST", &gz),
            Some(FormScan::Urlencoded(_))
        ));
        assert!(typed("POST", "text/plain").is_none());
        // JSON as Laravel tells it, and not when coded (Laravel does not decode it).
        for ct in [
            "multipart/form-data; boundary=X+json",
            "application/x-www-form-urlencoded; x=/json",
            ";/json",
        ] {
            assert!(
                matches!(typed("POST", ct), Some(FormScan::Unreadable(_))),
                "{ct}"
            );
        }
        for ct in [
            "application/json",
            "application/vnd.api+json",
            "text/x; a=/json",
        ] {
            assert!(
                matches!(typed("PATCH", ct), Some(FormScan::Json(_))),
                "{ct}"
            );
        }
        // A coded one is inflated for the scan (Express's `body-parser` inflates it).
        let h = headers(&[
            ("content-type", "application/json"),
            ("content-encoding", "gzip"),
        ]);
        assert!(matches!(FormScan::of("POST", &h), Some(FormScan::Coded(_))));
        assert!(matches!(
            typed("POST", "Application/X-WWW-Form-Urlencoded; charset=utf-8"),
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
    fn repeated_values_are_reported_once_and_many_are_unreadable() {
        let body = "_method=&".repeat(50_000);
        let (found, _) = scan_in(FORM, body.as_bytes(), 65_536);
        assert_eq!(found, [method("")]);
        let body: String = (0..40).map(|i| format!("_method=M{i}&")).collect();
        let found = scan(FORM, &body);
        assert_eq!(found.len(), MAX_VALUES + 1);
        assert_eq!(
            found.last(),
            Some(&Found::Unreadable("more than 16 _method values in a form"))
        );
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

    /// One part as browsers write it: its delimiter, headers, blank line and body.
    fn part(headers: &str, body: &str) -> String {
        format!("--XyZ\r\n{headers}\r\n\r\n{body}\r\n")
    }

    fn named(name: &str, body: &str) -> String {
        part(
            &format!("Content-Disposition: form-data; name=\"{name}\""),
            body,
        )
    }

    const CLOSE: &str = "--XyZ--\r\n";

    fn unreadable(why: &'static str) -> Vec<Found> {
        vec![Found::Unreadable(why)]
    }

    #[test]
    fn multipart_method_parts() {
        let body = format!(
            "{}{}{}{}{CLOSE}",
            named("title", "hello\r\n-XyZ --Xy"),
            named("_method", "PATCH"),
            named("empty", ""),
            part(
                "Content-Disposition: form-data; name=\"file\"; filename=\"a b.bin\"\r\n\
                 Content-Type: application/octet-stream",
                "binary\n\0data\r\n"
            ),
        );
        assert_eq!(scan(MP, &body), [method("PATCH")]);
        // What clients write that looks odd: an escaped quote or a backslash in a filename, a
        // field named like a header.
        let body = format!(
            "{}{}{CLOSE}",
            part(
                "Content-Disposition: form-data; name=\"f\"; filename=\"a\\\"b\\c.txt\"",
                "x"
            ),
            named("content-id", "Content-Disposition.md"),
        );
        assert_eq!(scan(MP, &body), []);
        // Bare, PHP's spellings, Content-ID (Rack names a part by it); a multi-line value.
        for headers in [
            "Content-Disposition: form-data; name=_method",
            "Content-Disposition: form-data; name=\"%5Fmethod\"; filename=\"x\"",
            "content-disposition: form-data; name=.METHOD",
            "Content-Disposition: form-data; name='_method'",
            "Content-ID: <_method>",
        ] {
            let body = format!("{}{CLOSE}", part(headers, "A\r\nB"));
            let want = if headers.contains("%5F") {
                vec![]
            } else {
                vec![method("A\r\nB")]
            };
            assert_eq!(scan(MP, &body), want, "{headers}");
        }
        // A quoted boundary, `multipart/mixed`, and no CR LF after the close.
        let ct = Some("multipart/mixed; boundary=\"XyZ\"");
        let body = format!("{}--XyZ--", named("_method", "DELETE"));
        assert_eq!(scan(ct, &body), [method("DELETE")]);
    }

    #[test]
    fn boundaries_are_read_as_every_reader_reads_them() {
        // Clients whose boundary holds the word (Dart, hand-written, Jersey), quoted spaces.
        for (ct, b) in [
            (
                "multipart/form-data; boundary=dart-http-boundary-x1",
                "dart-http-boundary-x1",
            ),
            ("multipart/form-data; Boundary=Boundary_1_2", "Boundary_1_2"),
            (
                "multipart/form-data; boundary=\"simple boundary\"",
                "simple boundary",
            ),
        ] {
            let body = format!(
                "--{b}\r\nContent-Disposition: form-data; name=_method\r\n\r\nPUT\r\n--{b}--"
            );
            assert_eq!(scan(Some(ct), &body), [method("PUT")], "{ct}");
        }
        // None (or empty): Rack reads the body as urlencoded.
        for ct in ["multipart/form-data", "multipart/form-data; boundary=\"\""] {
            assert_eq!(scan(Some(ct), "_method=DELETE"), [method("DELETE")], "{ct}");
        }
        // Read differently by PHP and Rack: unreadable.
        for ct in [
            "multipart/form-data; boundary=AAA,BBB",
            "multipart/form-data; boundary=AAA; xboundary=BBB",
            "multipart/form-data; x-boundary-hint=1; boundary=BBB",
            "multipart/form-data; boundary= XyZ",
            "multipart/form-data; boundary =XyZ",
            "multipart/form-data; boundary=X\u{fffd}",
            "multipart/form-data; boundary=\"a;b\"",
            "multipart/form-data; boundary=a\"b",
        ] {
            assert!(
                matches!(typed("POST", ct), Some(FormScan::Unreadable(_))),
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

    /// Each deviation some reader reads a `_method` part through (Rack 2 and 3, PHP, Go).
    #[test]
    fn anything_but_the_canonical_form_is_unreadable() {
        let m = named("_method", "DELETE");
        let cases: Vec<(String, &str)> = vec![
            (
                format!("junk{m}{CLOSE}"),
                "a multipart body not starting with its delimiter",
            ),
            (
                format!("--XyZ--{m}{CLOSE}"),
                "bytes after a multipart close delimiter",
            ),
            (
                format!("{CLOSE}{m}{CLOSE}"),
                "bytes after a multipart close delimiter",
            ),
            (
                format!("--XyZ----XyZ\r\n{m}"),
                "bytes after a multipart close delimiter",
            ),
            (
                format!("--XyZ \r\n{m}"),
                "a multipart delimiter line with more",
            ),
            (
                format!("{}x --XyZ\r\n{m}{CLOSE}", named("a", "1")),
                "a multipart delimiter not after CR LF",
            ),
            (
                format!(
                    "{}{m}",
                    part("X-A: a\n\nContent-Disposition: form-data; name=_method", "")
                ),
                "a form part's header line without CR LF",
            ),
            (
                format!(
                    "{}{CLOSE}",
                    part(
                        "Content-Disposition: form-data;\r\nname=\"_method\"",
                        "DELETE"
                    )
                ),
                "a form part's header line without a name",
            ),
            (
                format!(
                    "{}{CLOSE}",
                    part(
                        " Content-Disposition: form-data; name=\"_method\"",
                        "DELETE"
                    )
                ),
                "a form part's header line without a name",
            ),
            (
                format!(
                    "{}{CLOSE}",
                    part(
                        "X-A: Content-Disposition: form-data; name=\"_method\"",
                        "DELETE"
                    )
                ),
                "a form part's header naming another",
            ),
            (
                format!(
                    "{}{CLOSE}",
                    part("X-Content-Disposition: form-data; name=_method", "DELETE")
                ),
                "a form part's header naming another",
            ),
            (
                format!("{}{CLOSE}", part("X-Content-ID: _method", "DELETE")),
                "a form part's header naming another",
            ),
            (
                format!(
                    "{}{CLOSE}",
                    part(
                        "Content-Disposition: form-data; name=a\r\n\
                         Content-Disposition: form-data; name=_method",
                        "DELETE"
                    )
                ),
                "a form part with two Content-Disposition headers",
            ),
            (
                format!("--XyZ\r\nContent-Disposition: form-data; name=_method\r\n{m}{CLOSE}"),
                "a multipart delimiter inside a part's headers",
            ),
            (
                named("_method", "DELETE"),
                "a multipart body without its close delimiter",
            ),
        ];
        for (body, why) in &cases {
            assert_eq!(scan(MP, body), unreadable(why), "{body:?}");
        }
        for disposition in [
            "form-data; name=_method,",
            "form-data; name*=UTF-8''%5Fmethod",
            "form-data; name*0=_met; name*1=hod",
            "form-data; foo; name=_method",
            "form-data; name=a; x=\" name=_method\"",
            "form-data; name=\"a\\\"; name=_method\"",
            "form-data; name=a; name=_method",
            "name=_method",
            "name=_method; filename=x",
            "\"form-data\"; name=a",
            "form-data; name=\"a; name=_method\"",
            "form-data; name=\"a\\\"b\"",
            "form-data; name=a; filename=\"x name=_method\"",
        ] {
            let body = format!(
                "{}{CLOSE}",
                part(&format!("Content-Disposition: {disposition}"), "DELETE")
            );
            assert_eq!(
                scan(MP, &body),
                unreadable("a form part's Content-Disposition read differently by readers"),
                "{disposition}"
            );
        }
    }

    #[test]
    fn multipart_limits_are_unreadable() {
        let big = format!("X-Pad: {}", "p".repeat(8192));
        let body = format!(
            "{}{CLOSE}",
            part(
                &format!("{big}\r\nContent-Disposition: form-data; name=_method"),
                "X"
            )
        );
        assert_eq!(
            scan(MP, &body),
            unreadable("a form part's headers too long")
        );
        let body = format!(
            "{}{CLOSE}",
            named("_method", &"A".repeat(MAX_METHOD_VALUE + 10))
        );
        assert_eq!(
            scan(MP, &body),
            unreadable("a form's _method value too long")
        );
        // A big file part is neither kept nor a problem.
        let body = format!(
            "{}{}{CLOSE}",
            named("f", &"z".repeat(200_000)),
            named("_method", "PUT")
        );
        assert_eq!(scan_in(MP, body.as_bytes(), 8192).0, [method("PUT")]);
    }

    #[test]
    fn a_multipart_method_value_is_held_until_its_delimiter() {
        let body = named("_method", "PUT");
        let cut = body.find("PUT").unwrap();
        let (b1, b2) = body.as_bytes().split_at(cut);
        let mut scan = typed("POST", MP.unwrap()).unwrap();
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

    /// A JSON body coded `coding`, fed in chunks of `n` bytes as sent: what the scan found.
    fn coded_in(coding: &str, sent: &[u8], n: usize) -> Vec<Found> {
        let h = headers(&[
            ("content-type", "application/json"),
            ("content-encoding", coding),
        ]);
        let mut scan = FormScan::of("POST", &h).expect("a coded JSON scan");
        let mut out = Vec::new();
        for chunk in sent.chunks(n) {
            scan.feed(chunk, &mut out);
        }
        scan.finish(&mut out);
        out
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        use std::io::Write as _;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn zlib(data: &[u8]) -> Vec<u8> {
        use std::io::Write as _;
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn brotli(data: &[u8]) -> Vec<u8> {
        use std::io::Write as _;
        let mut out = Vec::new();
        {
            let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
            w.write_all(data).unwrap();
        }
        out
    }

    #[test]
    fn a_coded_json_body_is_inflated_for_the_scan() {
        let body = br#"{"a": [1, {"_method": "PUT"}], "_method": "DELETE", "b": "x"}"#;
        let mut twice = gzip(br#"{"x": 1, "#);
        twice.extend(gzip(br#""_method": "PATCH"}"#));
        for (coding, sent, want) in [
            ("gzip", gzip(body), method("DELETE")),
            ("x-gzip, identity", gzip(body), method("DELETE")),
            ("DEFLATE", zlib(body), method("DELETE")),
            ("br", brotli(body), method("DELETE")),
            // Concatenated gzip members, as `body-parser` (Node's zlib) reads them.
            ("gzip", twice, method("PATCH")),
        ] {
            for n in [1, 2, 3, 5, 7, 64, sent.len()] {
                assert_eq!(
                    coded_in(coding, &sent, n),
                    std::slice::from_ref(&want),
                    "{coding}, chunks of {n}"
                );
            }
        }
        // A nested `_method` alone is no reading.
        assert_eq!(
            coded_in("gzip", &gzip(br#"{"a": {"_method": "PUT"}}"#), 3),
            []
        );
    }

    #[test]
    fn a_coded_method_value_is_held_until_it_is_decoded_whole() {
        use std::io::Write as _;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(br#"{"_method": "DEL"#).unwrap();
        e.flush().unwrap();
        let first = e.get_ref().len();
        e.write_all(br#"ETE"}"#).unwrap();
        let sent = e.finish().unwrap();
        let h = headers(&[
            ("content-type", "application/json"),
            ("content-encoding", "gzip"),
        ]);
        let mut scan = FormScan::of("POST", &h).unwrap();
        let mut out = Vec::new();
        scan.feed(&sent[..first], &mut out);
        assert!(scan.holding(), "the value goes on in the next chunk");
        scan.feed(&sent[first..], &mut out);
        assert!(!scan.holding());
        scan.finish(&mut out);
        assert_eq!(out, [method("DELETE")]);
    }

    #[test]
    fn a_coded_json_body_that_does_not_decode_or_inflates_too_far_is_unreadable() {
        let corrupt = Found::Unreadable("a coded JSON body that does not decode");
        assert_eq!(
            coded_in("gzip", b"\x1f\x8bnot gzip at all", 4),
            std::slice::from_ref(&corrupt)
        );
        // Cut in its trailer: what decoded is read, and the body does not decode.
        let cut = gzip(br#"{"_method": "DELETE"}"#);
        assert_eq!(
            coded_in("gzip", &cut[..cut.len() - 4], 4),
            [method("DELETE"), corrupt.clone()]
        );
        assert_eq!(coded_in("br", b"\x0b\xff\xff\xff\xff", 1), [corrupt]);
        // 20 MiB of zeros in a string: about 20 KB sent, scanned up to the bound, held nowhere.
        let mut bomb = b"{\"a\": \"".to_vec();
        bomb.resize(bomb.len() + (20 << 20), b'0');
        bomb.extend_from_slice(b"\", \"_method\": \"DELETE\"}");
        let sent = gzip(&bomb);
        assert!(sent.len() < 200_000, "{}", sent.len());
        assert_eq!(
            coded_in("gzip", &sent, 16 << 10),
            [Found::Unreadable(
                "a coded JSON body larger than 16 MiB decoded"
            )]
        );
    }

    /// A chunk that inflates far is scanned in steps of about [`coded::STEP`] decoded bytes,
    /// each taking what it decoded from; stepping on finds what the body uncoded gives.
    #[test]
    fn a_coded_chunk_is_scanned_in_bounded_steps() {
        let mut body = b"{\"a\": \"".to_vec();
        body.resize(body.len() + (4 << 20), b'0');
        body.extend_from_slice(b"\", \"_method\": \"DELETE\"}");
        for (coding, sent) in [
            ("gzip", gzip(&body)),
            ("deflate", zlib(&body)),
            ("br", brotli(&body)),
        ] {
            assert!(sent.len() < 50_000, "{coding}: {}", sent.len());
            let h = headers(&[
                ("content-type", "application/json"),
                ("content-encoding", coding),
            ]);
            let mut scan = FormScan::of("POST", &h).unwrap();
            let mut out = Vec::new();
            let (mut at, mut steps) = (0, 1);
            while let Fed::Partly(n) = scan.feed_step(&sent[at..], &mut out) {
                at += n;
                steps += 1;
                assert!(at <= sent.len());
            }
            // 4 MiB in steps of 512 KiB, each at most a decoder's buffer (32 KiB) more.
            let (most, least) = (
                (4 << 20) / coded::STEP + 2,
                (4 << 20) / (coded::STEP + (32 << 10)),
            );
            assert!((least..=most).contains(&steps), "{coding}: {steps} steps");
            scan.finish(&mut out);
            assert_eq!(out, [method("DELETE")], "{coding}");
            let plain = scan_in(Some("application/json"), &body, body.len()).0;
            assert_eq!(out, plain, "{coding}: as the body uncoded");
        }
    }

    /// Bytes after the end of a brotli stream do not decode, as `body-parser` reads them.
    #[test]
    fn bytes_after_a_brotli_stream_do_not_decode() {
        let mut sent = brotli(br#"{"_method": "DELETE"}"#);
        sent.extend_from_slice(b"{}");
        let corrupt = Found::Unreadable("a coded JSON body that does not decode");
        for n in [1, 2, sent.len()] {
            assert_eq!(
                coded_in("br", &sent, n),
                [method("DELETE"), corrupt.clone()],
                "chunks of {n}"
            );
        }
    }

    #[test]
    fn a_brotli_window_over_4_mib_is_unreadable() {
        use std::io::Write as _;
        let body = br#"{"_method": "DELETE"}"#;
        let wide = Found::Unreadable("a brotli JSON body with a window over 4 MiB");
        for (lgwin, want) in [
            (22, method("DELETE")),
            (16, method("DELETE")),
            (24, wide.clone()),
        ] {
            let mut out = Vec::new();
            {
                let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, lgwin);
                w.write_all(body).unwrap();
            }
            assert_eq!(
                coded_in("br", &out, 3),
                std::slice::from_ref(&want),
                "lgwin {lgwin}"
            );
        }
        // The large-window extension's code (0x11) in the first byte.
        assert_eq!(coded_in("br", b"\x11\x3c\x00", 1), [wide]);
        for (first, bits) in [
            (0x00, Some(16)),
            (0x0b, Some(22)),
            (0x0f, Some(24)),
            (0x01, Some(17)),
        ] {
            assert_eq!(coded::brotli_window_bits(first), bits, "{first:#x}");
        }
        assert_eq!(coded::brotli_window_bits(0x11), None);
        assert_eq!(coded::brotli_window_bits(0x21), Some(10));
    }

    #[test]
    fn other_codings_are_unreadable_and_several_are_not_read() {
        for coding in ["zstd", "compress"] {
            let h = headers(&[
                ("content-type", "application/json"),
                ("content-encoding", coding),
            ]);
            assert!(
                matches!(FormScan::of("POST", &h), Some(FormScan::Unreadable(_))),
                "{coding}"
            );
        }
        let h = headers(&[
            ("content-type", "application/json"),
            ("content-encoding", "gzip, br"),
        ]);
        assert!(FormScan::of("POST", &h).is_none());
        let h = headers(&[
            ("content-type", "application/json"),
            ("content-encoding", "gzip"),
            ("content-encoding", "br"),
        ]);
        assert!(FormScan::of("POST", &h).is_none());
    }
}
