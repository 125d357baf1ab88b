//! The audit of each exchange: one `requests` row, written when the response to the client ends
//! (or fails, or the client goes away). The request body is counted (and, when the target says
//! `record_bodies`, its start kept, then masked) as it streams.
use std::{
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::{Instant, SystemTime},
};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tracing::debug;

use super::{
    body::{BodyError, ProxyBody, boxed},
    form_body::{FORM_METHOD, Verdict},
    gate::denied_by,
    json,
    request::Facts,
    response::{Kind, kind_of},
};
use crate::{
    masking::MaskCounts,
    policy::{Decision, HttpTarget, RequestDecision, recorded_headers},
    store::{AuditSink, RequestRecord, Slot},
};

/// Where request records go: the audit store, or a test's list.
pub trait Recorder: Send + Sync + 'static {
    /// Takes one record, in the `slot` held for it if any (never blocks).
    fn record(&self, rec: RequestRecord, slot: Option<Slot>);

    /// Holds a slot for the record of a request about to proceed, without waiting; `None`
    /// when the store is behind (see [`AuditSink::hold`]).
    fn try_hold(&self) -> Option<Slot>;

    /// When [`Self::try_hold`] found none: waits for a slot for a while; `None` when the request
    /// must be refused (see [`AuditSink::hold`]).
    fn hold(&self) -> Pin<Box<dyn Future<Output = Option<Slot>> + Send + '_>>;
}

impl Recorder for AuditSink {
    fn record(&self, rec: RequestRecord, slot: Option<Slot>) {
        if let Err(e) = self.request(rec, slot) {
            self.warn_dropped("request", &e);
        }
    }

    fn try_hold(&self) -> Option<Slot> {
        AuditSink::try_hold(self)
    }

    fn hold(&self) -> Pin<Box<dyn Future<Output = Option<Slot>> + Send + '_>> {
        Box::pin(AuditSink::hold(self))
    }
}

/// The recorder of a connection let through unrecorded (`audit_failure = "open"`): it has no
/// row for its requests' records to reference, so they are never sent (the store would refuse
/// each, and retry its whole batch one record at a time). Slots are held as for any request:
/// the store's backpressure applies all the same.
pub struct Unrecorded(pub AuditSink);

impl Recorder for Unrecorded {
    fn record(&self, _rec: RequestRecord, slot: Option<Slot>) {
        drop(slot);
    }

    fn try_hold(&self) -> Option<Slot> {
        self.0.try_hold()
    }

    fn hold(&self) -> Pin<Box<dyn Future<Output = Option<Slot>> + Send + '_>> {
        Box::pin(self.0.hold())
    }
}

/// A request body seen on its way upstream: the bytes that went upstream counted, the start of
/// what the client sent kept when recording.
#[derive(Debug, Default)]
pub struct Tap {
    bytes: AtomicU64,
    /// Kept bytes and whether more were cut; `None` when bodies are not recorded.
    kept: Option<Mutex<(Vec<u8>, bool)>>,
    cap: usize,
}

impl Tap {
    /// A tap keeping at most `cap` bytes when `record`.
    pub fn new(record: bool, cap: usize) -> Self {
        Self {
            bytes: AtomicU64::new(0),
            kept: record.then(|| Mutex::new((Vec::new(), false))),
            cap,
        }
    }

    fn count(&self, data: &[u8]) {
        self.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
    }

    fn keep(&self, data: &[u8]) {
        if let Some(kept) = &self.kept {
            let mut k = crate::sync::lock(kept);
            let room = self.cap.saturating_sub(k.0.len());
            k.0.extend_from_slice(&data[..room.min(data.len())]);
            if data.len() > room {
                k.1 = true;
            }
        }
    }
}

/// A request body passing through a [`Tap`].
pub struct Tapped<B> {
    inner: B,
    tap: Arc<Tap>,
    tapping: Tapping,
}

/// What a [`Tapped`] body gives its tap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tapping {
    /// The bytes counted and the start kept: a body that goes upstream as the client sends it.
    All,
    /// The start kept, as the client sent it: beneath a watch that may deny the body.
    Sent,
    /// The bytes counted that go upstream: above such a watch.
    Forwarded,
}

impl<B> Tapped<B> {
    /// Wraps `inner`, a body that goes upstream as the client sends it.
    pub fn new(inner: B, tap: Arc<Tap>) -> Self {
        Self {
            inner,
            tap,
            tapping: Tapping::All,
        }
    }

    /// Wraps `inner` as the client sends it, beneath a watch that may hold it back or deny it
    /// ([`Tapped::forwarded`] above the watch counts what goes upstream): the start of what the
    /// client sent is kept, denied or not.
    pub fn sent(inner: B, tap: Arc<Tap>) -> Self {
        Self {
            inner,
            tap,
            tapping: Tapping::Sent,
        }
    }

    /// Wraps `inner`, a watch over a [`Tapped::sent`] body: counts the bytes that go upstream.
    pub fn forwarded(inner: B, tap: Arc<Tap>) -> Self {
        Self {
            inner,
            tap,
            tapping: Tapping::Forwarded,
        }
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for Tapped<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &r
            && let Some(data) = frame.data_ref()
        {
            if self.tapping != Tapping::Sent {
                self.tap.count(data);
            }
            if self.tapping != Tapping::Forwarded {
                self.tap.keep(data);
            }
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// One exchange's record, completed as the exchange goes.
pub struct Exchange {
    rec: RequestRecord,
    started: Instant,
    tap: Arc<Tap>,
    /// `Content-Type` of the request, to mask a recorded body.
    request_kind: Option<Kind>,
    target: Arc<HttpTarget>,
    recorder: Arc<dyn Recorder>,
    /// The audit queue's slot held for the record once the request is let through.
    slot: Option<Slot>,
    /// The request body's `_method` verdict, when its body is watched: the record waits for it.
    body: Option<Verdict>,
    /// What happened without failing the exchange ([`Self::note`]).
    notes: Vec<String>,
}

impl Exchange {
    /// Starts the record of request `seq` of connection `connection_id`.
    pub fn new(
        connection_id: uuid::Uuid,
        seq: u32,
        facts: &Facts,
        target: Arc<HttpTarget>,
        recorder: Arc<dyn Recorder>,
    ) -> Self {
        let cap = usize::try_from(target.body_cap).unwrap_or(usize::MAX);
        let content_type = facts
            .headers
            .iter()
            .find(|(n, _)| n == "content-type")
            .and_then(|(_, v)| hyper::header::HeaderValue::from_str(v).ok());
        Self {
            rec: RequestRecord {
                method: facts.method.clone(),
                host: facts.audit_host(),
                path: facts.audit_path(),
                query: facts.query_names(),
                headers: recorded_headers(&facts.headers, &target),
                ..blank(connection_id, seq, SystemTime::now())
            },
            started: Instant::now(),
            tap: Arc::new(Tap::new(target.record_bodies, cap)),
            request_kind: kind_of(content_type.as_ref()),
            target,
            recorder,
            slot: None,
            body: None,
            notes: Vec::new(),
        }
    }

    /// The record of a request that could not be read (malformed, too large): written at once.
    pub fn malformed(
        connection_id: uuid::Uuid,
        seq: u32,
        status: u16,
        error: String,
        recorder: &dyn Recorder,
    ) {
        let rec = RequestRecord {
            connection_id,
            seq,
            started_at: SystemTime::now(),
            duration: None,
            method: String::new(),
            host: String::new(),
            path: String::new(),
            query: Vec::new(),
            status: Some(status),
            bytes_up: 0,
            bytes_down: 0,
            decision: "deny".into(),
            rule: "malformed-request".into(),
            masked: None,
            error: Some(error),
            body: None,
            headers: None,
        };
        recorder.record(rec, None);
    }

    /// The tap the request body must go through.
    pub fn tap(&self) -> Arc<Tap> {
        self.tap.clone()
    }

    /// Keeps the audit queue's slot held for this record ([`Recorder::hold`]).
    pub fn held(&mut self, slot: Slot) {
        self.slot = Some(slot);
    }

    /// Makes the record wait for the verdict of the watched request body (see `form_body`).
    pub fn watch(&mut self, body: Verdict) {
        self.body = Some(body);
    }

    /// Records the decision.
    pub fn decided(&mut self, d: &Decision) {
        self.rec.decision = d.label().to_owned();
        self.rec.rule = d.rule.clone();
    }

    /// Records what masking did.
    pub fn masked(&mut self, counts: &MaskCounts) {
        if !counts.is_empty() {
            self.rec.masked = serde_json::to_value(counts).ok();
        }
    }

    /// Records an error (the first one stays).
    pub fn error(&mut self, e: impl Into<String>) {
        if self.rec.error.is_none() {
            self.rec.error = Some(e.into());
        }
    }

    /// Records something that happened without failing the exchange: written after the
    /// error, if any (joined with `; `), so that it never hides why an exchange failed.
    pub fn note(&mut self, n: String) {
        self.notes.push(n);
    }

    /// Sends `resp` to the client: the record is written when its body ends.
    pub fn respond(mut self, resp: hyper::Response<ProxyBody>) -> hyper::Response<ProxyBody> {
        self.rec.status = Some(resp.status().as_u16());
        resp.map(|body| {
            boxed(Metered {
                inner: body,
                bytes: 0,
                done: Some(self),
            })
        })
    }

    fn finish(mut self, bytes_down: u64, error: Option<String>) {
        if let Some(e) = error {
            self.error(e);
        }
        self.rec.duration = Some(self.started.elapsed());
        self.rec.bytes_down = bytes_down;
        match self.body.take() {
            Some(body) => self.after_body(body),
            None => self.settle(None),
        }
    }

    /// The upstream may answer before a watched body ends, and the body still be denied: the
    /// record waits for the body, up to [`BODY_WAIT`], so that it says so. A body still
    /// streaming then is recorded as it stands (its slot is not kept longer).
    fn after_body(mut self, body: Verdict) {
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        let (connection, seq) = (self.rec.connection_id, self.rec.seq);
        body.when_done(move |denial| {
            // Past the wait, the record has left: the denial is still enforced, and logged.
            if let Err(Some(d)) = tx.send(denial) {
                tracing::warn!(
                    %connection, seq, rule = %d.decision.rule,
                    "request denied by its form body's _method after its record was written"
                );
            }
        });
        match (rx.try_recv(), tokio::runtime::Handle::try_current()) {
            (Ok(denial), _) => self.settle(denial),
            (Err(_), Ok(runtime)) => {
                // Dropped unsettled (the runtime stops), the exchange records itself.
                runtime.spawn(async move {
                    match tokio::time::timeout(BODY_WAIT, rx).await {
                        Ok(denial) => self.settle(denial.ok().flatten()),
                        Err(_) => {
                            self.error(BODY_STILL_STREAMING);
                            self.settle(None);
                        }
                    }
                });
            }
            (Err(_), Err(_)) => {
                self.error(BODY_STILL_STREAMING);
                self.settle(None);
            }
        }
    }

    /// Sends the record, with the watched body's late denial if any.
    fn settle(mut self, denial: Option<RequestDecision>) {
        if let Some(d) = denial {
            self.denied_late(&d);
        }
        let slot = self.slot.take();
        self.send(slot);
    }

    /// The request body was denied (a form's `_method`) after the exchange went on: unless the
    /// exchange already answered the denial, the record takes it.
    fn denied_late(&mut self, d: &RequestDecision) {
        if self.rec.decision == "deny" {
            return;
        }
        self.decided(&d.decision);
        let denied = format!(
            "{} after the upstream answered",
            denied_by(d, Some(FORM_METHOD))
        );
        // The denial first; an error already recorded stays, after it.
        self.rec.error = Some(match self.rec.error.take() {
            Some(earlier) => format!("{denied}; {earlier}"),
            None => denied,
        });
    }

    /// Sends the record, in `slot` if any (the exchange is over: dropped next).
    fn send(&mut self, slot: Option<Slot>) {
        if !self.notes.is_empty() {
            let notes = std::mem::take(&mut self.notes).join("; ");
            self.rec.error = Some(match self.rec.error.take() {
                Some(e) => format!("{e}; {notes}"),
                None => notes,
            });
        }
        self.rec.bytes_up = self.tap.bytes.load(Ordering::Relaxed);
        self.rec.body = self.recorded_body();
        debug!(
            seq = self.rec.seq, method = %self.rec.method, host = %self.rec.host,
            path = %self.rec.path, status = ?self.rec.status, decision = %self.rec.decision,
            "http request"
        );
        // The record leaves; what stays behind is empty (no allocation).
        let empty = blank(self.rec.connection_id, self.rec.seq, self.rec.started_at);
        self.recorder
            .record(std::mem::replace(&mut self.rec, empty), slot);
    }

    /// The kept request body, masked as a response would be (JSON by key and detectors; other
    /// text by detectors), marked when cut.
    fn recorded_body(&self) -> Option<String> {
        let kept = self.tap.kept.as_ref()?;
        let (bytes, cut) = std::mem::take(&mut *crate::sync::lock(kept));
        let text = String::from_utf8_lossy(&bytes);
        let masker = self.target.masker.clone().unwrap_or_default();
        let mut counts = MaskCounts::default();
        let masked = match self.request_kind {
            Some(Kind::Json) => json::mask(&text, &self.target.json_keys, &masker, &mut counts)
                .unwrap_or_else(|_| masker.mask_text(&text, &mut counts)),
            _ => masker.mask_text(&text, &mut counts),
        };
        let mut out = masked.unwrap_or_else(|| text.into_owned());
        if cut {
            out.push_str("… [cut]");
        }
        Some(out)
    }
}

/// A request record with nothing known yet but its place (allocates nothing).
fn blank(connection_id: uuid::Uuid, seq: u32, started_at: SystemTime) -> RequestRecord {
    RequestRecord {
        connection_id,
        seq,
        started_at,
        duration: None,
        method: String::new(),
        host: String::new(),
        path: String::new(),
        query: Vec::new(),
        status: None,
        bytes_up: 0,
        bytes_down: 0,
        decision: String::new(),
        rule: String::new(),
        masked: None,
        error: None,
        body: None,
        headers: None,
    }
}

impl Drop for Exchange {
    /// An exchange dropped before its response was given to the client: hyper drops the
    /// request's future when its client goes away (or resets the stream), and the agent's stop
    /// ends it too. Let through (a slot held, the decision taken), the request may have reached
    /// the upstream: it is recorded all the same, in its slot, without status or duration.
    /// Still waiting for its decision, it went nowhere: the slot is given back. Dropped while
    /// its record waited for a watched request body (the runtime stops), it is recorded as it
    /// stands.
    fn drop(&mut self) {
        let Some(slot) = self.slot.take() else {
            return;
        };
        if self.rec.decision.is_empty() {
            return;
        }
        if let Some(d) = self.body.take().and_then(|b| b.denial()) {
            self.denied_late(&d);
        }
        // A duration: the response was over, and the record waited for the request body.
        self.error(if self.rec.duration.is_some() {
            BODY_STILL_STREAMING
        } else {
            SESSION_ENDED
        });
        self.send(Some(slot));
    }
}

/// The error recorded for a request whose session ended before its response.
const SESSION_ENDED: &str = "session ended before the response";
/// How long a record waits, after its response, for a watched request body to be done. Less
/// than the store writer's idle wait while the agent stops, so that a record still waiting when
/// the agent stops reaches the writer, in its held slot, before the writer gives up.
pub const BODY_WAIT: std::time::Duration = std::time::Duration::from_secs(3);
const _: () = assert!(BODY_WAIT.as_millis() < crate::store::CLOSE_IDLE.as_millis());
/// The error recorded when the watched body was still streaming after [`BODY_WAIT`].
const BODY_STILL_STREAMING: &str =
    "request body still streaming after the response: recorded before its end";

/// A response body that completes its exchange's record when it ends.
struct Metered {
    inner: ProxyBody,
    bytes: u64,
    done: Option<Exchange>,
}

impl Body for Metered {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        match &r {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    self.bytes += d.len() as u64;
                }
            }
            Poll::Ready(Some(Err(e))) => {
                let (bytes, e) = (self.bytes, format!("response body: {e}"));
                if let Some(x) = self.done.take() {
                    x.finish(bytes, Some(e));
                }
            }
            Poll::Ready(None) => {
                let bytes = self.bytes;
                if let Some(x) = self.done.take() {
                    x.finish(bytes, None);
                }
            }
            Poll::Pending => {}
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Metered {
    fn drop(&mut self) {
        if let Some(x) = self.done.take() {
            // hyper may never poll a body it knows is empty.
            let error = (!self.inner.is_end_stream()).then(|| "response not completed".to_owned());
            x.finish(self.bytes, error);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use http_body_util::BodyExt;

    use super::*;
    use crate::http::{body::full, request::tests::target};

    /// Collects records.
    #[derive(Default)]
    pub(crate) struct Records {
        list: Mutex<Vec<RequestRecord>>,
        /// `None`: room at once; `Some(ok)`: no room at once, and after a short wait room when
        /// `ok`.
        pub(crate) stall: Mutex<Option<bool>>,
    }

    impl Recorder for Records {
        fn record(&self, rec: RequestRecord, slot: Option<Slot>) {
            self.list.lock().unwrap().push(rec);
            drop(slot);
        }

        fn try_hold(&self) -> Option<Slot> {
            self.stall.lock().unwrap().is_none().then(Slot::detached)
        }

        fn hold(&self) -> Pin<Box<dyn Future<Output = Option<Slot>> + Send + '_>> {
            let ok = self.stall.lock().unwrap().unwrap_or(true);
            Box::pin(async move {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                ok.then(Slot::detached)
            })
        }
    }

    impl Records {
        pub(crate) fn take(&self) -> Vec<RequestRecord> {
            std::mem::take(&mut *self.list.lock().unwrap())
        }

        /// The records, once there is at least one, polled every 10 ms for up to `tries` polls
        /// (empty when none came).
        pub(crate) async fn take_when_some(&self, tries: u32) -> Vec<RequestRecord> {
            for _ in 0..tries {
                let recs = self.take();
                if !recs.is_empty() {
                    return recs;
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            Vec::new()
        }
    }

    fn facts(body_type: &str) -> Facts {
        Facts {
            method: "POST".into(),
            host: "Api.Example:443".into(),
            path: "/v1//x".into(),
            query: vec![("token".into(), "secret-value".into())],
            headers: vec![
                ("content-type".into(), body_type.into()),
                ("authorization".into(), "Bearer nope".into()),
            ],
        }
    }

    #[tokio::test]
    async fn record_written_when_the_body_ends() {
        let records = Arc::new(Records::default());
        let mut t = target(None, true);
        t.record_bodies = true;
        t.body_cap = 40;
        t.json_keys =
            vec![crate::policy::JsonKey::new("password", crate::masking::Style::Redact).unwrap()];
        let id = uuid::Uuid::now_v7();
        let mut x = Exchange::new(
            id,
            3,
            &facts("application/json"),
            Arc::new(t),
            records.clone(),
        );
        let tap = x.tap();
        // The request body streams through the tap.
        let req = Tapped::new(full(r#"{"user":"u","password":"hunter2"}"#), tap.clone());
        let sent = req.collect().await.unwrap().to_bytes();
        assert_eq!(sent.len(), 33);
        x.decided(&Decision {
            verdict: crate::policy::Verdict::Allow,
            enforced: true,
            rule: "r".into(),
            target: None,
        });
        let resp = x.respond(hyper::Response::new(full("hello")));
        assert!(records.take().is_empty(), "not before the body ends");
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"hello");
        let recs = records.take();
        assert_eq!(recs.len(), 1);
        let r = &recs[0];
        assert_eq!((r.connection_id, r.seq, r.status), (id, 3, Some(200)));
        assert_eq!((r.bytes_up, r.bytes_down), (33, 5));
        assert_eq!((r.host.as_str(), r.path.as_str()), ("api.example", "/v1/x"));
        assert_eq!(r.query, ["token"]);
        assert_eq!((r.decision.as_str(), r.rule.as_str()), ("allow", "r"));
        assert_eq!(
            r.body.as_deref(),
            Some(r#"{"user":"u","password":"[REDACTED]"}"#)
        );
        // Nothing secret anywhere in the record.
        let dump = format!("{r:?}");
        for secret in ["secret-value", "Bearer nope", "hunter2"] {
            assert!(!dump.contains(secret), "{secret} in {dump}");
        }
    }

    /// A watched request body still streaming after the response holds the record (and its
    /// slot) at most [`BODY_WAIT`]: then it is recorded as it stands, saying so.
    #[tokio::test(start_paused = true)]
    async fn a_record_waits_for_a_watched_body_a_bounded_time() {
        let records = Arc::new(Records::default());
        let t = Arc::new(target(None, true));
        let mut x = Exchange::new(
            uuid::Uuid::now_v7(),
            1,
            &facts("text/plain"),
            t,
            records.clone(),
        );
        let body = Verdict::default();
        x.watch(body.clone());
        x.decided(&Decision {
            verdict: crate::policy::Verdict::Allow,
            enforced: true,
            rule: "r".into(),
            target: None,
        });
        let resp = x.respond(hyper::Response::new(full("early")));
        resp.into_body().collect().await.unwrap();
        tokio::time::sleep(BODY_WAIT - std::time::Duration::from_millis(10)).await;
        assert!(records.take().is_empty(), "waits for the body");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let recs = records.take();
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].decision, "allow");
        assert_eq!(recs[0].error.as_deref(), Some(BODY_STILL_STREAMING));
        drop(body);
    }

    #[tokio::test]
    async fn cut_bodies_and_dropped_responses() {
        let records = Arc::new(Records::default());
        let mut t = target(None, true);
        t.record_bodies = true;
        t.body_cap = 4;
        let x = Exchange::new(
            uuid::Uuid::now_v7(),
            1,
            &facts("text/plain"),
            Arc::new(t),
            records.clone(),
        );
        let tap = x.tap();
        Tapped::new(full("abcdefgh"), tap).collect().await.unwrap();
        let resp = x.respond(hyper::Response::new(full("never read")));
        drop(resp);
        let recs = records.take();
        assert_eq!(recs[0].body.as_deref(), Some("abcd… [cut]"));
        assert_eq!(recs[0].error.as_deref(), Some("response not completed"));
        assert_eq!(recs[0].bytes_up, 8);
    }

    /// A body a watch may deny: beneath the watch the record keeps what the client sent, above
    /// it it counts what went upstream.
    #[tokio::test]
    async fn a_watched_body_keeps_what_was_sent_and_counts_what_went() {
        let records = Arc::new(Records::default());
        let mut t = target(None, true);
        t.record_bodies = true;
        let x = Exchange::new(
            uuid::Uuid::now_v7(),
            1,
            &facts("text/plain"),
            Arc::new(t),
            records.clone(),
        );
        Tapped::sent(full("a=1&_method=DELETE"), x.tap())
            .collect()
            .await
            .unwrap();
        Tapped::forwarded(full("a=1&"), x.tap())
            .collect()
            .await
            .unwrap();
        drop(x.respond(hyper::Response::new(full("never read"))));
        let recs = records.take();
        assert_eq!(recs[0].body.as_deref(), Some("a=1&_method=DELETE"));
        assert_eq!(recs[0].bytes_up, 4);
    }

    /// An exchange dropped before its response (hyper drops the request's future when its
    /// client goes away): let through, it is recorded in its slot, without status or duration;
    /// still waiting for its decision, it never went anywhere and is not.
    #[tokio::test]
    async fn an_exchange_dropped_before_its_response() {
        let records = Arc::new(Records::default());
        let mut t = target(None, true);
        t.record_bodies = true;
        let mut x = Exchange::new(
            uuid::Uuid::now_v7(),
            2,
            &facts("text/plain"),
            Arc::new(t),
            records.clone(),
        );
        Tapped::new(full("abc"), x.tap()).collect().await.unwrap();
        x.held(Slot::detached());
        x.decided(&Decision {
            verdict: crate::policy::Verdict::Allow,
            enforced: true,
            rule: "r".into(),
            target: None,
        });
        drop(x);
        let recs = records.take();
        assert_eq!(recs.len(), 1, "{recs:?}");
        let r = &recs[0];
        assert_eq!((r.seq, r.decision.as_str()), (2, "allow"));
        assert_eq!((r.status, r.duration), (None, None));
        assert_eq!((r.bytes_up, r.body.as_deref()), (3, Some("abc")));
        assert_eq!(
            r.error.as_deref(),
            Some("session ended before the response")
        );

        let mut x = Exchange::new(
            uuid::Uuid::now_v7(),
            3,
            &facts("text/plain"),
            Arc::new(target(None, true)),
            records.clone(),
        );
        x.held(Slot::detached());
        drop(x);
        assert!(records.take().is_empty());
    }

    #[tokio::test]
    async fn bodies_not_recorded_unless_asked() {
        let records = Arc::new(Records::default());
        let x = Exchange::new(
            uuid::Uuid::now_v7(),
            1,
            &facts("text/plain"),
            Arc::new(target(None, true)),
            records.clone(),
        );
        Tapped::new(full("abc"), x.tap()).collect().await.unwrap();
        drop(x.respond(hyper::Response::new(crate::http::body::empty())));
        let recs = records.take();
        assert_eq!(recs[0].body, None);
        assert_eq!(recs[0].error, None, "an empty body is complete");
    }
}
