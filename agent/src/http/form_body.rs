//! A request body watched for a form's `_method` (see `policy::http::form`): each chunk is
//! scanned before it goes upstream, and a `_method` it finds is decided as a `?_method=` of the
//! request would be (every reading: the gate, approvals included). A denial fails the body, so
//! the upstream never receives the whole request (hyper closes an HTTP/1.1 connection, resets an
//! HTTP/2 stream) and the exchange answers 403 with the deciding rule ([`Verdict::take`]).
use std::{
    collections::VecDeque,
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex, PoisonError},
    task::{Context, Poll},
};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};

use super::{
    body::BodyError,
    gate::{Gate, fixed_deny},
    request::Facts,
};
use crate::{
    policy::{Decision, FormFound, FormScan},
    sync::lock,
};

/// The rule reported when a form body cannot be read for a `_method` (see
/// `policy::http::form::Found::Unreadable`).
pub const UNREADABLE_FORM: &str = "unreadable-form";

/// Where a watched body leaves the decision that denied it, for the exchange.
#[derive(Clone, Default)]
pub struct Verdict(Arc<Mutex<Option<Decision>>>);

impl Verdict {
    /// The denial, if the body was denied.
    pub fn take(&self) -> Option<Decision> {
        lock(&self.0).take()
    }

    fn set(&self, d: Decision) {
        *lock(&self.0) = Some(d);
    }
}

/// Why a watched body failed (what hyper reports upstream-side; the client gets the 403).
#[derive(Debug, thiserror::Error)]
#[error("request body denied by rule {0} (a form's _method)")]
pub struct Denied(String);

/// A decision under way (in a `Mutex` only to be `Sync`, as a proxied body must be; it is
/// reached through `get_mut`, never locked).
type Deciding = Mutex<Pin<Box<dyn Future<Output = Decision> + Send>>>;

/// A request body scanned for `_method` fields as it streams.
pub struct Watched<B> {
    inner: B,
    scan: FormScan,
    /// The request's facts, with the `_method`s found so far as query parameters.
    facts: Facts,
    gate: Arc<dyn Gate>,
    verdict: Verdict,
    /// Chunks scanned, not yet given out.
    held: VecDeque<Frame<Bytes>>,
    /// A decision on what was found, under way.
    deciding: Option<Deciding>,
    /// Found, not yet decided.
    found: Vec<FormFound>,
    /// The inner body ended.
    ended: bool,
    /// Denied: every later poll fails too (a body that just ended would let a chunked request
    /// end cleanly).
    denied: Option<String>,
}

impl<B> Watched<B> {
    /// Watches `inner`, a body of the request `facts` describes, with `scan` for its type.
    pub fn new(
        inner: B,
        scan: FormScan,
        facts: Facts,
        gate: Arc<dyn Gate>,
        verdict: Verdict,
    ) -> Self {
        Self {
            inner,
            scan,
            facts,
            gate,
            verdict,
            held: VecDeque::new(),
            deciding: None,
            found: Vec::new(),
            ended: false,
            denied: None,
        }
    }

    /// Starts deciding what was found: an unreadable form is denied outright.
    fn decide_found(&mut self) {
        if self.found.is_empty() {
            return;
        }
        let mut unreadable = false;
        for f in self.found.drain(..) {
            match f {
                FormFound::Method(m) => self.facts.query.push(("_method".to_owned(), m)),
                FormFound::Unreadable(why) => {
                    tracing::debug!(why, "form body unreadable for _method");
                    unreadable = true;
                }
            }
        }
        if unreadable {
            self.deciding = Some(Mutex::new(Box::pin(std::future::ready(fixed_deny(
                UNREADABLE_FORM,
            )))));
            return;
        }
        let gate = self.gate.clone();
        let facts = self.facts.clone();
        self.deciding = Some(Mutex::new(Box::pin(
            async move { gate.decide(&facts).await },
        )));
    }
}

impl<B> Body for Watched<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BodyError>,
{
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        loop {
            if let Some(rule) = &this.denied {
                return Poll::Ready(Some(Err(Denied(rule.clone()).into())));
            }
            if let Some(deciding) = &mut this.deciding {
                let deciding = deciding.get_mut().unwrap_or_else(PoisonError::into_inner);
                let decision = std::task::ready!(deciding.as_mut().poll(cx));
                this.deciding = None;
                if !decision.permits() {
                    this.denied = Some(decision.rule.clone());
                    this.verdict.set(decision);
                    continue;
                }
            }
            if (this.ended || !this.scan.holding())
                && let Some(frame) = this.held.pop_front()
            {
                return Poll::Ready(Some(Ok(frame)));
            }
            if this.ended {
                return Poll::Ready(None);
            }
            match std::task::ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                None => {
                    this.scan.finish(&mut this.found);
                    this.ended = true;
                }
                Some(Ok(frame)) => {
                    match frame.data_ref() {
                        Some(data) => this.scan.feed(data, &mut this.found),
                        // Trailers: the body's data has ended.
                        None => this.scan.finish(&mut this.found),
                    }
                    this.held.push_back(frame);
                }
                Some(Err(e)) => return Poll::Ready(Some(Err(e.into()))),
            }
            this.decide_found();
        }
    }

    fn is_end_stream(&self) -> bool {
        self.denied.is_none()
            && self.held.is_empty()
            && self.deciding.is_none()
            && (self.ended || self.inner.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
