//! Idleness of the client connections that have no read deadline of their own: an HTTP/2
//! connection (hyper's header read timeout is HTTP/1.1's) and a spliced WebSocket. Each is closed
//! once nothing moved on it, with nothing in flight, for the agent's `idle_timeout`, as a tcp
//! target's connection is: otherwise an idle client would hold, for ever, a connection slot that
//! every workload shares. (An exchange in flight keeps its connection, as on HTTP/1.1: a client
//! that never reads a response holds it until the response's own limits end it.)
use std::{
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::Instant;

/// When something last happened on a connection, and how many of its exchanges are in flight.
#[derive(Debug)]
pub struct Activity {
    start: Instant,
    /// Milliseconds from `start` to the last activity.
    last: AtomicU64,
    open: AtomicUsize,
}

impl Activity {
    /// Activity from now on.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            start: Instant::now(),
            last: AtomicU64::new(0),
            open: AtomicUsize::new(0),
        })
    }

    /// Something happened now.
    pub fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(ms, Ordering::Relaxed);
    }

    /// An exchange began: the connection is not idle until the guard is dropped.
    pub fn open(self: &Arc<Self>) -> Open {
        self.open.fetch_add(1, Ordering::Relaxed);
        self.touch();
        Open(self.clone())
    }

    fn last(&self) -> Instant {
        self.start + Duration::from_millis(self.last.load(Ordering::Relaxed))
    }

    fn in_flight(&self) -> bool {
        self.open.load(Ordering::Acquire) > 0
    }

    /// Resolves once nothing was in flight and nothing happened for `idle`.
    pub async fn idle_for(&self, idle: Duration) {
        loop {
            let deadline = if self.in_flight() {
                Instant::now() + idle
            } else {
                self.last() + idle
            };
            tokio::time::sleep_until(deadline).await;
            if !self.in_flight() && Instant::now() >= self.last() + idle {
                return;
            }
        }
    }
}

/// An exchange in flight (see [`Activity::open`]).
#[derive(Debug)]
pub struct Open(Arc<Activity>);

impl Drop for Open {
    fn drop(&mut self) {
        // Touched first: a watcher that sees nothing in flight must also see this end.
        self.0.touch();
        self.0.open.fetch_sub(1, Ordering::Release);
    }
}

/// A response body whose exchange stays in flight until hyper has sent it, or dropped it.
pub struct Held<B> {
    body: B,
    _open: Open,
}

impl<B> Held<B> {
    /// `body`, in flight while `open` is held.
    pub fn new(body: B, open: Open) -> Self {
        Self { body, _open: open }
    }
}

impl<B> Body for Held<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A splice's traffic is activity (`io::Counted<IO, Arc<Activity>>`).
impl super::io::Tally for Arc<Activity> {
    fn read(&self, _: usize) {
        self.touch();
    }

    fn written(&self, _: usize) {
        self.touch();
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    const IDLE: Duration = Duration::from_secs(30);

    /// Whether `idle_for` resolves within `within` from now.
    async fn idles_within(activity: &Activity, within: Duration) -> bool {
        tokio::time::timeout(within, activity.idle_for(IDLE))
            .await
            .is_ok()
    }

    #[tokio::test(start_paused = true)]
    async fn idle_after_the_timeout_unless_something_happens_or_is_in_flight() {
        let a = Activity::new();
        assert!(!idles_within(&a, IDLE - Duration::from_secs(1)).await);
        assert!(idles_within(&a, Duration::from_secs(2)).await);

        // Activity pushes the deadline back.
        a.touch();
        tokio::time::advance(IDLE - Duration::from_secs(1)).await;
        a.touch();
        assert!(!idles_within(&a, IDLE - Duration::from_secs(1)).await);
        assert!(idles_within(&a, Duration::from_secs(2)).await);

        // An exchange in flight keeps it, however long; its end starts the count.
        let open = a.open();
        assert!(!idles_within(&a, IDLE * 4).await);
        drop(open);
        assert!(!idles_within(&a, IDLE - Duration::from_secs(1)).await);
        assert!(idles_within(&a, Duration::from_secs(2)).await);
    }

    #[tokio::test(start_paused = true)]
    async fn reads_and_writes_are_activity() {
        let a = Activity::new();
        let (mut near, far) = tokio::io::duplex(64);
        let mut far = super::super::io::Counted::new(far, a.clone());
        tokio::time::advance(IDLE - Duration::from_secs(1)).await;
        near.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        far.read_exact(&mut buf).await.unwrap();
        assert!(!idles_within(&a, IDLE - Duration::from_secs(1)).await);
        far.write_all(b"pong").await.unwrap();
        assert!(!idles_within(&a, IDLE - Duration::from_secs(1)).await);
        assert!(idles_within(&a, Duration::from_secs(2)).await);
    }
}
