//! JSON Web Tokens in compact form: three base64url segments (JWS) or five (JWE), separated by
//! dots, whose first segment decodes to a JSON object with a string `"alg"`.
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};

use crate::masking::Span;

/// Headers longer than this are not decoded (a real header is well under 1 KiB).
const MAX_HEADER: usize = 4096;
/// `{"alg":"none"}` is 19 characters encoded; then `.e30.`
const MIN_LEN: usize = 24;

/// Finds JWTs in `text`. The signature of an unsecured token (`alg: none`) may be empty.
pub fn find(text: &str) -> Vec<Span> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    if b.len() < MIN_LEN {
        return out;
    }
    // `{"` and `{ ` both encode to `ey…`: every JSON header starts so. The scan for that pair is
    // the pre-filter.
    let mut i = 0;
    while i + 1 < b.len() {
        if b[i] == b'e'
            && b[i + 1] == b'y'
            && (i == 0 || !(is_b64url(b[i - 1]) || b[i - 1] == b'.'))
            && let Some(end) = token_at(b, i)
        {
            out.push(Span::new(i, end));
            i = end;
            continue;
        }
        i += 1;
    }
    out
}

fn is_b64url(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'-' || c == b'_'
}

fn segment_end(b: &[u8], start: usize) -> usize {
    start + b[start..].iter().take_while(|&&c| is_b64url(c)).count()
}

/// End of a token whose header starts at `start`.
fn token_at(b: &[u8], start: usize) -> Option<usize> {
    let header_end = segment_end(b, start);
    if b.get(header_end) != Some(&b'.') {
        return None;
    }
    let mut segments = 1;
    let mut second_len = 0;
    let mut pos = header_end;
    while segments < 5 && b.get(pos) == Some(&b'.') {
        let end = segment_end(b, pos + 1);
        if segments == 1 {
            second_len = end - pos - 1;
        }
        segments += 1;
        pos = end;
    }
    let shape = match segments {
        3 => second_len > 0,
        5 => true,
        _ => false,
    };
    (shape && b.get(pos) != Some(&b'.') && header_has_alg(&b[start..header_end])).then_some(pos)
}

fn header_has_alg(segment: &[u8]) -> bool {
    if segment.len() > MAX_HEADER {
        return false;
    }
    let Ok(json) = URL_SAFE_NO_PAD.decode(segment) else {
        return false;
    };
    serde_json::from_slice::<serde_json::Value>(&json)
        .is_ok_and(|header| header.get("alg").is_some_and(serde_json::Value::is_string))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::masking::detect::tests::{assert_finds, assert_finds_nothing};

    fn b64(s: &str) -> String {
        URL_SAFE_NO_PAD.encode(s)
    }

    /// The token of jwt.io's debugger (HS256, "John Doe").
    const JWT_IO: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";

    #[test]
    fn positives() {
        let rs256 = format!(
            "{}.{}.{}",
            b64(r#"{"alg":"RS256","kid":"k1"}"#),
            b64(r#"{"sub":"a"}"#),
            "c2ln-_0"
        );
        let spaced = format!(
            "{}.{}.{}",
            b64(r#"{ "typ": "JWT", "alg": "ES256" }"#),
            b64("{}"),
            "c2ln"
        );
        let none = format!("{}.{}.", b64(r#"{"alg":"none"}"#), b64(r#"{"sub":"a"}"#));
        let jwe = format!(
            "{}..{}.{}.{}",
            b64(r#"{"alg":"dir","enc":"A128GCM"}"#),
            "aXY",
            "Y2lwaGVy",
            "dGFn"
        );
        let header = format!("Authorization: Bearer {JWT_IO}\r\n");
        let query = format!("https://x.example/cb?id_token={rs256}&state=1");
        let json = format!("{{\"access_token\":\"{spaced}\",\"refresh\":\"{none}\"}}");
        let cases: Vec<(&str, Vec<&str>)> = vec![
            (JWT_IO, vec![JWT_IO]),
            (&header, vec![JWT_IO]),
            (&query, vec![&rs256]),
            (&json, vec![&spaced, &none]),
            (&jwe, vec![&jwe]),
            (&none, vec![&none]),
            (&rs256, vec![&rs256]),
            (&spaced, vec![&spaced]),
        ];
        for (text, want) in &cases {
            assert_finds(find, text, want);
        }
    }

    #[test]
    fn negatives() {
        let no_alg = format!("{}.{}.c2ln", b64(r#"{"typ":"JWT"}"#), b64("{}"));
        let alg_number = format!("{}.{}.c2ln", b64(r#"{"alg":256}"#), b64("{}"));
        let nested = format!("{}.{}.c2ln", b64(r#"{"x":{"alg":"HS256"}}"#), b64("{}"));
        let two = format!("{}.{}", b64(r#"{"alg":"HS256"}"#), b64("{}"));
        let four = format!("{}.{}.c2ln.eHg", b64(r#"{"alg":"HS256"}"#), b64("{}"));
        let six = format!("{}.a.b.c.d.e", b64(r#"{"alg":"HS256"}"#));
        let empty_payload = format!("{}..c2ln", b64(r#"{"alg":"HS256"}"#));
        let glued = format!("x{JWT_IO}");
        let dotted = format!("a.{JWT_IO}");
        let not_json = format!("{}.{}.c2ln", b64(r#"{"alg":"HS256""#), b64("{}"));
        let cases: Vec<&str> = vec![
            &no_alg,
            &alg_number,
            &nested,
            &two,
            &four,
            &six,
            &empty_payload,
            &glued,
            &dotted,
            &not_json,
            "eyJhbGciOiJIUzI1NiJ9",
            "hey.you.there",
            "eyes.are.open",
            "",
        ];
        for text in cases {
            assert_finds_nothing(find, text);
        }
    }
}
