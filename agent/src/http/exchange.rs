//! One request and its response: decide, deny (403, never forwarded) or forward with the
//! target's credential, then pass, mask or refuse the response; WebSocket upgrades spliced.
use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, Ordering},
    },
};

use hyper::{
    Request, Response, StatusCode,
    body::{Body as _, Incoming},
    upgrade::OnUpgrade,
};
use tracing::debug;

use super::{
    audit::{Exchange, Recorder, Tapped},
    body::{boxed, empty},
    deny, echo,
    form_body::FORM_METHOD,
    form_body::{Verdict, Watched},
    gate::{Gate, denied_by, fixed_deny},
    request::{self, Facts},
    response::{self, Masked, Plan},
    upstream::{SendError, Upstream, UpstreamError},
};
use crate::{
    masking::MaskCounts,
    policy::{FormScan, HttpTarget},
};

/// The rule reported for a `TRACE` to a target that injects a credential: the answer would
/// echo it to the task.
pub const TRACE_WITH_CREDENTIAL: &str = "trace-with-credential";

/// Everything the exchanges of one client connection share.
pub struct Session {
    /// Audit id of the connection.
    pub connection_id: uuid::Uuid,
    /// Workload name (named in denials).
    pub workload: String,
    /// Original destination (the authority of requests without one).
    pub dst: SocketAddr,
    /// The target's settings when the connection began.
    pub target: Arc<HttpTarget>,
    /// Decides each request.
    pub gate: Arc<dyn Gate>,
    /// Takes each request's record.
    pub recorder: Arc<dyn Recorder>,
    /// The upstream connection.
    pub upstream: Upstream,
    /// The spellings of the target's credential, searched for in what comes back.
    echo: Option<Arc<echo::Spellings>>,
    /// Last sequence number given.
    seq: AtomicU32,
    /// The two sides of a WebSocket upgrade, for the connection to splice once it ends.
    upgrade: Mutex<Option<(OnUpgrade, OnUpgrade)>>,
}

impl Session {
    /// A session; nothing is sent upstream until a request is allowed.
    pub fn new(
        connection_id: uuid::Uuid,
        workload: String,
        dst: SocketAddr,
        target: Arc<HttpTarget>,
        gate: Arc<dyn Gate>,
        recorder: Arc<dyn Recorder>,
        upstream: Upstream,
    ) -> Self {
        let echo = target
            .credential
            .as_ref()
            .map(|c| Arc::new(echo::Spellings::of(c)));
        Self {
            connection_id,
            workload,
            dst,
            target,
            gate,
            recorder,
            upstream,
            echo,
            seq: AtomicU32::new(0),
            upgrade: Mutex::new(None),
        }
    }

    /// The next sequence number.
    pub fn next_seq(&self) -> u32 {
        self.seq.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The client and upstream sides of the connection's WebSocket upgrade, if it switched.
    pub fn take_upgrade(&self) -> Option<(OnUpgrade, OnUpgrade)> {
        crate::sync::lock(&self.upgrade).take()
    }

    /// Serves one request.
    pub async fn exchange(
        self: Arc<Self>,
        mut req: Request<Incoming>,
    ) -> Response<super::body::ProxyBody> {
        let seq = self.next_seq();
        let on_upgrade: Option<OnUpgrade> = request::is_upgrade_head(req.version(), req.headers())
            .then(|| hyper::upgrade::on(&mut req));
        let (mut parts, body) = req.into_parts();
        let mut facts = Facts::of(&parts);
        if facts.host.is_empty() {
            // No Host (HTTP/1.0, or a client that left it out): the upstream gets the original
            // destination (`request::for_upstream`), so policy and the record see that.
            facts.host = self.dst.to_string();
        }
        let mut x = Exchange::new(
            self.connection_id,
            seq,
            &facts,
            self.target.clone(),
            self.recorder.clone(),
        );
        // hyper's own buffer limit can overshoot by a read; the configured limit is exact here.
        if request::head_size(parts.method.as_str(), &parts.uri, &parts.headers)
            > self.target.max_request_header as usize
        {
            x.error("request head too large".to_owned());
            return x.respond(deny::too_large_head());
        }
        let slot = match self.recorder.try_hold() {
            Some(slot) => slot,
            None => match self.recorder.hold().await {
                Some(slot) => slot,
                None => {
                    // The audit store stayed behind for the whole wait: refuse rather than
                    // forward unrecorded (fail closed; under `audit_failure = "open"` the sink
                    // gives a slot that holds no place instead).
                    x.error("audit unavailable".to_owned());
                    return x.respond(deny::audit_unavailable());
                }
            },
        };
        x.held(slot);
        let decided = if parts.method == hyper::Method::TRACE && self.target.credential.is_some() {
            // A TRACE answer echoes the request's headers: the credential tollgate adds would
            // reach the task that must never have it.
            fixed_deny(TRACE_WITH_CREDENTIAL).into()
        } else {
            self.gate.decide(&facts).await
        };
        let decision = &decided.decision;
        x.decided(decision);
        if !decision.permits() {
            debug!(seq, method = %facts.method, rule = %decision.rule, "request denied");
            x.error(denied_by(&decided, None));
            return x.respond(deny::denied(&decided, &self.workload));
        }

        let target = &self.target;
        let upgrade = on_upgrade.is_some();
        request::strip_hop_by_hop(&mut parts.headers, upgrade);
        if let Err(e) = request::credentials(&mut parts, target) {
            x.error(e.to_string());
            return x.respond(deny::bad_gateway(&e.to_string()));
        }
        request::accept_encoding(&mut parts.headers, target);
        if connection_bound(parts.headers.get(hyper::header::AUTHORIZATION)) {
            self.upstream.keep_private();
        }
        let reuse = super::upstream::reusable(&parts.method);
        let ready = match self.upstream.ready(&facts.host, reuse).await {
            Ok(r) => r,
            Err(e) => {
                x.error(format!("upstream: {e}"));
                return x.respond(deny::bad_gateway("upstream unavailable"));
            }
        };
        if let Err(e) = request::for_upstream(
            &mut parts,
            ready.is_h2(),
            self.upstream.is_tls(),
            &facts.host,
        ) {
            x.error(e.to_string());
            return x.respond(deny::bad_gateway(&e.to_string()));
        }
        let method = parts.method.clone();
        // A pooled connection was idle: its server may close it just as the request arrives. A
        // safe request without a body is then sent once more, on a new connection (RFC 9110
        // §9.2.2), as a client would; anything else gets the 502.
        let again = (ready.is_pooled() && body.is_end_stream()).then(|| head(&parts));
        let epoch = ready.epoch();
        // A form body may carry a `_method` an upstream takes as the method: it is read as it
        // streams, and decided before the upstream has all of it (see `form_body`).
        let scan = if body.is_end_stream() {
            None
        } else {
            FormScan::of(&facts.method, &facts.headers)
        };
        let verdict = scan.as_ref().map(|_| Verdict::default());
        if let Some(verdict) = &verdict {
            x.watch(verdict.clone());
        }
        // The record counts what goes upstream, and keeps (when it keeps bodies) what the
        // client sent, whether it went or not.
        let body = match (scan, &verdict) {
            (Some(scan), Some(verdict)) => boxed(Tapped::forwarded(
                Watched::new(
                    Tapped::sent(body, x.tap()),
                    scan,
                    facts.clone(),
                    self.gate.clone(),
                    verdict.clone(),
                ),
                x.tap(),
            )),
            _ => boxed(Tapped::new(body, x.tap())),
        };
        let sent = match ready.send(Request::from_parts(parts, body)).await {
            Ok(r) => Ok(r),
            // It never left (the connection closed first): any request may go out again.
            Err(SendError {
                error,
                unsent: Some(req),
            }) => {
                debug!(seq, %error, "upstream connection closed before the request: sending it on a new one");
                self.upstream.discard(epoch).await;
                let (parts, body) = req.into_parts();
                self.resend(&facts.host, parts, body).await
            }
            Err(SendError { error, .. }) => match again {
                Some(head) if error.no_response() => {
                    debug!(seq, %error, "pooled upstream connection closed under the request: sending it again");
                    self.upstream.discard(epoch).await;
                    self.resend(&facts.host, head, empty()).await
                }
                _ => Err(error),
            },
        };
        if let Some(denial) = verdict.as_ref().and_then(Verdict::denial) {
            // Whatever the upstream said (it may answer before a body ends), it never had the
            // whole request; the connection it was on is not used again.
            self.upstream.discard(epoch).await;
            debug!(seq, rule = %denial.decision.rule, "request denied by its form body's _method");
            x.decided(&denial.decision);
            x.error(denied_by(&denial, Some(FORM_METHOD)));
            return x.respond(deny::denied(&denial, &self.workload));
        }
        let mut resp = match sent {
            Ok(r) => r,
            Err(e) => {
                x.error(format!("upstream: {e}"));
                return x.respond(deny::bad_gateway("upstream request failed"));
            }
        };

        // Before anything else answers with these headers, a 101 included.
        if let Some(spellings) = &self.echo {
            let scrubbed = echo::scrub(resp.headers_mut(), spellings);
            if scrubbed > 0 {
                debug!(
                    seq,
                    scrubbed, "the upstream echoed the credential in response headers"
                );
                x.note(format!(
                    "the upstream echoed the credential in {scrubbed} response header value(s): redacted"
                ));
            }
        }
        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            let Some(client) = on_upgrade else {
                x.error("upstream switched protocols without an upgrade request");
                return x.respond(deny::bad_gateway("unexpected protocol switch"));
            };
            let server = hyper::upgrade::on(&mut resp);
            *crate::sync::lock(&self.upgrade) = Some((client, server));
            return x.respond(resp.map(|_| empty()));
        }
        request::strip_hop_by_hop(resp.headers_mut(), false);
        if resp
            .headers()
            .get_all(hyper::header::WWW_AUTHENTICATE)
            .iter()
            .any(|v| connection_bound(Some(v)))
        {
            self.upstream.keep_private();
        }

        match response::plan(target, &method, resp.status(), resp.headers()) {
            Plan::Pass => x.respond(resp.map(boxed)),
            Plan::Refuse(reason) => {
                x.error(reason);
                x.respond(deny::bad_gateway(reason))
            }
            Plan::Mask { kind, coding } => {
                let mut counts = MaskCounts::default();
                let out =
                    response::mask(resp, kind, coding, target, self.echo.clone(), &mut counts)
                        .await;
                x.masked(&counts);
                match out {
                    Ok(Masked::Send(r)) => x.respond(r),
                    Ok(Masked::Refuse(reason)) => {
                        x.error(reason);
                        x.respond(deny::bad_gateway(reason))
                    }
                    Err(e) => {
                        x.error(format!("upstream body: {e}"));
                        x.respond(deny::bad_gateway("upstream body failed"))
                    }
                }
            }
        }
    }

    /// Sends a request once more, on a new connection (never one from the pool), shaped for it
    /// (`host` as policy read it: see `request::for_upstream`).
    async fn resend(
        &self,
        host: &str,
        mut parts: hyper::http::request::Parts,
        body: super::body::ProxyBody,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let ready = self.upstream.ready(host, false).await?;
        request::for_upstream(&mut parts, ready.is_h2(), self.upstream.is_tls(), host)
            .map_err(|e| UpstreamError::Request(e.to_string()))?;
        ready
            .send(Request::from_parts(parts, body))
            .await
            .map_err(|e| e.error)
    }
}

/// A copy of a request head, to send it again.
fn head(parts: &hyper::http::request::Parts) -> hyper::http::request::Parts {
    let mut copy = Request::new(());
    *copy.method_mut() = parts.method.clone();
    *copy.uri_mut() = parts.uri.clone();
    *copy.version_mut() = parts.version;
    *copy.headers_mut() = parts.headers.clone();
    copy.into_parts().0
}

/// Whether an `Authorization` or `WWW-Authenticate` value names a scheme that authenticates the
/// connection rather than the request (NTLM, Negotiate): such a connection must not be pooled.
fn connection_bound(value: Option<&hyper::header::HeaderValue>) -> bool {
    value
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_whitespace().next())
        .is_some_and(|scheme| {
            scheme.eq_ignore_ascii_case("ntlm") || scheme.eq_ignore_ascii_case("negotiate")
        })
}
