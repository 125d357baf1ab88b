//! A tiny HTTP server that answers every request with the peer address it saw
//! (`peer=<addr>`), so a test can tell a proxied connection from a direct one.
use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpListener, TcpStream},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    thread,
    time::Duration,
};

/// Running server; stops when dropped.
pub struct PeerServer {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    hits: Arc<AtomicUsize>,
}

impl PeerServer {
    /// Listens on `bind` (port 0 picks one) and serves in a background thread.
    pub fn start(bind: &str) -> PeerServer {
        let listener = TcpListener::bind(bind).unwrap_or_else(|e| panic!("bind {bind}: {e}"));
        let addr = listener.local_addr().expect("local addr");
        let stop = Arc::new(AtomicBool::new(false));
        let hits = Arc::new(AtomicUsize::new(0));
        let (flag, count) = (stop.clone(), hits.clone());
        thread::spawn(move || {
            for conn in listener.incoming() {
                if flag.load(Ordering::Relaxed) {
                    break;
                }
                if let Ok(conn) = conn {
                    count.fetch_add(1, Ordering::Relaxed);
                    thread::spawn(move || serve(conn));
                }
            }
        });
        PeerServer { addr, stop, hits }
    }

    /// Connections accepted so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::Relaxed)
    }

    /// `http://<addr>/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }
}

impl Drop for PeerServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop (the test process is outside any attach cgroup: direct).
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

fn serve(mut conn: TcpStream) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let Ok(peer) = conn.peer_addr() else {
        return;
    };
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 64 * 1024 {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
    let body = format!("peer={peer}\n");
    let reply = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = conn.write_all(reply.as_bytes());
}

/// The peer address in a body `peer=<addr>` (also found inside a whole HTTP response).
pub fn parse_peer(text: &str) -> Option<SocketAddr> {
    let line = text.lines().find_map(|l| l.trim().strip_prefix("peer="))?;
    let addr: SocketAddr = line.parse().ok()?;
    Some(SocketAddr::new(addr.ip().to_canonical(), addr.port()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_peer_cases() {
        let cases = [
            ("peer=127.0.0.1:5\n", Some("127.0.0.1:5")),
            ("HTTP/1.1 200 OK\r\n\r\npeer=[::1]:7\n", Some("[::1]:7")),
            ("peer=[::ffff:10.0.0.1]:9", Some("10.0.0.1:9")),
            ("nothing", None),
        ];
        for (text, want) in cases {
            assert_eq!(
                parse_peer(text),
                want.map(|w| w.parse().expect("addr")),
                "{text}"
            );
        }
    }
}
