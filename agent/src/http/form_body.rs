//! A request body watched for a form's `_method` (see `policy::http::form`): each chunk is
//! scanned before it goes upstream, and a `_method` it finds is decided as a `?_method=` of the
//! request would be (every reading: the gate, approvals included). A denial fails the body, so
//! the upstream never receives the whole request (hyper closes an HTTP/1.1 connection, resets an
//! HTTP/2 stream) and the exchange answers 403 with the deciding rule ([`Verdict::denial`]).
//! An upstream may answer before the body ends: the exchange's record then waits for the body
//! ([`Verdict::when_done`]), so a later denial is what it records.
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
    policy::{AMBIGUOUS_REQUEST, FormFed, FormFound, FormScan, RequestDecision},
    sync::lock,
};

/// Why a request was read as it was denied, when a form body's `_method` gave the reading.
pub const FORM_METHOD: &str = "a form's _method";
/// The rule reported when a form body cannot be read for a `_method` (see
/// `policy::http::form::Found::Unreadable`).
pub const UNREADABLE_FORM: &str = "unreadable-form";
/// Distinct `_method` values a body may give before it is denied as ambiguous (each is
/// decided, as a reading of the request).
pub const MAX_FORM_METHODS: usize = 16;
/// Chunks held while a `_method` value may go on, before the body is denied as unreadable.
const MAX_HELD: usize = 64;

/// Where a watched body leaves the decision that denied it, for the exchange; and where the
/// exchange's record waits for the body to be done, when the upstream answered first.
#[derive(Clone, Default)]
pub struct Verdict(Arc<Mutex<Outcome>>);

/// Run once the body is done, with its denial if any.
type Settle = Box<dyn FnOnce(Option<RequestDecision>) + Send>;

#[derive(Default)]
struct Outcome {
    denial: Option<RequestDecision>,
    /// The body was denied, ended, or dropped: nothing more will be decided.
    done: bool,
    waiting: Option<Settle>,
}

impl Verdict {
    /// The denial, if the body was denied.
    pub fn denial(&self) -> Option<RequestDecision> {
        lock(&self.0).denial.clone()
    }

    /// Calls `settle` with the body's denial, if any, once the body is done: at once if it is.
    /// An upstream may answer before the body ends; its exchange's record waits for the body.
    pub fn when_done(&self, settle: impl FnOnce(Option<RequestDecision>) + Send + 'static) {
        let mut o = lock(&self.0);
        if o.done {
            let denial = o.denial.clone();
            drop(o);
            settle(denial);
        } else {
            o.waiting = Some(Box::new(settle));
        }
    }

    fn deny(&self, d: RequestDecision) {
        lock(&self.0).denial = Some(d);
        self.done();
    }

    /// Nothing more will be decided: runs what waits (outside the lock).
    fn done(&self) {
        let (waiting, denial) = {
            let mut o = lock(&self.0);
            o.done = true;
            (o.waiting.take(), o.denial.clone())
        };
        if let Some(settle) = waiting {
            settle(denial);
        }
    }
}

/// Why a watched body failed (what hyper reports upstream-side; the client gets the 403).
#[derive(Debug, thiserror::Error)]
#[error("request body denied by rule {0} ({FORM_METHOD})")]
pub struct Denied(String);

/// A decision under way (in a `Mutex` only to be `Sync`, as a proxied body must be; it is
/// reached through `get_mut`, never locked).
type Deciding = Mutex<Pin<Box<dyn Future<Output = RequestDecision> + Send>>>;

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
    /// A chunk being scanned step by step (a coded body), and how many of its bytes the scan
    /// took so far.
    feeding: Option<(Bytes, usize)>,
    /// A decision on what was found, under way.
    deciding: Option<Deciding>,
    /// Found, not yet decided.
    found: Vec<FormFound>,
    /// The distinct `_method` values found so far.
    methods: Vec<String>,
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
            feeding: None,
            deciding: None,
            found: Vec::new(),
            methods: Vec::new(),
            ended: false,
            denied: None,
        }
    }

    /// Starts deciding what was found, if it adds a value: an unreadable form is denied
    /// outright, as are more than [`MAX_FORM_METHODS`] values.
    fn decide_found(&mut self) {
        let mut new = false;
        let mut denial = None;
        for f in self.found.drain(..) {
            match f {
                FormFound::Method(m) => {
                    if !self.methods.contains(&m) {
                        self.methods.push(m.clone());
                        self.facts.query.push(("_method".to_owned(), m));
                        new = true;
                    }
                }
                FormFound::Unreadable(why) => {
                    tracing::debug!(why, "form body unreadable for _method");
                    denial = Some(UNREADABLE_FORM);
                }
            }
        }
        if self.methods.len() > MAX_FORM_METHODS {
            denial = denial.or(Some(AMBIGUOUS_REQUEST));
        }
        if self.held.len() > MAX_HELD && self.scan.holding() {
            // Chunks (empty HTTP/2 DATA frames, say) piling up inside one value.
            denial = denial.or(Some(UNREADABLE_FORM));
        }
        if let Some(rule) = denial {
            self.deciding = Some(Mutex::new(Box::pin(std::future::ready(
                fixed_deny(rule).into(),
            ))));
            return;
        }
        if !new {
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
                if !decision.decision.permits() {
                    this.denied = Some(decision.decision.rule.clone());
                    this.verdict.deny(decision);
                    continue;
                }
            }
            if let Some((data, taken)) = &mut this.feeding {
                match this.scan.feed_step(&data[*taken..], &mut this.found) {
                    FormFed::All => {
                        let data = std::mem::take(data);
                        this.feeding = None;
                        this.held.push_back(Frame::data(data));
                        this.decide_found();
                    }
                    FormFed::Partly(n) => {
                        // A step's worth of work: let the agent's other connections run.
                        *taken += n;
                        this.decide_found();
                        cx.waker().wake_by_ref();
                        return Poll::Pending;
                    }
                }
                continue;
            }
            if (this.ended || !this.scan.holding())
                && let Some(frame) = this.held.pop_front()
            {
                return Poll::Ready(Some(Ok(frame)));
            }
            if this.ended {
                this.verdict.done();
                return Poll::Ready(None);
            }
            match std::task::ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                None => {
                    this.scan.finish(&mut this.found);
                    this.ended = true;
                }
                Some(Ok(frame)) => match frame.into_data() {
                    // Scanned (by steps) before it is held.
                    Ok(data) => this.feeding = Some((data, 0)),
                    // Trailers: the body's data has ended.
                    Err(trailers) => {
                        this.scan.finish(&mut this.found);
                        this.held.push_back(trailers);
                    }
                },
                Some(Err(e)) => return Poll::Ready(Some(Err(e.into()))),
            }
            this.decide_found();
        }
    }

    fn is_end_stream(&self) -> bool {
        self.denied.is_none()
            && self.held.is_empty()
            && self.feeding.is_none()
            && self.deciding.is_none()
            && (self.ended || self.inner.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> Drop for Watched<B> {
    /// A body dropped before its end (the upstream connection closed, the client went away)
    /// decides nothing more.
    fn drop(&mut self) {
        self.verdict.done();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use http_body_util::BodyExt;

    use super::*;
    use crate::policy::Verdict as Action;

    /// Denies a request whose `_method`s include DELETE; counts its decisions.
    #[derive(Default)]
    struct NoDeletes(AtomicUsize);

    impl Gate for NoDeletes {
        fn decide<'a>(
            &'a self,
            facts: &'a Facts,
        ) -> Pin<Box<dyn Future<Output = RequestDecision> + Send + 'a>> {
            self.0.fetch_add(1, Ordering::SeqCst);
            let delete = facts.query.iter().any(|(_, v)| v == "DELETE");
            Box::pin(std::future::ready(
                if delete {
                    fixed_deny("no-deletes")
                } else {
                    crate::policy::Decision {
                        verdict: Action::Allow,
                        enforced: true,
                        rule: "ok".into(),
                        target: None,
                    }
                }
                .into(),
            ))
        }
    }

    /// A body of these chunks.
    struct Chunks(VecDeque<Bytes>);

    impl Body for Chunks {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            Poll::Ready(self.0.pop_front().map(|b| Ok(Frame::data(b))))
        }
    }

    fn watched(chunks: Vec<String>, gate: Arc<NoDeletes>) -> (Watched<Chunks>, Verdict) {
        let scan = FormScan::of("POST", &[]).expect("untyped POST");
        watched_with(chunks.into_iter().map(Bytes::from).collect(), scan, gate)
    }

    fn watched_with(
        chunks: Vec<Bytes>,
        scan: FormScan,
        gate: Arc<NoDeletes>,
    ) -> (Watched<Chunks>, Verdict) {
        let facts = Facts {
            method: "POST".into(),
            host: "h".into(),
            path: "/".into(),
            query: Vec::new(),
            headers: Vec::new(),
        };
        let verdict = Verdict::default();
        let body = Chunks(chunks.into_iter().collect());
        (
            Watched::new(body, scan, facts, gate, verdict.clone()),
            verdict,
        )
    }

    #[tokio::test]
    async fn a_denied_body_stays_failed() {
        let gate = Arc::new(NoDeletes::default());
        let chunks = ["a=1&", "_method=DELETE&", "b=2"]
            .map(str::to_owned)
            .to_vec();
        let (mut body, verdict) = watched(chunks, gate);
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(&first[..], b"a=1&");
        for _ in 0..3 {
            assert!(body.frame().await.unwrap().is_err(), "failed, and again");
        }
        assert!(!body.is_end_stream());
        assert_eq!(verdict.denial().unwrap().decision.rule, "no-deletes");
    }

    /// What waits for a body runs once it is done: at its denial, its end or its drop; at once
    /// when it already is.
    #[tokio::test]
    async fn what_waits_for_a_body_runs_when_it_is_done() {
        let settled = |v: &Verdict| {
            let out = Arc::new(Mutex::new(None));
            let o = out.clone();
            v.when_done(move |d| *lock(&o) = Some(d.map(|d| d.decision.rule)));
            out
        };
        let gate = Arc::new(NoDeletes::default());
        let (body, verdict) = watched(vec!["_method=DELETE".into()], gate.clone());
        let out = settled(&verdict);
        assert!(lock(&out).is_none(), "not before the body is done");
        assert!(body.collect().await.is_err());
        assert_eq!(*lock(&out), Some(Some("no-deletes".to_owned())));
        assert_eq!(
            *lock(&settled(&verdict)),
            Some(Some("no-deletes".to_owned()))
        );

        let (body, verdict) = watched(vec!["_method=POST".into()], gate.clone());
        let out = settled(&verdict);
        body.collect().await.unwrap();
        assert_eq!(*lock(&out), Some(None));

        let (body, verdict) = watched(vec!["_method=DELETE".into()], gate);
        let out = settled(&verdict);
        drop(body);
        assert_eq!(*lock(&out), Some(None), "dropped unread: nothing decided");
    }

    /// A value that goes on chunk after chunk (empty HTTP/2 DATA frames, say) is not held past
    /// [`MAX_HELD`] chunks.
    #[tokio::test]
    async fn chunks_held_inside_one_value_are_bounded() {
        let gate = Arc::new(NoDeletes::default());
        let mut chunks = vec!["a=1&_method=".to_owned()];
        chunks.extend((0..MAX_HELD + 5).map(|_| "X".to_owned()));
        chunks.push("&b=2".to_owned());
        let (body, verdict) = watched(chunks, gate.clone());
        assert!(body.collect().await.is_err());
        assert_eq!(verdict.denial().unwrap().decision.rule, UNREADABLE_FORM);
        assert_eq!(
            gate.0.load(Ordering::SeqCst),
            0,
            "denied without a decision"
        );
    }

    /// Counts its wake-ups.
    #[derive(Default)]
    struct Wakes(AtomicUsize);

    impl std::task::Wake for Wakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A chunk of a coded body that inflates far is scanned by steps, the body yielding (and
    /// waking itself) between them, so one request never holds the agent's worker for long; its
    /// `_method` is decided as ever.
    #[test]
    fn a_coded_chunk_that_inflates_far_yields_between_steps() {
        use std::io::Write as _;
        let mut json = b"{\"a\": \"".to_vec();
        json.resize(json.len() + (4 << 20), b'0');
        json.extend_from_slice(b"\", \"_method\": \"DELETE\"}");
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(&json).unwrap();
        let sent = Bytes::from(e.finish().unwrap());
        let headers = [
            ("content-type", "application/json"),
            ("content-encoding", "gzip"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let scan = FormScan::of("POST", &headers).expect("a coded JSON scan");
        let gate = Arc::new(NoDeletes::default());
        let (mut body, verdict) = watched_with(vec![sent], scan, gate.clone());

        let wakes = Arc::new(Wakes::default());
        let waker = std::task::Waker::from(wakes.clone());
        let mut cx = Context::from_waker(&waker);
        let mut pending = 0;
        let end = loop {
            match Pin::new(&mut body).poll_frame(&mut cx) {
                Poll::Pending => pending += 1,
                Poll::Ready(r) => break r,
            }
        };
        // 4 MiB decoded in steps of 512 KiB.
        assert!(pending >= 6, "{pending} steps");
        assert_eq!(
            wakes.0.load(Ordering::SeqCst),
            pending,
            "woken after each step"
        );
        assert!(end.unwrap().is_err(), "the body fails");
        assert_eq!(verdict.denial().unwrap().decision.rule, "no-deletes");
        assert_eq!(gate.0.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn repeated_values_are_decided_once_and_many_are_denied() {
        let gate = Arc::new(NoDeletes::default());
        let (body, verdict) = watched(vec!["_method=POST&".repeat(10_000)], gate.clone());
        let all = body.collect().await.unwrap().to_bytes();
        assert_eq!(all.len(), 130_000);
        assert_eq!(gate.0.load(Ordering::SeqCst), 1);
        assert!(verdict.denial().is_none());

        let many: String = (0..=MAX_FORM_METHODS)
            .map(|i| format!("_method=M{i}&"))
            .collect();
        let (body, verdict) = watched(vec![many], gate);
        assert!(body.collect().await.is_err());
        // The scan's own limit comes first.
        assert_eq!(verdict.denial().unwrap().decision.rule, UNREADABLE_FORM);
    }
}
