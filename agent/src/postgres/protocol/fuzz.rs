//! Property-style test: arbitrary and mutated bytes never make framing or decoding panic, and
//! whatever decodes re-encodes to something that decodes to the same message.
use bytes::{Bytes, BytesMut};

use super::*;

const FRONTEND_TAGS: &[u8] = b"QPBDECSHdcfFpX";
const BACKEND_TAGS: &[u8] = b"RSKZTDCENI123nstGHWdcAvV";

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// Valid encodings to mutate, so that inputs get past the length checks.
fn corpus() -> Vec<(bool, Vec<u8>)> {
    let frontend: Vec<FrontendMessage> = vec![
        StartupMessage::new("alice").into(),
        SslRequest.into(),
        CancelRequest {
            pid: 1,
            secret_key: Bytes::from_static(b"abcd"),
        }
        .into(),
        Query::new("SELECT 1").into(),
        Parse {
            name: "s".into(),
            query: "SELECT $1".into(),
            param_types: vec![23, 25],
        }
        .into(),
        Bind {
            portal: String::new(),
            statement: "s".into(),
            param_formats: vec![1],
            params: vec![Some(Bytes::from_static(b"x")), None],
            result_formats: vec![0],
        }
        .into(),
        FunctionCall {
            function_oid: 952,
            arg_formats: vec![],
            args: vec![None],
            result_format: 0,
        }
        .into(),
    ];
    let backend: Vec<BackendMessage> = vec![
        Authentication::Sasl {
            mechanisms: vec!["SCRAM-SHA-256".into()],
        }
        .into(),
        Authentication::Md5Password { salt: [1, 2, 3, 4] }.into(),
        RowDescription {
            fields: vec![FieldDescription::new("a", 23)],
        }
        .into(),
        DataRow {
            values: vec![Some(Bytes::from_static(b"1")), None],
        }
        .into(),
        ErrorResponse::new("ERROR", "42P01", "nope").into(),
        NegotiateProtocolVersion {
            newest_minor: 0,
            unrecognized_options: vec!["_pq_.x".into()],
        }
        .into(),
        CopyOutResponse {
            format: 0,
            column_formats: vec![0],
        }
        .into(),
    ];
    let mut out = Vec::new();
    for m in frontend {
        let mut b = BytesMut::new();
        m.encode(&mut b);
        let startup = matches!(
            m,
            FrontendMessage::StartupMessage(_)
                | FrontendMessage::SslRequest(_)
                | FrontendMessage::CancelRequest(_)
        );
        out.push((startup, b.to_vec()));
    }
    for m in backend {
        let mut b = BytesMut::new();
        m.encode(&mut b);
        out.push((false, b.to_vec()));
    }
    out
}

fn mutate(rng: &mut Rng, mut input: Vec<u8>) -> Vec<u8> {
    for _ in 0..=rng.below(4) {
        match rng.below(4) {
            0 if !input.is_empty() => {
                let at = rng.below(input.len());
                input[at] = rng.next() as u8;
            }
            1 => input.truncate(rng.below(input.len() + 1)),
            2 => {
                let at = rng.below(input.len() + 1);
                let n = rng.below(8);
                let extra = rng.bytes(n);
                input.splice(at..at, extra);
            }
            _ if !input.is_empty() => {
                // A special value where a length or count sits.
                let at = rng.below(input.len());
                input[at] = [0x00, 0xff, 0x7f, 0x80, 0x01][rng.below(5)];
            }
            _ => {}
        }
    }
    input
}

/// decode(x) = m implies decode(frame(encode(m))) = m.
fn check_frontend_reencode(msg: &FrontendMessage) {
    let startup = matches!(
        msg,
        FrontendMessage::StartupMessage(_)
            | FrontendMessage::SslRequest(_)
            | FrontendMessage::GssEncRequest(_)
            | FrontendMessage::CancelRequest(_)
    );
    let mut buf = BytesMut::new();
    msg.encode(&mut buf);
    let frame = next_frontend(&mut buf, startup, usize::MAX).expect("re-frames");
    let again = frame.expect("whole").decode().expect("re-decodes");
    assert_eq!(&again, msg);
}

fn check_backend_reencode(msg: &BackendMessage) {
    let mut buf = BytesMut::new();
    msg.encode(&mut buf);
    let frame = next_backend(&mut buf, usize::MAX).expect("re-frames");
    let again = frame.expect("whole").decode().expect("re-decodes");
    assert_eq!(&again, msg);
}

/// Runs every entry point on `input`; returns how many framed messages decoded.
fn exercise(input: &[u8]) -> usize {
    let mut decoded = 0;
    for startup in [true, false] {
        let mut buf = BytesMut::from(input);
        while let Ok(Some(frame)) = next_frontend(&mut buf, startup, 4096) {
            let _ = frame.body();
            if let Ok(msg) = frame.decode() {
                check_frontend_reencode(&msg);
                decoded += 1;
            }
        }
    }
    let mut buf = BytesMut::from(input);
    while let Ok(Some(frame)) = next_backend(&mut buf, 4096) {
        if let Ok(msg) = frame.decode() {
            check_backend_reencode(&msg);
            decoded += 1;
        }
    }

    let body = Bytes::copy_from_slice(input);
    for &tag in FRONTEND_TAGS {
        if let Ok(msg) = FrontendMessage::decode_tagged(tag, body.clone()) {
            check_frontend_reencode(&msg);
        }
    }
    for &tag in BACKEND_TAGS {
        if let Ok(msg) = BackendMessage::decode_tagged(tag, body.clone()) {
            check_backend_reencode(&msg);
        }
    }
    let startup: [fn(Bytes) -> Result<FrontendMessage, ProtocolError>; 4] = [
        |b| StartupMessage::decode(b).map(Into::into),
        |b| SslRequest::decode(b).map(Into::into),
        |b| GssEncRequest::decode(b).map(Into::into),
        |b| CancelRequest::decode(b).map(Into::into),
    ];
    for decode in startup {
        if let Ok(msg) = decode(body.clone()) {
            check_frontend_reencode(&msg);
        }
    }
    let password = PasswordMessage {
        payload: body.clone(),
    };
    let _ = password.password();
    let _ = password.sasl_response();
    if let Ok(initial) = password.sasl_initial() {
        let mut buf = BytesMut::new();
        initial.encode(&mut buf);
        let frame = next_frontend(&mut buf, false, usize::MAX).unwrap().unwrap();
        let FrontendMessage::PasswordMessage(p) = frame.decode().unwrap() else {
            panic!("not a 'p' message");
        };
        assert_eq!(p.sasl_initial().unwrap(), initial);
    }
    let tag = String::from_utf8_lossy(input);
    let complete = CommandComplete::new(tag.as_ref());
    let _ = (complete.rows(), complete.command());
    decoded
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..20_000 {
        let len = rng.below(48);
        let input = rng.bytes(len);
        let _ = exercise(&input);
    }
}

#[test]
fn mutated_messages_never_panic() {
    let mut rng = Rng(0xdead_beef_cafe_f00d);
    let corpus = corpus();
    let mut decoded = 0;
    for _ in 0..20_000 {
        let (_, seed) = &corpus[rng.below(corpus.len())];
        let input = mutate(&mut rng, seed.clone());
        decoded += exercise(&input);
        // Also as a body, without its header.
        let _ = exercise(input.get(5..).unwrap_or_default());
    }
    // Enough mutants still decode for the re-encode property to be exercised.
    assert!(decoded > 2_000, "only {decoded} mutated messages decoded");
}

#[test]
fn corpus_frames_cleanly() {
    for (startup, wire) in corpus() {
        let mut buf = BytesMut::from(&wire[..]);
        let frame = next_frontend(&mut buf, startup, MAX_MESSAGE_LEN);
        let backend = next_backend(&mut BytesMut::from(&wire[..]), MAX_MESSAGE_LEN);
        let ok = matches!(frame, Ok(Some(f)) if f.decode().is_ok())
            || matches!(backend, Ok(Some(f)) if f.decode().is_ok());
        assert!(ok, "{wire:?}");
    }
}
