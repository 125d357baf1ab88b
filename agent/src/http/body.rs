//! Body types of the handler: one boxed body type towards the client and the upstream, a body
//! that replays already-read chunks before the rest of a stream, and small constructors.
use std::{
    collections::VecDeque,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full, combinators::BoxBody};
use hyper::body::{Body, Frame, SizeHint};

/// Error of a proxied body (hyper's, or ours).
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// Every body the handler sends, either way.
pub type ProxyBody = BoxBody<Bytes, BodyError>;

/// A complete body.
pub fn full(bytes: impl Into<Bytes>) -> ProxyBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// No body.
pub fn empty() -> ProxyBody {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed()
}

/// Boxes any body whose error converts into [`BodyError`].
pub fn boxed<B>(body: B) -> ProxyBody
where
    B: Body<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<BodyError>,
{
    body.map_err(Into::into).boxed()
}

/// Chunks already read from a body, then the rest of it: a response read partly (to decide
/// whether it can be masked) and then passed on as it is.
pub struct Prefixed<B> {
    head: VecDeque<Bytes>,
    rest: Option<B>,
}

impl<B> Prefixed<B> {
    /// `head` first, then `rest` (`None`: the body had ended).
    pub fn new(head: Vec<Bytes>, rest: Option<B>) -> Self {
        Self {
            head: head.into(),
            rest,
        }
    }
}

impl<B> Body for Prefixed<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Some(chunk) = self.head.pop_front() {
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        match self.rest.as_mut() {
            Some(rest) => Pin::new(rest).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.head.is_empty() && self.rest.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        let head: u64 = self.head.iter().map(|b| b.len() as u64).sum();
        let rest = self
            .rest
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint);
        let mut hint = SizeHint::new();
        // Upper first: a lower bound above the current upper one panics.
        if let Some(upper) = rest.upper() {
            hint.set_upper(upper + head);
        }
        hint.set_lower(rest.lower() + head);
        hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn prefixed_replays_then_continues() {
        let rest = Full::new(Bytes::from_static(b"world"));
        let body = Prefixed::new(
            vec![Bytes::from_static(b"hello "), Bytes::new()],
            Some(rest),
        );
        assert_eq!(body.size_hint().exact(), Some(11));
        let all = body.collect().await.unwrap().to_bytes();
        assert_eq!(&all[..], b"hello world");
        let ended: Prefixed<Full<Bytes>> = Prefixed::new(vec![Bytes::from_static(b"x")], None);
        assert_eq!(&ended.collect().await.unwrap().to_bytes()[..], b"x");
    }
}
