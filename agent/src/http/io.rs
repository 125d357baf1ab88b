//! A stream that tells what it reads (up) and writes (down) to a [`Tally`], whatever runs on top
//! of it (TLS, HTTP/1.1, HTTP/2, an upgraded WebSocket): the client connection's byte counts,
//! or a splice's activity (`idle`).
use std::{
    io,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes moved on a connection.
#[derive(Debug, Default)]
pub struct Counters {
    /// Read from the client.
    pub up: AtomicU64,
    /// Written to the client.
    pub down: AtomicU64,
}

/// What a [`Counted`] stream tells of the bytes it moves.
pub trait Tally {
    /// `n` bytes were read (`n` > 0).
    fn read(&self, n: usize);
    /// `n` bytes were written (`n` > 0).
    fn written(&self, n: usize);
}

impl Tally for Arc<Counters> {
    fn read(&self, n: usize) {
        self.up.fetch_add(n as u64, Ordering::Relaxed);
    }

    fn written(&self, n: usize) {
        self.down.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// A stream telling its traffic to a [`Tally`] (by default, shared [`Counters`]).
#[derive(Debug)]
pub struct Counted<T, C = Arc<Counters>> {
    inner: T,
    counters: C,
}

impl<T, C> Counted<T, C> {
    /// Wraps `inner`.
    pub fn new(inner: T, counters: C) -> Self {
        Self { inner, counters }
    }
}

impl<T: AsyncRead + Unpin, C: Tally + Unpin> AsyncRead for Counted<T, C> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            self.counters.read(n);
        }
        r
    }
}

impl<T: AsyncWrite + Unpin, C: Tally + Unpin> AsyncWrite for Counted<T, C> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r
            && n > 0
        {
            self.counters.written(n);
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = r
            && n > 0
        {
            self.counters.written(n);
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn counts_both_ways() {
        let (a, mut b) = tokio::io::duplex(64);
        let counters = Arc::new(Counters::default());
        let mut c = Counted::new(a, counters.clone());
        b.write_all(b"hello").await.unwrap();
        let mut buf = [0u8; 5];
        c.read_exact(&mut buf).await.unwrap();
        c.write_all(b"abc").await.unwrap();
        assert_eq!(counters.up.load(Ordering::Relaxed), 5);
        assert_eq!(counters.down.load(Ordering::Relaxed), 3);
    }
}
