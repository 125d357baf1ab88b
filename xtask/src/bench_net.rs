//! Loopback servers and client loops of `cargo xtask bench`. Every server tells the client the
//! source port it saw, so each measurement checks that it really went through the proxy (the
//! port differs from the client's own) or really went direct (the same port).
use std::{
    io::{Read as _, Write as _},
    net::{Shutdown, SocketAddr, TcpListener, TcpStream},
    os::fd::AsRawFd as _,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

/// How a connection reached the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// The server saw the client's own source port.
    Direct,
    /// The server saw another source port: a proxy hop.
    Proxied,
}

impl Path {
    fn of(client_port: u16, seen_port: u16) -> Path {
        if client_port == seen_port {
            Path::Direct
        } else {
            Path::Proxied
        }
    }
}

/// A server thread on loopback; stopped on drop.
pub struct Server {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

/// Listens on `bind`; `handle` runs for each accepted connection in the accept thread (it must
/// return quickly) or spawns its own thread.
fn serve(bind: &str, mut handle: impl FnMut(TcpStream) + Send + 'static) -> anyhow::Result<Server> {
    let listener = TcpListener::bind(bind).with_context(|| format!("bind {bind}"))?;
    deepen_backlog(&listener)?;
    let addr = listener.local_addr()?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    thread::spawn(move || {
        for conn in listener.incoming() {
            if flag.load(Ordering::Relaxed) {
                break;
            }
            if let Ok(conn) = conn {
                handle(conn);
            }
        }
    });
    Ok(Server { addr, stop })
}

unsafe extern "C" {
    /// listen(2) from the C library std already links.
    fn listen(fd: std::ffi::c_int, backlog: std::ffi::c_int) -> std::ffi::c_int;
}

/// std listens with a backlog of 128: a tight connect loop overflows it whenever the accept
/// thread is descheduled, and each dropped SYN costs a 1 s retransmission, which would swamp
/// the connect cost. listen(2) again on the bound socket raises it.
fn deepen_backlog(listener: &TcpListener) -> anyhow::Result<()> {
    // SAFETY: `listen` on a valid socket descriptor owned by `listener`; no memory is passed.
    let rc = unsafe { listen(listener.as_raw_fd(), 4096) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).context("listen(4096)");
    }
    Ok(())
}

fn seen_port(conn: &TcpStream) -> u16 {
    conn.peer_addr().map_or(0, |a| a.port())
}

/// Reads everything until EOF, then answers with the byte count (u64 LE) and the source port
/// it saw (u16 LE).
pub fn sink(bind: &str) -> anyhow::Result<Server> {
    serve(bind, |mut conn| {
        thread::spawn(move || {
            let port = seen_port(&conn);
            let mut buf = vec![0u8; 256 * 1024];
            let mut total = 0u64;
            loop {
                match conn.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => total += n as u64,
                    Err(_) => return,
                }
            }
            let mut ack = total.to_le_bytes().to_vec();
            ack.extend_from_slice(&port.to_le_bytes());
            let _ = conn.write_all(&ack);
        });
    })
}

/// Sends the source port it saw (u16 LE), then echoes every byte back.
pub fn echo(bind: &str) -> anyhow::Result<Server> {
    serve(bind, |mut conn| {
        thread::spawn(move || {
            let _ = conn.set_nodelay(true);
            if conn.write_all(&seen_port(&conn).to_le_bytes()).is_err() {
                return;
            }
            let mut buf = [0u8; 4096];
            loop {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if conn.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                }
            }
        });
    })
}

/// Accepts and closes at once.
pub fn acceptor(bind: &str) -> anyhow::Result<Server> {
    serve(bind, drop)
}

/// Accepts, answers one byte with the source port it saw (u16 LE), and keeps the
/// connection open (idle) until the server is dropped.
pub fn holder(bind: &str) -> anyhow::Result<Server> {
    let mut held = Vec::new();
    serve(bind, move |mut conn| {
        let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
        let mut b = [0u8; 1];
        if conn.read_exact(&mut b).is_ok()
            && conn.write_all(&seen_port(&conn).to_le_bytes()).is_ok()
        {
            held.push(conn);
        }
    })
}

/// Streams `bytes` to a sink; returns seconds from connect to the sink's acknowledgement.
pub fn stream(addr: SocketAddr, bytes: u64) -> anyhow::Result<(f64, Path)> {
    let buf = vec![0x5au8; 256 * 1024];
    let start = Instant::now();
    let mut conn = TcpStream::connect(addr).with_context(|| format!("connect {addr}"))?;
    let local = conn.local_addr()?.port();
    let mut left = bytes;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        conn.write_all(&buf[..n]).context("stream write")?;
        left -= n as u64;
    }
    conn.shutdown(Shutdown::Write)?;
    let mut ack = [0u8; 10];
    conn.read_exact(&mut ack).context("sink acknowledgement")?;
    let secs = start.elapsed().as_secs_f64();
    let (count, port) = ack.split_at(8);
    let count = u64::from_le_bytes(count.try_into()?);
    if count != bytes {
        bail!("sink received {count} bytes of {bytes}");
    }
    Ok((secs, Path::of(local, u16::from_le_bytes(port.try_into()?))))
}

/// `rounds` ping-pongs of `size` bytes with an echo server; returns each round trip in µs.
pub fn ping_pong(addr: SocketAddr, rounds: usize, size: usize) -> anyhow::Result<(Vec<f64>, Path)> {
    let mut conn = TcpStream::connect(addr).with_context(|| format!("connect {addr}"))?;
    conn.set_nodelay(true)?;
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let local = conn.local_addr()?.port();
    let mut port = [0u8; 2];
    conn.read_exact(&mut port).context("echo greeting")?;
    let msg = vec![0xa5u8; size];
    let mut back = vec![0u8; size];
    let mut rtts = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t = Instant::now();
        conn.write_all(&msg)?;
        conn.read_exact(&mut back).context("echo reply")?;
        rtts.push(t.elapsed().as_secs_f64() * 1e6);
    }
    Ok((rtts, Path::of(local, u16::from_le_bytes(port))))
}

/// `n` connect+close loops; returns the mean µs per loop.
pub fn connect_loop(addr: SocketAddr, n: usize) -> anyhow::Result<f64> {
    let start = Instant::now();
    for i in 0..n {
        let conn = TcpStream::connect(addr).with_context(|| format!("connect {addr} (#{i})"))?;
        drop(conn);
    }
    Ok(start.elapsed().as_secs_f64() * 1e6 / n as f64)
}

/// Opens `n` connections to a holder, each confirmed end to end; checks the path of each.
pub fn open_idle(addr: SocketAddr, n: usize, want: Path) -> anyhow::Result<Vec<TcpStream>> {
    let mut conns = Vec::with_capacity(n);
    for i in 0..n {
        let mut conn = TcpStream::connect(addr).with_context(|| format!("idle connection #{i}"))?;
        conn.set_read_timeout(Some(Duration::from_secs(10)))?;
        let local = conn.local_addr()?.port();
        conn.write_all(&[1])?;
        let mut port = [0u8; 2];
        conn.read_exact(&mut port)
            .with_context(|| format!("idle connection #{i}: no answer"))?;
        let got = Path::of(local, u16::from_le_bytes(port));
        if got != want {
            bail!("idle connection #{i} went {got:?}, expected {want:?}");
        }
        conns.push(conn);
    }
    Ok(conns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_direct_paths() {
        let sink = sink("127.0.0.1:0").expect("sink");
        let (_, path) = stream(sink.addr, 1 << 20).expect("stream");
        assert_eq!(path, Path::Direct);
        let echo = echo("127.0.0.1:0").expect("echo");
        let (rtts, path) = ping_pong(echo.addr, 10, 64).expect("ping");
        assert_eq!((rtts.len(), path), (10, Path::Direct));
        let acc = acceptor("127.0.0.1:0").expect("acceptor");
        assert!(connect_loop(acc.addr, 10).expect("connect") > 0.0);
        let hold = holder("127.0.0.1:0").expect("holder");
        assert_eq!(
            open_idle(hold.addr, 3, Path::Direct).expect("idle").len(),
            3
        );
    }
}
