//! The four ways `cargo xtask bench http` reaches the origin nginx, and the proof that a run
//! took the way it claims: the origin served at least the run's requests, the proxy of the path
//! counted them (tollgate: connections allowed and request audit records), and the other proxies
//! counted nothing.
use anyhow::bail;

/// A way from wrk to the origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Path {
    /// wrk → origin, from the bench's own cgroup.
    Direct,
    /// wrk in the enrolled cgroup → (eBPF redirect) → tollgate's http handler → origin.
    Tollgate,
    /// wrk → HAProxy (`mode http`) → origin.
    Haproxy,
    /// wrk → nginx reverse proxy → origin.
    NginxProxy,
}

impl Path {
    /// Every path, in table order.
    pub const ALL: [Path; 4] = [
        Path::Direct,
        Path::Tollgate,
        Path::Haproxy,
        Path::NginxProxy,
    ];

    /// Its column label.
    pub fn label(self) -> &'static str {
        match self {
            Path::Direct => "direct",
            Path::Tollgate => "tollgate",
            Path::Haproxy => "haproxy",
            Path::NginxProxy => "nginx proxy",
        }
    }

    /// The paths of round `round`, rotated so that each path takes each position in turn.
    pub fn rotation(round: usize) -> [Path; 4] {
        let mut p = Path::ALL;
        p.rotate_left(round % Path::ALL.len());
        p
    }
}

/// The counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counters {
    /// The origin's `stub_status` requests (each status query counts itself).
    pub origin: u64,
    /// tollgate's `connections_allowed`.
    pub tollgate_allowed: u64,
    /// tollgate's audit records written or dropped (`audit_written` + `audit_queue_full`).
    pub tollgate_audit: u64,
    /// HAProxy's frontend `req_tot`.
    pub haproxy: u64,
    /// The nginx proxy's `stub_status` requests (each status query counts itself).
    pub nginx_proxy: u64,
}

/// Checks that a run of `requests` requests over at least `connections` connections went by
/// `path`, given the counters before and after it.
pub fn verify(
    path: Path,
    before: Counters,
    after: Counters,
    requests: u64,
    connections: u64,
) -> anyhow::Result<()> {
    let d = |f: fn(&Counters) -> u64| f(&after).wrapping_sub(f(&before));
    let label = path.label();
    if d(|c| c.origin) < requests {
        bail!(
            "{label} run: the origin served {} requests, wrk counted {requests}",
            d(|c| c.origin)
        );
    }
    // (path, counter, delta, at least when it is this run's path, at most otherwise)
    let checks = [
        (
            Path::Tollgate,
            "tollgate connections_allowed",
            d(|c| c.tollgate_allowed),
            connections,
            0,
        ),
        (
            Path::Tollgate,
            "tollgate audit records (written + queue full)",
            d(|c| c.tollgate_audit),
            requests,
            0,
        ),
        (
            Path::Haproxy,
            "haproxy req_tot",
            d(|c| c.haproxy),
            requests,
            0,
        ),
        // The status query after the run counts itself.
        (
            Path::NginxProxy,
            "nginx proxy stub_status requests",
            d(|c| c.nginx_proxy),
            requests,
            1,
        ),
    ];
    for (via, counter, delta, least, most) in checks {
        if via == path && delta < least {
            bail!(
                "{label} run: {counter} rose by {delta}, expected at least {least}: the run did \
                 not go through {}",
                via.label()
            );
        }
        if via != path && delta > most {
            bail!(
                "{label} run: {counter} rose by {delta}: part of the run went through {}",
                via.label()
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_puts_every_path_first_once() {
        let firsts: Vec<Path> = (0..4).map(|r| Path::rotation(r)[0]).collect();
        assert_eq!(firsts, Path::ALL);
    }

    #[test]
    fn verify_cases() {
        let c = |origin, allowed, audit, haproxy, nginx| Counters {
            origin,
            tollgate_allowed: allowed,
            tollgate_audit: audit,
            haproxy,
            nginx_proxy: nginx,
        };
        let before = c(100, 10, 50, 7, 3);
        // A run of 1000 requests over 4 connections.
        let cases = [
            (Path::Direct, c(1101, 10, 50, 7, 4), true),
            (Path::Direct, c(1000, 10, 50, 7, 4), false),
            (Path::Direct, c(1101, 11, 50, 7, 4), false),
            (Path::Tollgate, c(1101, 14, 1058, 7, 4), true),
            (Path::Tollgate, c(1101, 14, 900, 7, 4), false),
            (Path::Tollgate, c(1101, 12, 1058, 7, 4), false),
            (Path::Haproxy, c(1101, 10, 50, 1007, 4), true),
            (Path::Haproxy, c(1101, 10, 50, 1006, 4), false),
            (Path::Haproxy, c(1101, 10, 50, 1007, 6), false),
            (Path::NginxProxy, c(1101, 10, 50, 7, 1004), true),
            (Path::NginxProxy, c(1101, 10, 50, 8, 1004), false),
            (Path::NginxProxy, c(1101, 10, 50, 7, 500), false),
        ];
        for (path, after, ok) in cases {
            let got = verify(path, before, after, 1000, 4);
            assert_eq!(got.is_ok(), ok, "{path:?} {after:?}: {got:?}");
        }
    }
}
