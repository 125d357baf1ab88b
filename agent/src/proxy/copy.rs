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
    /// The upstream connection could not be made; the label says why (`upstream-refused`, ...).
    Upstream(String),
}

impl CopyEnd {
    /// Short label for the audit record.
    pub fn label(&self) -> String {
        match self {
            Self::Closed => "closed".into(),
            Self::IdleTimeout => "idle-timeout".into(),
            Self::Shutdown => "agent-shutdown".into(),
            Self::Error(e) => format!("error: {e}"),
            Self::Upstream(label) => label.clone(),
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
            // Nothing after all (stale readiness, or the budget ran out and the task yielded):
            // back to waiting, without the buffer.
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

/// One read attempt into `buf`: `Pending` when there is nothing to read after all (the caller
/// then waits for readiness again instead of holding the buffer).
///
/// `poll_read` also answers `Pending` when the task has used up its cooperative budget (tokio
/// then asks for the task to be polled again), while `readable()` does not look at the budget:
/// so on `Pending` this yields to the scheduler before the caller tries again. Without that
/// yield the task would loop on readable-but-pending without ever giving its budget a chance to
/// be renewed.
async fn read_now(src: &mut ReadHalf<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
    let mut rb = ReadBuf::new(buf);
    let polled = poll_fn(|cx| {
        Poll::Ready(
            Pin::new(&mut *src)
                .poll_read(cx, &mut rb)
                .map_ok(|()| rb.filled().len()),
        )
    })
    .await;
    if polled.is_pending() {
        tokio::task::yield_now().await;
    }
    polled
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

    /// The copy between two sockets it owns, with no stop signal, to its end.
    async fn copy(mut a: TcpStream, mut b: TcpStream, idle: Duration) -> Transfer {
        bidirectional(&mut a, &mut b, idle, std::future::pending()).await
    }

    /// A connected pair of sockets on loopback.
    async fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (b, _) = l.accept().await.unwrap();
        (a, b)
    }

    #[tokio::test]
    async fn copies_both_ways_with_half_close() {
        let (mut client, proxy_client) = pair().await;
        let (proxy_up, mut server) = pair().await;
        let copy =
            tokio::spawn(async move { copy(proxy_client, proxy_up, Duration::from_secs(5)).await });
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

    /// A stream long enough to use up the task's cooperative budget many times over must not
    /// make the copy spin (poll_read answers Pending for the budget, readable() does not). The
    /// peers are plain threads that keep the sockets full and empty, so the copy task reads
    /// many times in a row without its socket running dry. The runtime is built here so that a
    /// spinning copy (which never yields, so no timer fires) fails the test instead of hanging it.
    #[test]
    fn a_long_stream_outlasts_the_coop_budget() {
        use std::io::{Read as _, Write as _};
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let total: usize = 256 << 20;
        let std_socket = |s: TcpStream| {
            let s = s.into_std().unwrap();
            s.set_nonblocking(false).unwrap();
            s
        };
        let ((client, proxy_client), (proxy_up, server)) =
            rt.block_on(async { (pair().await, pair().await) });
        let (mut client, mut server) =
            rt.block_on(async { (std_socket(client), std_socket(server)) });
        let writer = std::thread::spawn(move || {
            let chunk = vec![1u8; 1 << 20];
            for _ in 0..total / chunk.len() {
                client.write_all(&chunk).unwrap();
            }
            client.shutdown(std::net::Shutdown::Write).unwrap();
            client
        });
        let reader = std::thread::spawn(move || {
            let mut buf = vec![0u8; 1 << 20];
            let mut got = 0usize;
            loop {
                match server.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got += n,
                }
            }
            server.shutdown(std::net::Shutdown::Write).unwrap();
            got
        });
        let (done, finished) = std::sync::mpsc::channel();
        rt.spawn(async move {
            let t = copy(proxy_client, proxy_up, Duration::from_secs(30)).await;
            let _ = done.send(t.up);
        });
        let Ok(up) = finished.recv_timeout(Duration::from_secs(60)) else {
            // The worker is stuck in the copy: dropping the runtime would wait for it forever.
            std::mem::forget(rt);
            panic!("the copy did not complete within 60 s (spinning without yielding?)");
        };
        assert_eq!(up, total as u64);
        assert_eq!(reader.join().unwrap(), total);
        drop(writer.join().unwrap());
    }

    /// A peer that resets its connection ends the copy with an error (its socket reports the
    /// error as readiness with nothing to read: the copy must not spin on it).
    #[tokio::test]
    async fn a_reset_peer_ends_the_copy() {
        let (client, proxy_client) = pair().await;
        let (proxy_up, server) = pair().await;
        let copy =
            tokio::spawn(
                async move { copy(proxy_client, proxy_up, Duration::from_secs(30)).await },
            );
        // Let the copy wait on both sockets, then reset the upstream side (RST, not FIN).
        tokio::time::sleep(Duration::from_millis(50)).await;
        server.set_zero_linger().unwrap();
        drop(server);
        let t = tokio::time::timeout(Duration::from_secs(10), copy)
            .await
            .expect("the copy ended after the reset")
            .unwrap();
        assert!(
            matches!(t.end, CopyEnd::Error(_) | CopyEnd::Closed),
            "{:?}",
            t.end
        );
        drop(client);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_timeout_ends_the_copy() {
        let (_client, proxy_client) = pair().await;
        let (proxy_up, _server) = pair().await;
        let t = copy(proxy_client, proxy_up, Duration::from_secs(30)).await;
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
