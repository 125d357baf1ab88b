//! The life of one accepted connection: recover who and where, decide, record, hand off to the
//! target's protocol handler, record the end.
use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::SystemTime,
};

use agent_common::{ConnMeta, FLAG_UNCLASSIFIED, TupleKey, v4_mapped};
use tokio::net::TcpStream;
use tracing::{debug, info, warn};

use crate::{
    config::AuditFailure,
    enroll::WorkloadMatch,
    policy::{Decision, Protocol, Subject, Verdict, Workload},
    proxy::{
        approval::{ApprovalOutcome, ApprovalRequest},
        context::{Context, Stats},
        copy::Transfer,
        reset, upstream,
    },
    store::{ConnectionEnd, ConnectionRecord, Slot},
    tcp,
};

/// The 4-tuple key under which sockops published this connection (client → proxy).
pub fn tuple_key(peer: SocketAddr, local: SocketAddr) -> TupleKey {
    TupleKey {
        src_ip6: ip_words(peer.ip()),
        dst_ip6: ip_words(local.ip()),
        src_port: peer.port(),
        dst_port: local.port(),
        _pad: 0,
    }
}

fn ip_words(ip: IpAddr) -> [u32; 4] {
    match ip {
        IpAddr::V4(v4) => v4_mapped(u32::from_ne_bytes(v4.octets())),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4_mapped(u32::from_ne_bytes(v4.octets())),
            None => {
                let o = v6.octets();
                std::array::from_fn(|i| {
                    u32::from_ne_bytes([o[4 * i], o[4 * i + 1], o[4 * i + 2], o[4 * i + 3]])
                })
            }
        },
    }
}

/// The original destination recorded by the connect hook; v4-mapped addresses become IPv4.
pub fn original_dst(meta: &ConnMeta) -> SocketAddr {
    let mut o = [0u8; 16];
    for (i, w) in meta.dst_ip6.iter().enumerate() {
        o[4 * i..4 * i + 4].copy_from_slice(&w.to_ne_bytes());
    }
    let v6 = std::net::Ipv6Addr::from(o);
    let ip = v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4);
    SocketAddr::new(ip, meta.dst_port)
}

/// Records cgroup `id`'s classification for the connect hooks.
fn classify(ctx: &Context, id: u64, enrolled: bool) {
    if let Err(e) = ctx.programs.set_cgroup(id, enrolled) {
        warn!(error = %e, cgroup = id, "could not record cgroup classification");
    }
}

/// Handles one accepted connection to the end.
pub async fn handle(ctx: Arc<Context>, mut client: TcpStream, peer: SocketAddr, local: SocketAddr) {
    let Some(meta) = ctx.programs.take_conn(&tuple_key(peer, local)) else {
        // Not redirected by our hooks: a direct connection to the proxy port, or one whose
        // metadata was evicted. Either way we cannot attribute it.
        Stats::inc(&ctx.stats.no_metadata);
        warn!(%peer, "connection without redirect metadata refused");
        reset(client);
        return;
    };
    let dst = original_dst(&meta);
    let subject = ctx.resolver.subject(&meta).await;
    let state = ctx.policy.load_full();
    let policy = &state.policy;
    // A cgroup the hook did not know (new, or evicted): record its classification so later
    // connections of an unenrolled cgroup go direct. An unresolvable cgroup stays enrolled.
    let enrolled = subject.cgroup_path.is_empty()
        || ctx
            .enrollment
            .enrolled(policy, meta.cgroup_id, &subject.cgroup_path);
    if meta.flags & FLAG_UNCLASSIFIED != 0 {
        classify(&ctx, meta.cgroup_id, enrolled);
        // A reload that classified this cgroup since `state` was loaded must keep the last
        // word: under the new policy, it is classified again (a reload after this check
        // classifies it after this write).
        let now = ctx.policy.load();
        if now.generation != state.generation && !subject.cgroup_path.is_empty() {
            let again = ctx
                .enrollment
                .enrolled(&now.policy, meta.cgroup_id, &subject.cgroup_path);
            classify(&ctx, meta.cgroup_id, again);
        }
    }
    let is_self = ctx
        .settings
        .listen
        .iter()
        .any(|l| l.port() == dst.port() && (l.ip() == dst.ip() || dst.ip().is_unspecified()));
    let workload = if enrolled {
        ctx.enrollment.workload(policy, meta.cgroup_id, &subject)
    } else {
        WorkloadMatch::None
    };
    let decision = match &workload {
        WorkloadMatch::None if !is_self => {
            Stats::inc(&ctx.stats.passthrough);
            debug!(%dst, cgroup = %subject.cgroup_path, "no workload: pass through");
            return passthrough(&ctx, client, dst).await;
        }
        WorkloadMatch::None => fixed_deny("self-call"),
        WorkloadMatch::Workload(_) if is_self => fixed_deny("self-call"),
        WorkloadMatch::Workload(w) => policy.evaluate(w, dst, &ctx.dns.load()),
        WorkloadMatch::BindingMismatch(_) => fixed_deny("run-binding-mismatch"),
        WorkloadMatch::Unidentified => fixed_deny("unidentified-cgroup"),
    };
    let w = match &workload {
        WorkloadMatch::Workload(w) => Some(*w),
        _ => None,
    };
    let record = record_for(
        &meta,
        &subject,
        w,
        &workload,
        dst,
        &decision,
        state.generation,
    );
    let id = record.id;

    let decision = match decision.verdict {
        Verdict::Approve if decision.enforced => {
            hold_for_approval(&ctx, &record, &decision, dst).await
        }
        _ => decision,
    };
    if !decision.permits() {
        Stats::inc(&ctx.stats.denied);
        info!(
            %dst, workload = ?record.workload, rule = %decision.rule, decision = decision.label(),
            pid = meta.tgid, "connection denied"
        );
        let mut record = record;
        record.decision = decision.label().into();
        record.rule = decision.rule.clone();
        let reason = if decision.rule.ends_with("approval-unavailable") {
            "approval-unavailable"
        } else {
            "denied"
        };
        if let Err(e) = ctx.audit.record(record, end(0, 0, reason)) {
            ctx.audit.warn_dropped("connection", &e);
        }
        reset(client);
        return;
    }

    // Write-ahead audit: the record is spooled (or, without room in the spool, committed) before
    // any byte reaches the target. The slot
    // it returns is held for the connection's end; without it, the connection has no row, and
    // nothing of it is recorded (its statements, requests and end would reference no row).
    let mut ending = None;
    match ctx.audit.begin(record).await {
        Ok(slot) => ending = Some(slot),
        Err(e) => match ctx.settings.audit_failure {
            AuditFailure::Closed => {
                Stats::inc(&ctx.stats.audit_refused);
                warn!(error = %e, %dst, "audit store cannot record: connection refused (audit_failure = closed)");
                reset(client);
                return;
            }
            AuditFailure::Open => {
                warn!(error = %e, %dst, "audit store cannot record: connection let through (audit_failure = open)");
            }
        },
    }
    let recorded = ending.is_some();
    let protocol = decision.target.as_ref().map(|t| t.protocol);
    let workload = || w.map(|w| w.name.clone()).unwrap_or_default();
    let target = || {
        decision
            .target
            .as_ref()
            .map(|t| t.name.clone())
            .unwrap_or_default()
    };
    // The target's protocol handler; L7 handlers (postgres, http, ssh) plug in here. HTTP opens
    // (or reuses) its upstream connections itself, per request; the others get one now.
    let transfer: Transfer = match protocol {
        Some(Protocol::Http) => {
            Stats::inc(&ctx.stats.allowed);
            let init = crate::http::HttpInit {
                connection_id: id,
                recorded,
                workload: workload(),
                target: target(),
                dst,
            };
            crate::http::serve(&ctx, init, client).await
        }
        Some(Protocol::Postgres) => {
            let Some(upstream) = connect_upstream(&ctx, id, dst, &mut ending).await else {
                reset(client);
                return;
            };
            let init = crate::postgres::session::SessionInit {
                connection_id: id,
                recorded,
                workload: workload(),
                target: target(),
                dst,
            };
            crate::postgres::session::serve(&ctx, init, client, upstream).await
        }
        Some(Protocol::Tcp) | None => {
            let Some(mut upstream) = connect_upstream(&ctx, id, dst, &mut ending).await else {
                reset(client);
                return;
            };
            tcp::serve(&ctx, &mut client, &mut upstream).await
        }
    };
    info!(
        target: "tollgate::access", %id, %dst, workload = ?w.map(|w| &w.name),
        rule = %decision.rule, up = transfer.up, down = transfer.down,
        end = %transfer.end.label(), "connection"
    );
    let last = end(transfer.up, transfer.down, &transfer.end.label());
    if let Some(slot) = ending
        && let Err(e) = ctx.audit.finish(id, last, Some(slot))
    {
        ctx.audit.warn_dropped("connection-end", &e);
    }
}

async fn hold_for_approval(
    ctx: &Context,
    record: &ConnectionRecord,
    decision: &Decision,
    dst: SocketAddr,
) -> Decision {
    let outcome = ctx
        .approvals
        .decide(ApprovalRequest {
            connection_id: record.id,
            workload: record.workload.clone().unwrap_or_default(),
            target: record.target.clone(),
            rule: decision.rule.clone(),
            summary: format!("connect {dst}"),
            timeout: ctx.settings.connect_timeout,
        })
        .await;
    match outcome {
        ApprovalOutcome::Approved { .. } => Decision {
            verdict: Verdict::Allow,
            ..decision.clone()
        },
        ApprovalOutcome::Denied { reason } => Decision {
            verdict: Verdict::Deny,
            rule: format!("{} ({reason})", decision.rule),
            ..decision.clone()
        },
    }
}

/// A cgroup that turned out to have no workload: connect for it and copy, no policy, no record.
async fn passthrough(ctx: &Context, mut client: TcpStream, dst: SocketAddr) {
    match upstream::connect(dst, ctx.settings.connect_timeout).await {
        Ok(mut up) => {
            let _ = tcp::serve(ctx, &mut client, &mut up).await;
        }
        Err(e) => {
            debug!(error = %e, "pass-through connect failed");
            reset(client);
        }
    }
}

fn fixed_deny(rule: &str) -> Decision {
    Decision {
        verdict: Verdict::Deny,
        enforced: true,
        rule: rule.into(),
        target: None,
    }
}

fn record_for(
    meta: &ConnMeta,
    subject: &Subject,
    workload: Option<&Workload>,
    matched: &WorkloadMatch<'_>,
    dst: SocketAddr,
    decision: &Decision,
    generation: u64,
) -> ConnectionRecord {
    let workload_name = match matched {
        WorkloadMatch::BindingMismatch(name) => Some(name.clone()),
        _ => workload.map(|w| w.name.clone()),
    };
    ConnectionRecord {
        id: uuid::Uuid::now_v7(),
        started_at: SystemTime::now(),
        workload: workload_name,
        spiffe_id: workload.map(|w| w.spiffe_id.to_string()),
        pid: meta.tgid,
        uid: meta.uid,
        gid: meta.gid,
        exe: subject.exe.as_ref().map(|p| p.display().to_string()),
        cgroup: subject.cgroup_path.clone(),
        cgroup_id: meta.cgroup_id,
        systemd_unit: subject.systemd_unit.clone(),
        dst,
        target: decision.target.as_ref().map(|t| t.name.clone()),
        protocol: decision
            .target
            .as_ref()
            .map_or_else(|| "tcp".to_string(), |t| t.protocol.to_string()),
        decision: decision.label().into(),
        rule: decision.rule.clone(),
        policy_generation: generation,
    }
}

/// The upstream connection of an allowed connection; `None` when it cannot be made (counted, and
/// the connection's record, if it has one, ended with the reason in the `ending` slot; the
/// caller resets the client).
async fn connect_upstream(
    ctx: &Context,
    id: uuid::Uuid,
    dst: SocketAddr,
    ending: &mut Option<Slot>,
) -> Option<TcpStream> {
    match upstream::connect_counted(ctx, dst).await {
        Ok(u) => {
            Stats::inc(&ctx.stats.allowed);
            Some(u)
        }
        Err(e) => {
            if let Some(slot) = ending.take() {
                let _ = ctx.audit.finish(id, end(0, 0, &e.label()), Some(slot));
            }
            None
        }
    }
}

fn end(up: u64, down: u64, reason: &str) -> ConnectionEnd {
    ConnectionEnd {
        ended_at: SystemTime::now(),
        bytes_up: up,
        bytes_down: down,
        end_reason: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tuple_key_normalizes_v4_mapped() {
        let a: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let b: SocketAddr = "[::ffff:127.0.0.1]:40000".parse().unwrap();
        let l: SocketAddr = "127.0.0.1:915".parse().unwrap();
        assert_eq!(tuple_key(a, l), tuple_key(b, l));
        let v6: SocketAddr = "[::1]:40000".parse().unwrap();
        assert_ne!(tuple_key(v6, l), tuple_key(a, l));
    }

    #[test]
    fn original_dst_round_trips() {
        for s in ["10.1.2.3:5432", "[fd00::1]:443", "[::1]:80"] {
            let addr: SocketAddr = s.parse().unwrap();
            let meta = ConnMeta {
                dst_ip6: ip_words(addr.ip()),
                dst_port: addr.port(),
                ..Default::default()
            };
            assert_eq!(original_dst(&meta), addr, "{s}");
        }
        let mapped = ConnMeta {
            dst_ip6: ip_words("::ffff:10.0.0.1".parse().unwrap()),
            dst_port: 80,
            ..Default::default()
        };
        assert_eq!(
            original_dst(&mapped),
            "10.0.0.1:80".parse::<SocketAddr>().unwrap()
        );
    }
}
