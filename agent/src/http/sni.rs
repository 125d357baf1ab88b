//! The server name (SNI) of a TLS ClientHello, read from the first record without consuming it,
//! so that a passthrough connection reaches the upstream byte for byte.
use std::time::Duration;

use tokio::net::TcpStream;

/// Largest TLS record: 5 bytes of header and 2^14 bytes of payload (plus the 2048 of expansion
/// TLS 1.2 allows on encrypted records).
pub const MAX_RECORD: usize = 5 + (1 << 14) + 2048;

/// What the first bytes of a connection are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peeked {
    /// Not a complete first record yet.
    NeedMore,
    /// Not a TLS handshake record carrying a ClientHello.
    NotTls,
    /// A ClientHello, with its server name when it has one (lowercase ASCII).
    Hello(Option<String>),
}

/// Parses the start of a connection. Checks every length before slicing.
pub fn parse(buf: &[u8]) -> Peeked {
    let Some(header) = buf.get(..5) else {
        return Peeked::NeedMore;
    };
    // Handshake record, TLS 1.x record version.
    if header[0] != 22 || header[1] != 3 {
        return Peeked::NotTls;
    }
    let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
    let Some(record) = buf.get(5..5 + len) else {
        return Peeked::NeedMore;
    };
    match hello_sni(record) {
        Some(sni) => Peeked::Hello(sni),
        None => Peeked::NotTls,
    }
}

/// `Some(sni)` for a well-formed ClientHello (its start, when it spans records); `None` otherwise.
fn hello_sni(record: &[u8]) -> Option<Option<String>> {
    let mut r = Reader(record);
    if r.u8()? != 1 {
        return None; // not a ClientHello
    }
    let hello_len = r.u24()?;
    // A ClientHello longer than this record continues in the next one: parse what is here.
    let body = r.take(hello_len.min(r.0.len()))?;
    let mut h = Reader(body);
    h.take(2 + 32)?; // legacy_version, random
    let sid = usize::from(h.u8()?);
    h.take(sid)?;
    let suites = usize::from(h.u16()?);
    h.take(suites)?;
    let compressions = usize::from(h.u8()?);
    h.take(compressions)?;
    if h.0.is_empty() {
        return Some(None); // no extensions
    }
    let ext_len = usize::from(h.u16()?);
    let mut exts = Reader(h.take(ext_len.min(h.0.len()))?);
    while !exts.0.is_empty() {
        let kind = exts.u16()?;
        let len = usize::from(exts.u16()?);
        let Some(data) = exts.take(len) else {
            return Some(None); // cut by the record boundary before the SNI
        };
        if kind == 0 {
            return Some(server_name(data));
        }
    }
    Some(None)
}

/// The host_name entry of a server_name extension.
fn server_name(data: &[u8]) -> Option<String> {
    let mut r = Reader(data);
    let list = usize::from(r.u16()?);
    let mut names = Reader(r.take(list)?);
    while !names.0.is_empty() {
        let kind = names.u8()?;
        let len = usize::from(names.u16()?);
        let name = names.take(len)?;
        if kind == 0 {
            let name = std::str::from_utf8(name).ok()?;
            if name.is_empty() || !name.is_ascii() {
                return None;
            }
            return Some(name.trim_end_matches('.').to_ascii_lowercase());
        }
    }
    None
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
    fn u24(&mut self) -> Option<usize> {
        self.take(3)
            .map(|b| usize::from(b[0]) << 16 | usize::from(b[1]) << 8 | usize::from(b[2]))
    }
}

/// Waits for the client's first record (without consuming it) and parses it. Gives up after
/// `timeout` with what it has (`NeedMore`), or when the client closed.
pub async fn peek(stream: &TcpStream, timeout: Duration) -> std::io::Result<Peeked> {
    let mut buf = vec![0u8; MAX_RECORD];
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last = 0;
    loop {
        let n = match tokio::time::timeout_at(deadline, stream.peek(&mut buf)).await {
            Ok(n) => n?,
            Err(_) => return Ok(Peeked::NeedMore),
        };
        match parse(&buf[..n]) {
            Peeked::NeedMore if n == 0 || n == buf.len() => return Ok(Peeked::NotTls),
            Peeked::NeedMore => {
                // `peek` returns at once while the same bytes are queued: wait a little for more.
                if tokio::time::Instant::now() >= deadline {
                    return Ok(Peeked::NeedMore);
                }
                let pause = if n == last { 10 } else { 1 };
                last = n;
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
            done => return Ok(done),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minimal ClientHello record with `sni` (and a second extension before it).
    pub(crate) fn client_hello(sni: Option<&str>) -> Vec<u8> {
        let mut exts = Vec::new();
        // supported_versions: TLS 1.3
        exts.extend_from_slice(&[0x00, 0x2b, 0x00, 0x03, 0x02, 0x03, 0x04]);
        if let Some(name) = sni {
            let n = name.as_bytes();
            let entry_len = 3 + n.len();
            exts.extend_from_slice(&[0x00, 0x00]);
            exts.extend_from_slice(&((entry_len + 2) as u16).to_be_bytes());
            exts.extend_from_slice(&(entry_len as u16).to_be_bytes());
            exts.push(0);
            exts.extend_from_slice(&(n.len() as u16).to_be_bytes());
            exts.extend_from_slice(n);
        }
        let mut body = vec![0x03, 0x03];
        body.extend_from_slice(&[7u8; 32]);
        body.push(0); // session id
        body.extend_from_slice(&[0x00, 0x02, 0x13, 0x01]); // one suite
        body.extend_from_slice(&[0x01, 0x00]); // null compression
        body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
        body.extend_from_slice(&exts);
        let mut hs = vec![1];
        hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        hs.extend_from_slice(&body);
        let mut rec = vec![22, 3, 1];
        rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
        rec.extend_from_slice(&hs);
        rec
    }

    #[test]
    fn parse_cases() {
        let hello = client_hello(Some("Vault.Internal."));
        assert_eq!(parse(&hello), Peeked::Hello(Some("vault.internal".into())));
        assert_eq!(parse(&client_hello(None)), Peeked::Hello(None));
        // Every strict prefix needs more bytes.
        for cut in 0..hello.len() {
            assert_eq!(parse(&hello[..cut]), Peeked::NeedMore, "cut at {cut}");
        }
        // Bytes after the record (early data) do not matter.
        let mut more = hello.clone();
        more.extend_from_slice(b"junk");
        assert_eq!(parse(&more), Peeked::Hello(Some("vault.internal".into())));
        // Plain HTTP, another record type, a non-ClientHello handshake.
        assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Peeked::NotTls);
        assert_eq!(parse(&[23, 3, 3, 0, 1, 0]), Peeked::NotTls);
        assert_eq!(parse(&[22, 3, 3, 0, 4, 2, 0, 0, 0]), Peeked::NotTls);
        // A lying inner length is malformed, not a panic.
        let mut bad = client_hello(Some("a.example"));
        let sid_at = 5 + 4 + 34;
        bad[sid_at] = 200;
        assert_eq!(parse(&bad), Peeked::NotTls);
    }

    #[tokio::test]
    async fn peek_leaves_the_bytes_in_place() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut c = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (mut s, _) = l.accept().await.unwrap();
        let hello = client_hello(Some("x.example"));
        // Sent in two pieces: peek waits for the whole record.
        c.write_all(&hello[..20]).await.unwrap();
        let writer = tokio::spawn({
            let rest = hello[20..].to_vec();
            async move {
                tokio::time::sleep(Duration::from_millis(30)).await;
                c.write_all(&rest).await.unwrap();
                c
            }
        });
        let got = peek(&s, Duration::from_secs(5)).await.unwrap();
        assert_eq!(got, Peeked::Hello(Some("x.example".into())));
        let _c = writer.await.unwrap();
        let mut read = vec![0u8; hello.len()];
        s.read_exact(&mut read).await.unwrap();
        assert_eq!(read, hello);
    }
}
