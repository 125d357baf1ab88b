//! Answers tollgate gives instead of the upstream's: a policy denial (403) and a response it
//! refuses to pass or cannot get (502). Small JSON bodies, never cached.
use hyper::{
    Response, StatusCode,
    header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue},
};
use serde_json::json;

use super::body::{ProxyBody, full};
use crate::policy::RequestDecision;

/// The 403 of a denied request: `{"error":"denied","rule":"...","workload":"..."}`, and
/// `"read_as"` when a reading other than the request as sent decided (an override header, a
/// `_method`: the client sent them, so it learns nothing it did not say).
pub fn denied(d: &RequestDecision, workload: &str) -> Response<ProxyBody> {
    let mut body = json!({"error": "denied", "rule": d.decision.rule, "workload": workload});
    if let Some(read_as) = &d.read_as {
        body["read_as"] = json!(read_as);
    }
    answer(StatusCode::FORBIDDEN, &body)
}

/// A 502 naming why tollgate did not pass the upstream's answer (`reason` must hold no secret
/// and no response content): `{"error":"bad-gateway","reason":"..."}`.
pub fn bad_gateway(reason: &str) -> Response<ProxyBody> {
    answer(
        StatusCode::BAD_GATEWAY,
        &json!({"error": "bad-gateway", "reason": reason}),
    )
}

/// 431 for a request head over the target's `max_request_header`.
pub fn too_large_head() -> Response<ProxyBody> {
    answer(
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        &json!({"error": "request-header-too-large"}),
    )
}

/// 503 when the audit store cannot record the request (fail closed).
pub fn audit_unavailable() -> Response<ProxyBody> {
    answer(
        StatusCode::SERVICE_UNAVAILABLE,
        &json!({"error": "audit-unavailable", "reason": "tollgate cannot record this request"}),
    )
}

fn answer(status: StatusCode, body: &serde_json::Value) -> Response<ProxyBody> {
    let bytes = body.to_string().into_bytes();
    let mut resp = Response::new(full(bytes.clone()));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    resp
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    async fn body(resp: Response<ProxyBody>) -> serde_json::Value {
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    fn denial(rule: &str, read_as: Option<&str>) -> RequestDecision {
        RequestDecision {
            decision: crate::http::gate::fixed_deny(rule),
            read_as: read_as.map(str::to_owned),
        }
    }

    #[tokio::test]
    async fn denial_is_a_json_403_naming_rule_and_workload() {
        let resp = denied(&denial("no-sys \"paths\"", None), "etl");
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        assert_eq!(resp.headers()[CONTENT_TYPE], "application/json");
        assert_eq!(resp.headers()[CACHE_CONTROL], "no-store");
        let len: usize = resp.headers()[CONTENT_LENGTH]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let v = body(resp).await;
        assert_eq!(
            v,
            json!({"error": "denied", "rule": "no-sys \"paths\"", "workload": "etl"})
        );
        assert_eq!(len, v.to_string().len());
    }

    #[tokio::test]
    async fn denial_names_the_reading_that_decided() {
        let read_as = "DELETE api.example/x (method from x-http-method-override)";
        let resp = denied(&denial("no-deletes", Some(read_as)), "etl");
        assert_eq!(
            body(resp).await,
            json!({"error": "denied", "rule": "no-deletes", "workload": "etl", "read_as": read_as})
        );
    }

    #[tokio::test]
    async fn bad_gateway_names_the_reason() {
        let resp = bad_gateway("response too large to mask");
        assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(
            body(resp).await,
            json!({"error": "bad-gateway", "reason": "response too large to mask"})
        );
    }
}
