//! Bidirectional byte copy with half-close, backpressure and an idle timeout.
//!
//! Each direction waits for readiness *without* a buffer, borrows one from a small per-thread
//! pool only while bytes are in flight, and writes them all before reading again
//! (backpressure: a slow reader stalls its writer). An idle connection holds no buffer.
//!
//! Reads go through tokio's `poll_read`, which takes a short read as proof that the socket is
//! drained and waits for the next edge: one `recv` per burst of bytes, not a second one that
//! only returns `EAGAIN`.
use std::{
    cell::RefCell,
    future::poll_fn,
    io,
    os::fd::AsRawFd,
    pin::Pin,
    sync::atomic::{AtomicU64, Ordering},
    task::Poll,
    time::Duration,
};

use tokio::{
    io::{AsyncRead, ReadBuf},
    net::{
        TcpStream,
        tcp::{ReadHalf, WriteHalf},
    },
    time::Instant,
};

/// Size of one copy buffer.
const BUF_SIZE: usize = 32 * 1024;
/// Buffers kept per thread for reuse.
const POOL_MAX: usize = 32;

thread_local! {
    static POOL: RefCell<Vec<Box<[u8]>>> = const { RefCell::new(Vec::new()) };
}

fn take_buf() -> Box<[u8]> {
    POOL.with(|p| p.borrow_mut().pop())
        .unwrap_or_else(|| vec![0u8; BUF_SIZE].into_boxed_slice())
}

fn give_buf(buf: Box<[u8]>) {
    POOL.with(|p| {
        let mut p = p.borrow_mut();
        if p.len() < POOL_MAX {
            p.push(buf);
        }
    });
}

/// How a copy ended.
#[derive(Debug)]
pub enum CopyEnd {
    /// Both sides closed their write halves.
    Closed,
    /// No byte in either direction for the idle timeout.
    IdleTimeout,
    /// The agent is shutting down and the drain time is over.
    Shutdown,
    /// An I/O error on either side (reset, broken pipe, ...).
    Error(io::Error),
}

impl CopyEnd {
    /// Short label for the audit record.
    pub fn label(&self) -> String {
        match self {
            Self::Closed => "closed".into(),
            Self::IdleTimeout => "idle-timeout".into(),
            Self::Shutdown => "agent-shutdown".into(),
            Self::Error(e) => format!("error: {e}"),
        }
    }
}

/// Bytes moved and how the copy ended.
#[derive(Debug)]
pub struct Transfer {
    /// Client → upstream.
    pub up: u64,
    /// Upstream → client.
    pub down: u64,
    /// How it ended.
    pub end: CopyEnd,
}

/// Copies both ways until both sides are done, the idle timeout passes, or `stop` resolves.
pub async fn bidirectional(
    client: &mut TcpStream,
    upstream: &mut TcpStream,
    idle: Duration,
    stop: impl std::future::Future<Output = ()>,
) -> Transfer {
    let start = Instant::now();
    let last = AtomicU64::new(0);
    let up = AtomicU64::new(0);
    let down = AtomicU64::new(0);
    let (client_r, client_w) = client.split();
    let (upstream_r, upstream_w) = upstream.split();
    let both = async {
        tokio::try_join!(
            pump(client_r, &upstream_w, &up, &last, start),
            pump(upstream_r, &client_w, &down, &last, start)
        )
    };
    tokio::pin!(both);
    tokio::pin!(stop);
    let end = loop {
        let deadline = start + Duration::from_millis(last.load(Ordering::Relaxed)) + idle;
        tokio::select! {
            r = &mut both => break match r {
                Ok(_) => CopyEnd::Closed,
                Err(e) => CopyEnd::Error(e),
            },
            _ = tokio::time::sleep_until(deadline) => {
                let seen = start + Duration::from_millis(last.load(Ordering::Relaxed));
                if Instant::now().duration_since(seen) >= idle {
                    break CopyEnd::IdleTimeout;
                }
            }
            _ = &mut stop => break CopyEnd::Shutdown,
        }
    };
    Transfer {
        up: up.load(Ordering::Relaxed),
        down: down.load(Ordering::Relaxed),
        end,
    }
}

/// One direction: read what is ready, write it all, repeat; on EOF half-close `dst`.
async fn pump(
    mut src: ReadHalf<'_>,
    dst: &WriteHalf<'_>,
    moved: &AtomicU64,
    last: &AtomicU64,
    start: Instant,
) -> io::Result<()> {
    loop {
        src.readable().await?;
        let mut buf = take_buf();
        let n = match read_now(&mut src, &mut buf).await {
            Poll::Ready(Ok(0)) => {
                give_buf(buf);
                shutdown_write(dst);
                return Ok(());
            }
            Poll::Ready(Ok(n)) => n,
            // Readiness was stale: back to waiting, without the buffer.
            Poll::Pending => {
                give_buf(buf);
                continue;
            }
            Poll::Ready(Err(e)) => return Err(e),
        };
        let mut off = 0;
        while off < n {
            dst.writable().await?;
            match dst.try_write(&buf[off..n]) {
                Ok(m) => off += m,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        give_buf(buf);
        moved.fetch_add(n as u64, Ordering::Relaxed);
        last.store(start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

/// One read attempt into `buf`: `Pending` when the socket turns out to have nothing after all
/// (the caller then waits for readiness again instead of holding the buffer).
async fn read_now(src: &mut ReadHalf<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
    let mut rb = ReadBuf::new(buf);
    poll_fn(|cx| {
        Poll::Ready(
            Pin::new(&mut *src)
                .poll_read(cx, &mut rb)
                .map_ok(|()| rb.filled().len()),
        )
    })
    .await
}

fn shutdown_write(s: &WriteHalf<'_>) {
    let s: &TcpStream = s.as_ref();
    // SAFETY: plain syscall on a valid, open fd owned by `s`.
    unsafe { libc::shutdown(s.as_raw_fd(), libc::SHUT_WR) };
}

#[cfg(test)]
mod tests {
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::TcpListener,
    };

    use super::*;

    /// A connected pair of sockets on loopback.
    async fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (b, _) = l.accept().await.unwrap();
        (a, b)
    }

    #[tokio::test]
    async fn copies_both_ways_with_half_close() {
        let (mut client, mut proxy_client) = pair().await;
        let (mut proxy_up, mut server) = pair().await;
        let copy = tokio::spawn(async move {
            bidirectional(
                &mut proxy_client,
                &mut proxy_up,
                Duration::from_secs(5),
                std::future::pending(),
            )
            .await
        });
        let payload = vec![7u8; 1 << 20];
        client.write_all(&payload).await.unwrap();
        client.shutdown().await.unwrap(); // half-close: the server must see EOF
        let mut got = Vec::new();
        server.read_to_end(&mut got).await.unwrap();
        assert_eq!(got.len(), payload.len());
        // The other direction still works after the client's half-close.
        server.write_all(b"reply").await.unwrap();
        server.shutdown().await.unwrap();
        let mut reply = Vec::new();
        client.read_to_end(&mut reply).await.unwrap();
        assert_eq!(reply, b"reply");
        let t = copy.await.unwrap();
        assert_eq!(t.up, 1 << 20);
        assert_eq!(t.down, 5);
        assert!(matches!(t.end, CopyEnd::Closed), "{:?}", t.end);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_timeout_ends_the_copy() {
        let (_client, mut proxy_client) = pair().await;
        let (mut proxy_up, _server) = pair().await;
        let t = bidirectional(
            &mut proxy_client,
            &mut proxy_up,
            Duration::from_secs(30),
            std::future::pending(),
        )
        .await;
        assert!(matches!(t.end, CopyEnd::IdleTimeout), "{:?}", t.end);
    }

    #[tokio::test]
    async fn stop_ends_the_copy() {
        let (_client, mut proxy_client) = pair().await;
        let (mut proxy_up, _server) = pair().await;
        let t = bidirectional(
            &mut proxy_client,
            &mut proxy_up,
            Duration::from_secs(30),
            async {},
        )
        .await;
        assert!(matches!(t.end, CopyEnd::Shutdown), "{:?}", t.end);
    }
}
