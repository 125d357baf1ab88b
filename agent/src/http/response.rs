//! Responses on their way to the client: passed through untouched, or — when the target masks
//! and the body is JSON or text — read into memory (bounded), decoded, masked and sent with a
//! new `Content-Length`. What cannot be masked is passed or refused as the target says.
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::{
    HeaderMap, Method, Response, StatusCode,
    body::Body,
    header::{self, HeaderValue},
};

use super::{
    body::{BodyError, Prefixed, ProxyBody, boxed, full},
    decode::{self, Coding, DecodeError},
    echo::{Spellings, scrub_text},
    json,
};
use crate::{
    masking::{MaskCounts, Masker},
    policy::{Compressed, HttpTarget, Unmaskable},
};

/// What a body is, for masking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `application/json`, `application/*+json`, `application/x-ndjson`.
    Json,
    /// `text/*`, XML, JavaScript, form data: detectors run on the whole text.
    Text,
}

/// What to do with a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Stream it through untouched.
    Pass,
    /// Read it, decode it, mask it.
    Mask {
        /// Body kind.
        kind: Kind,
        /// Its content coding.
        coding: Coding,
    },
    /// Do not send it: answer 502 with this reason.
    Refuse(&'static str),
}

/// Reason of a refused response: masking is on and the content type cannot be masked.
pub const UNMASKABLE: &str = "response content type cannot be masked";
/// Reason of a refused response: larger than `max_body_buffer`.
pub const TOO_LARGE: &str = "response too large to mask";
/// Reason of a refused response: compressed, with `compressed = "refuse"`.
pub const COMPRESSED: &str = "compressed response refused";
/// Reason of a refused response: a coding tollgate cannot decode, or a corrupt body.
pub const UNDECODABLE: &str = "response body cannot be decoded";
/// Reason of a refused response: the body is not UTF-8 text.
pub const NOT_TEXT: &str = "response body is not UTF-8 text";
/// Why a JSON response on a target with key rules is refused when it does not parse
/// (`unmaskable = "refuse"`): its keys cannot be found, and the detectors alone would not mask
/// what they select.
pub const NOT_JSON: &str = "JSON response body does not parse: its key rules cannot apply";
/// The count label of the target's credential found in a masked body (see `echo`).
pub const CREDENTIAL_ECHO: &str = "credential-echo";
/// Why a partial response is refused on a masking target: a range can cut a value out of the
/// context that lets it be recognised (a card number without its JSON key, split across two
/// ranges), so tollgate drops the request's `Range`; a `206` means the upstream honoured some
/// other spelling of it (`Request-Range`, `x-ms-range`).
pub const PARTIAL: &str = "partial response refused on a masking target";

/// The kind of a `Content-Type`, `None` for one masking cannot read.
pub fn kind_of(content_type: Option<&HeaderValue>) -> Option<Kind> {
    let ct = content_type?.to_str().ok()?;
    let mime = ct.split(';').next()?.trim().to_ascii_lowercase();
    let (top, sub) = mime.split_once('/')?;
    match (top, sub) {
        ("application", "json" | "x-ndjson" | "jsonl" | "json-seq") => Some(Kind::Json),
        ("application", s) if s.ends_with("+json") => Some(Kind::Json),
        ("text", _) => Some(Kind::Text),
        ("application", "xml" | "javascript" | "x-www-form-urlencoded" | "yaml" | "x-yaml") => {
            Some(Kind::Text)
        }
        ("application", s) if s.ends_with("+xml") => Some(Kind::Text),
        _ => None,
    }
}

/// Decides from the head of a response (pure).
pub fn plan(target: &HttpTarget, method: &Method, status: StatusCode, h: &HeaderMap) -> Plan {
    if !target.masks() {
        return Plan::Pass;
    }
    // No body: nothing to mask.
    if method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Plan::Pass;
    }
    if status == StatusCode::PARTIAL_CONTENT
        || (status.is_success() && h.contains_key(header::CONTENT_RANGE))
    {
        return Plan::Refuse(PARTIAL);
    }
    let unmaskable = |reason| match target.unmaskable {
        Unmaskable::Pass => Plan::Pass,
        Unmaskable::Refuse => Plan::Refuse(reason),
    };
    let Some(kind) = kind_of(h.get(header::CONTENT_TYPE)) else {
        // An empty body with no type has nothing to mask.
        if content_length(h) == Some(0) {
            return Plan::Pass;
        }
        return unmaskable(UNMASKABLE);
    };
    let coding = match Coding::of(h.get(header::CONTENT_ENCODING)) {
        Ok(c) => c,
        Err(_) => return unmaskable(UNDECODABLE),
    };
    if coding != Coding::Identity && target.compressed == Compressed::Refuse {
        return Plan::Refuse(COMPRESSED);
    }
    if content_length(h).is_some_and(|n| n > target.max_body_buffer) {
        return unmaskable(TOO_LARGE);
    }
    Plan::Mask { kind, coding }
}

fn content_length(h: &HeaderMap) -> Option<u64> {
    h.get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The outcome of [`mask`].
pub enum Masked {
    /// Send this response.
    Send(Response<ProxyBody>),
    /// Refuse with this reason (502).
    Refuse(&'static str),
}

/// Reason of a refused response: the masking work failed (it panicked).
pub const MASKING_FAILED: &str = "response masking failed";

/// Bodies masked on the worker thread at most, as received and without a coding; larger or coded
/// ones are decoded and masked on the blocking pool. The proxy's connections share one worker
/// thread, and masking 8 MiB of JSON takes it some 30 ms (release build).
const MASK_INLINE: usize = 64 << 10;

/// Reads the body (at most `max_body_buffer` bytes), decodes and masks it. A body found larger
/// than the limit, or one that turns out not to be decodable or text, is passed through as it is
/// or refused per `unmaskable`. Masked values are counted into `counts`; so are the spellings of
/// the target's credential (`echo`), which are redacted.
pub async fn mask<B>(
    resp: Response<B>,
    kind: Kind,
    coding: Coding,
    target: &Arc<HttpTarget>,
    echo: Option<Arc<Spellings>>,
    counts: &mut MaskCounts,
) -> Result<Masked, BodyError>
where
    B: Body<Data = Bytes> + Send + Sync + Unpin + 'static,
    B::Error: Into<BodyError>,
{
    let limit = usize::try_from(target.max_body_buffer).unwrap_or(usize::MAX);
    let (head, mut body) = resp.into_parts();
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut size = 0usize;
    let pass = target.unmaskable == Unmaskable::Pass;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(Into::into)?;
        // Trailers of a buffered body are dropped (HTTP/1.1 would need chunked framing).
        if let Ok(data) = frame.into_data() {
            size += data.len();
            chunks.push(data);
            if size > limit {
                if !pass {
                    return Ok(Masked::Refuse(TOO_LARGE));
                }
                // Stream what was read, then the rest, untouched.
                let rest = (!body.is_end_stream()).then_some(body);
                return Ok(Masked::Send(Response::from_parts(
                    head,
                    boxed(Prefixed::new(chunks, rest)),
                )));
            }
        }
    }
    let mut raw = BytesMut::with_capacity(size);
    for c in &chunks {
        raw.extend_from_slice(c);
    }
    let raw = raw.freeze();
    if coding == Coding::Identity && raw.len() <= MASK_INLINE {
        return Ok(masked(
            head,
            raw,
            kind,
            coding,
            target,
            echo.as_deref(),
            counts,
        ));
    }
    let target = target.clone();
    let work = crate::offload::run(move || {
        let mut counts = MaskCounts::default();
        let m = masked(
            head,
            raw,
            kind,
            coding,
            &target,
            echo.as_deref(),
            &mut counts,
        );
        (m, counts)
    });
    match work.await {
        Ok((m, done)) => {
            counts.add(&done);
            Ok(m)
        }
        Err(e) => {
            // What could not be masked is never sent.
            tracing::warn!(error = %e, "response masking failed");
            Ok(Masked::Refuse(MASKING_FAILED))
        }
    }
}

/// Decodes and masks a whole body `raw` (pure; CPU-bound).
fn masked(
    mut head: hyper::http::response::Parts,
    raw: Bytes,
    kind: Kind,
    coding: Coding,
    target: &HttpTarget,
    echo: Option<&Spellings>,
    counts: &mut MaskCounts,
) -> Masked {
    let limit = usize::try_from(target.max_body_buffer).unwrap_or(usize::MAX);
    let pass = target.unmaskable == Unmaskable::Pass;
    // Bytes as received, when nothing is masked or masking is impossible and passing is allowed.
    let original = |head: hyper::http::response::Parts, raw: Bytes| {
        let mut resp = Response::from_parts(head, full(raw.clone()));
        set_length(resp.headers_mut(), raw.len());
        resp
    };
    let decoded = match decode::decode(coding, &raw, limit) {
        Ok(d) => d,
        Err(e) => {
            let reason = match e {
                DecodeError::TooLarge(_) => TOO_LARGE,
                DecodeError::Unsupported(_) | DecodeError::Corrupt { .. } => UNDECODABLE,
            };
            return if pass {
                Masked::Send(original(head, raw))
            } else {
                Masked::Refuse(reason)
            };
        }
    };
    let Ok(text) = std::str::from_utf8(&decoded) else {
        return if pass {
            Masked::Send(original(head, raw))
        } else {
            Masked::Refuse(NOT_TEXT)
        };
    };
    // Nothing to mask (`res.status(201).json()`, a DELETE's answer): not JSON, and fine.
    if text.trim().is_empty() {
        return Masked::Send(original(head, raw));
    }
    // No masker (no masking section): an empty one detects nothing.
    let none = Masker::default();
    let masker = target.masker.as_ref().unwrap_or(&none);
    let masked = match kind {
        Kind::Json => match json::mask(text, &target.json_keys, masker, counts) {
            Ok(m) => m,
            // Not JSON after all: key rules cannot apply, so it is refused unless the target
            // lets what cannot be masked pass; the detectors still read it as text then.
            Err(_) if !pass && !target.json_keys.is_empty() => return Masked::Refuse(NOT_JSON),
            Err(_) => masker.mask_text(text, counts),
        },
        Kind::Text => masker.mask_text(text, counts),
    };
    // A body that echoes the request (a debugging endpoint) would hand the task the
    // credential: every spelling of it is redacted, and counted.
    let masked = match echo.and_then(|e| scrub_text(masked.as_deref().unwrap_or(text), e)) {
        Some((scrubbed, n)) => {
            *counts
                .by_detector
                .entry(CREDENTIAL_ECHO.into())
                .or_default() += n;
            Some(scrubbed)
        }
        None => masked,
    };
    let Some(masked) = masked else {
        return Masked::Send(original(head, raw));
    };
    let h = &mut head.headers;
    h.remove(header::CONTENT_ENCODING);
    h.remove(header::TRANSFER_ENCODING);
    // Digests of the upstream's bytes no longer hold.
    for name in ["content-md5", "digest", "content-digest", "repr-digest"] {
        h.remove(name);
    }
    let bytes = Bytes::from(masked.into_bytes());
    set_length(h, bytes.len());
    Masked::Send(Response::from_parts(head, full(bytes)))
}

fn set_length(h: &mut HeaderMap, len: usize) {
    h.remove(header::TRANSFER_ENCODING);
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        http::request::tests::target,
        masking::{Detector, Masker, Style},
        offload::first_poll_ends,
        policy::JsonKey,
    };

    pub(crate) fn masking_target() -> HttpTarget {
        let mut t = target(None, true);
        t.masker = Some(Masker::detecting(Detector::Card, Style::Last4));
        t.max_body_buffer = 100;
        t
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.insert(*n, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn kinds() {
        let cases = [
            ("application/json", Some(Kind::Json)),
            ("Application/JSON; charset=utf-8", Some(Kind::Json)),
            ("application/vnd.api+json", Some(Kind::Json)),
            ("application/x-ndjson", Some(Kind::Json)),
            ("text/plain", Some(Kind::Text)),
            ("text/html; charset=utf-8", Some(Kind::Text)),
            ("application/xml", Some(Kind::Text)),
            ("application/atom+xml", Some(Kind::Text)),
            ("image/png", None),
            ("application/octet-stream", None),
            ("application/grpc", None),
            ("nonsense", None),
        ];
        for (ct, want) in cases {
            assert_eq!(kind_of(Some(&HeaderValue::from_static(ct))), want, "{ct}");
        }
        assert_eq!(kind_of(None), None);
    }

    #[test]
    fn plans() {
        let json = Plan::Mask {
            kind: Kind::Json,
            coding: Coding::Identity,
        };
        let get = Method::GET;
        let ok = StatusCode::OK;
        let t = masking_target();
        let mut refuse = masking_target();
        refuse.unmaskable = Unmaskable::Refuse;
        let mut no_gzip = masking_target();
        no_gzip.compressed = Compressed::Refuse;
        let plain = target(None, true);
        let ct_json = [("content-type", "application/json")];
        // (target, method, status, headers, want)
        let cases: Vec<(&HttpTarget, &Method, StatusCode, HeaderMap, Plan)> = vec![
            (&plain, &get, ok, headers(&ct_json), Plan::Pass),
            (&t, &get, ok, headers(&ct_json), json.clone()),
            (&t, &Method::HEAD, ok, headers(&ct_json), Plan::Pass),
            (
                &t,
                &get,
                StatusCode::NO_CONTENT,
                headers(&ct_json),
                Plan::Pass,
            ),
            (
                &t,
                &get,
                StatusCode::NOT_MODIFIED,
                headers(&ct_json),
                Plan::Pass,
            ),
            (
                &t,
                &get,
                ok,
                headers(&[("content-type", "image/png")]),
                Plan::Pass,
            ),
            (
                &refuse,
                &get,
                ok,
                headers(&[("content-type", "image/png")]),
                Plan::Refuse(UNMASKABLE),
            ),
            (&refuse, &get, ok, headers(&[]), Plan::Refuse(UNMASKABLE)),
            (
                &refuse,
                &get,
                ok,
                headers(&[("content-length", "0")]),
                Plan::Pass,
            ),
            (
                &t,
                &get,
                ok,
                headers(&[("content-type", "text/plain"), ("content-encoding", "gzip")]),
                Plan::Mask {
                    kind: Kind::Text,
                    coding: Coding::Gzip,
                },
            ),
            (
                &no_gzip,
                &get,
                ok,
                headers(&[("content-type", "text/plain"), ("content-encoding", "br")]),
                Plan::Refuse(COMPRESSED),
            ),
            (
                &t,
                &get,
                ok,
                headers(&[("content-type", "text/plain"), ("content-encoding", "zstd")]),
                Plan::Pass,
            ),
            (
                &refuse,
                &get,
                ok,
                headers(&[("content-type", "text/plain"), ("content-encoding", "zstd")]),
                Plan::Refuse(UNDECODABLE),
            ),
            (
                &t,
                &get,
                ok,
                headers(&[
                    ("content-type", "application/json"),
                    ("content-length", "101"),
                ]),
                Plan::Pass,
            ),
            (
                &refuse,
                &get,
                ok,
                headers(&[
                    ("content-type", "application/json"),
                    ("content-length", "101"),
                ]),
                Plan::Refuse(TOO_LARGE),
            ),
            (
                &t,
                &get,
                ok,
                headers(&[
                    ("content-type", "application/json"),
                    ("content-length", "100"),
                ]),
                json,
            ),
        ];
        for (i, (t, m, s, h, want)) in cases.into_iter().enumerate() {
            assert_eq!(plan(t, m, s, &h), want, "case {i}");
        }
    }

    /// A partial body cannot be masked: refused on a masking target whatever `unmaskable` says
    /// (the request's `Range` was dropped: the upstream honoured another spelling of it).
    #[test]
    fn partial_responses_are_refused_on_masking_targets() {
        let json = [("content-type", "application/json")];
        let range = [
            ("content-type", "application/json"),
            ("content-range", "bytes 0-9/100"),
        ];
        let multi = [("content-type", "multipart/byteranges; boundary=x")];
        let (t, plain) = (masking_target(), target(None, true));
        let partial = StatusCode::PARTIAL_CONTENT;
        let get = Method::GET;
        assert_eq!(
            plan(&t, &get, partial, &headers(&json)),
            Plan::Refuse(PARTIAL)
        );
        assert_eq!(
            plan(&t, &get, partial, &headers(&multi)),
            Plan::Refuse(PARTIAL)
        );
        assert_eq!(
            plan(&t, &get, StatusCode::OK, &headers(&range)),
            Plan::Refuse(PARTIAL)
        );
        // A 416 names the length in `Content-Range`, with nothing of the body.
        let unsatisfiable = [("content-range", "bytes */100"), ("content-length", "0")];
        assert_eq!(
            plan(
                &t,
                &get,
                StatusCode::RANGE_NOT_SATISFIABLE,
                &headers(&unsatisfiable)
            ),
            Plan::Pass
        );
        // Without masking, ranges are the upstream's business.
        assert_eq!(plan(&plain, &get, partial, &headers(&json)), Plan::Pass);
        let mut h = headers(&[("range", "bytes=0-9"), ("request-range", "bytes=0-9")]);
        h.insert("x-ms-range", HeaderValue::from_static("bytes=0-9"));
        crate::http::request::accept_encoding(&mut h, &t);
        assert!(
            ["range", "request-range", "x-ms-range"]
                .iter()
                .all(|n| !h.contains_key(*n)),
            "{h:?}"
        );
    }

    fn response(h: &[(&'static str, &'static str)], body: Vec<u8>) -> Response<ProxyBody> {
        let mut r = Response::new(full(body));
        *r.headers_mut() = headers(h);
        r
    }

    /// `body` of type `ct` from the upstream, masked as `kind` for target `t`.
    async fn mask_as(
        t: &HttpTarget,
        ct: &'static str,
        body: impl Into<Vec<u8>>,
        kind: Kind,
        coding: Coding,
        counts: &mut MaskCounts,
    ) -> Masked {
        let resp = response(&[("content-type", ct)], body.into());
        let echo = t.credential.as_ref().map(|c| Arc::new(Spellings::of(c)));
        mask(resp, kind, coding, &Arc::new(t.clone()), echo, counts)
            .await
            .unwrap()
    }

    async fn sent(m: Masked) -> (HeaderMap, Vec<u8>) {
        let Masked::Send(r) = m else {
            panic!("refused")
        };
        let (head, body) = r.into_parts();
        (
            head.headers,
            body.collect().await.unwrap().to_bytes().to_vec(),
        )
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[tokio::test]
    async fn gzip_json_is_decoded_masked_and_resized() {
        let t = masking_target();
        let body = br#"{"card":"4111111111111111"}"#;
        let resp = response(
            &[
                ("content-type", "application/json"),
                ("content-encoding", "gzip"),
                ("content-length", "999"),
                ("digest", "sha-256=x"),
            ],
            gzip(body),
        );
        let mut counts = MaskCounts::default();
        let m = mask(
            resp,
            Kind::Json,
            Coding::Gzip,
            &Arc::new(t.clone()),
            None,
            &mut counts,
        )
        .await
        .unwrap();
        let (h, out) = sent(m).await;
        assert_eq!(out, br#"{"card":"************1111"}"#);
        assert!(!h.contains_key("content-encoding"));
        assert!(!h.contains_key("digest"));
        assert_eq!(h["content-length"], out.len().to_string().as_str());
        assert_eq!(counts.by_detector.get("card"), Some(&1));
    }

    #[tokio::test]
    async fn unchanged_bodies_keep_their_bytes_and_coding() {
        let t = masking_target();
        let z = gzip(b"nothing to hide");
        let resp = response(
            &[("content-type", "text/plain"), ("content-encoding", "gzip")],
            z.clone(),
        );
        let mut counts = MaskCounts::default();
        let (h, out) = sent(
            mask(
                resp,
                Kind::Text,
                Coding::Gzip,
                &Arc::new(t.clone()),
                None,
                &mut counts,
            )
            .await
            .unwrap(),
        )
        .await;
        assert_eq!(out, z);
        assert_eq!(h["content-encoding"], "gzip");
        assert!(counts.is_empty());
    }

    #[tokio::test]
    async fn too_large_without_length_streams_or_refuses() {
        let mut t = masking_target();
        let big = b"4111111111111111 ".repeat(10); // 170 bytes > 100
        let mut counts = MaskCounts::default();
        let resp = response(&[("content-type", "text/plain")], big.clone());
        let (_, out) = sent(
            mask(
                resp,
                Kind::Text,
                Coding::Identity,
                &Arc::new(t.clone()),
                None,
                &mut counts,
            )
            .await
            .unwrap(),
        )
        .await;
        assert_eq!(out, big, "passed unmasked");
        t.unmaskable = Unmaskable::Refuse;
        let m = mask_as(
            &t,
            "text/plain",
            big,
            Kind::Text,
            Coding::Identity,
            &mut counts,
        )
        .await;
        assert!(matches!(m, Masked::Refuse(TOO_LARGE)));
    }

    #[tokio::test]
    async fn zip_bomb_and_binary_bodies() {
        let mut t = masking_target();
        t.unmaskable = Unmaskable::Refuse;
        let bomb = gzip(&[b'a'; 10_000]);
        assert!(bomb.len() < 100);
        let mut counts = MaskCounts::default();
        let m = mask_as(
            &t,
            "text/plain",
            bomb,
            Kind::Text,
            Coding::Gzip,
            &mut counts,
        )
        .await;
        assert!(matches!(m, Masked::Refuse(TOO_LARGE)));
        let m = mask_as(
            &t,
            "text/plain",
            vec![0xff, 0xfe, 0x00],
            Kind::Text,
            Coding::Identity,
            &mut counts,
        )
        .await;
        assert!(matches!(m, Masked::Refuse(NOT_TEXT)));
    }

    /// A body over [`MASK_INLINE`] is masked on the blocking pool: the worker is free while it
    /// is (the masking future waits at its first poll, where masking in place would end), and
    /// the body and counts are what masking in place gives.
    #[tokio::test]
    async fn large_bodies_are_masked_off_the_worker() {
        let mut t = masking_target();
        t.max_body_buffer = 8 << 20;
        let t = Arc::new(t);
        let line = b"card 4111111111111111 and some words around it\n";
        let big = line.repeat((2 << 20) / line.len());
        let want =
            b"card ************1111 and some words around it\n".repeat(big.len() / line.len());
        let mut counts = MaskCounts::default();
        let resp = response(&[("content-type", "text/plain")], big.clone());
        let (ended, m) = first_poll_ends(mask(
            resp,
            Kind::Text,
            Coding::Identity,
            &t,
            None,
            &mut counts,
        ))
        .await;
        assert!(!ended, "masked in place");
        let (_, out) = sent(m.unwrap()).await;
        assert!(out == want, "masked as in place");
        let rows = (big.len() / line.len()) as u64;
        assert_eq!(counts.by_detector.get("card"), Some(&rows));

        // Under the bound, in place.
        let small = line.repeat(100);
        let mut counts = MaskCounts::default();
        let resp = response(&[("content-type", "text/plain")], small);
        let (ended, _) = first_poll_ends(mask(
            resp,
            Kind::Text,
            Coding::Identity,
            &t,
            None,
            &mut counts,
        ))
        .await;
        assert!(ended);
        assert_eq!(counts.by_detector.get("card"), Some(&100));
    }

    #[tokio::test]
    async fn json_that_is_not_json_is_masked_as_text() {
        let t = masking_target();
        let mut counts = MaskCounts::default();
        let body = b"oops 4111111111111111".to_vec();
        let got = mask_as(
            &t,
            "application/json",
            body,
            Kind::Json,
            Coding::Identity,
            &mut counts,
        );
        let (_, out) = sent(got.await).await;
        assert_eq!(out, b"oops ************1111");
    }

    /// On a target with key rules, a JSON body that does not parse is refused unless the
    /// target lets what cannot be masked pass (its keys cannot be found; the detectors would
    /// not mask what they select).
    #[tokio::test]
    async fn json_that_is_not_json_is_refused_where_key_rules_apply() {
        let body = br#"{"ssn": "078-05-1120", oops}"#;
        let mut keyed = masking_target();
        keyed.json_keys = vec![JsonKey::new("ssn", Style::Redact).unwrap()];
        keyed.unmaskable = Unmaskable::Refuse;
        let mut counts = MaskCounts::default();
        let got = mask_as(
            &keyed,
            "application/json",
            body.to_vec(),
            Kind::Json,
            Coding::Identity,
            &mut counts,
        )
        .await;
        assert!(matches!(got, Masked::Refuse(NOT_JSON)));
        // An empty body has nothing to mask.
        for empty in ["", " \r\n"] {
            let got = mask_as(
                &keyed,
                "application/json",
                empty,
                Kind::Json,
                Coding::Identity,
                &mut counts,
            );
            assert_eq!(sent(got.await).await.1, empty.as_bytes());
        }
        // Let through as text under `pass`, and where no key rule applies.
        let mut passing = keyed.clone();
        passing.unmaskable = Unmaskable::Pass;
        let mut unkeyed = keyed;
        unkeyed.json_keys.clear();
        for t in [passing, unkeyed] {
            let got = mask_as(
                &t,
                "application/json",
                body.to_vec(),
                Kind::Json,
                Coding::Identity,
                &mut counts,
            );
            assert_eq!(sent(got.await).await.1, body.to_vec());
        }
    }
}
