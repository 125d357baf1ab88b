//! The four ways `cargo xtask bench postgres` reaches the server, and the proof that a run
//! took the way it claims: each proxy's own counter moved by at least the run's connections (or
//! transactions) and the other proxies' did not move at all.
use anyhow::bail;

/// A way from pgbench to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Path {
    /// pgbench → 127.0.0.1:<postgres>, from the bench's own cgroup.
    Direct,
    /// pgbench in the enrolled cgroup → (eBPF redirect) → tollgate → server.
    Tollgate,
    /// pgbench → pgbouncer (session pooling) → server.
    Pgbouncer,
    /// pgbench → HAProxy (tcp mode) → server.
    Haproxy,
}

impl Path {
    /// Every path, in table order.
    pub const ALL: [Path; 4] = [Path::Direct, Path::Tollgate, Path::Pgbouncer, Path::Haproxy];

    /// Its column label.
    pub fn label(self) -> &'static str {
        match self {
            Path::Direct => "direct",
            Path::Tollgate => "tollgate",
            Path::Pgbouncer => "pgbouncer",
            Path::Haproxy => "haproxy",
        }
    }

    /// The paths of round `round`, rotated so that each path takes each position in turn.
    pub fn rotation(round: usize) -> [Path; 4] {
        let mut p = Path::ALL;
        p.rotate_left(round % Path::ALL.len());
        p
    }
}

/// The proxies' counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counters {
    /// tollgate's `connections_allowed`.
    pub tollgate_allowed: u64,
    /// pgbouncer's `total_xact_count` of the bench database.
    pub pgbouncer_xacts: u64,
    /// HAProxy's frontend `stot`.
    pub haproxy_sessions: u64,
}

/// Checks that a run of `transactions` over `clients` connections went by `path`, given the
/// counters before and after it.
pub fn verify(
    path: Path,
    before: Counters,
    after: Counters,
    clients: u64,
    transactions: u64,
) -> anyhow::Result<()> {
    let moved = [
        (
            Path::Tollgate,
            "tollgate connections_allowed",
            after.tollgate_allowed.wrapping_sub(before.tollgate_allowed),
            clients,
        ),
        (
            Path::Pgbouncer,
            "pgbouncer SHOW STATS total_xact_count",
            after.pgbouncer_xacts.wrapping_sub(before.pgbouncer_xacts),
            transactions,
        ),
        (
            Path::Haproxy,
            "haproxy frontend stot",
            after.haproxy_sessions.wrapping_sub(before.haproxy_sessions),
            clients,
        ),
    ];
    for (via, counter, delta, want) in moved {
        if via == path && delta < want {
            bail!(
                "{} run: {counter} rose by {delta}, expected at least {want}: the run did not go \
                 through {}",
                path.label(),
                via.label()
            );
        }
        if via != path && delta != 0 {
            bail!(
                "{} run: {counter} rose by {delta}: part of the run went through {}",
                path.label(),
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
        assert_eq!(Path::rotation(5), Path::rotation(1));
    }

    #[test]
    fn verify_cases() {
        let c = |t, p, h| Counters {
            tollgate_allowed: t,
            pgbouncer_xacts: p,
            haproxy_sessions: h,
        };
        let before = c(10, 1000, 20);
        // (path, counters after, ok) for a run of 4 clients and 500 transactions.
        let cases = [
            (Path::Direct, c(10, 1000, 20), true),
            (Path::Direct, c(11, 1000, 20), false),
            (Path::Direct, c(10, 1000, 21), false),
            (Path::Tollgate, c(15, 1000, 20), true),
            (Path::Tollgate, c(13, 1000, 20), false),
            (Path::Tollgate, c(15, 1001, 20), false),
            (Path::Pgbouncer, c(10, 1500, 20), true),
            (Path::Pgbouncer, c(10, 1499, 20), false),
            (Path::Pgbouncer, c(10, 1500, 24), false),
            (Path::Haproxy, c(10, 1000, 24), true),
            (Path::Haproxy, c(10, 1000, 23), false),
            (Path::Haproxy, c(12, 1000, 24), false),
        ];
        for (path, after, ok) in cases {
            let got = verify(path, before, after, 4, 500);
            assert_eq!(got.is_ok(), ok, "{path:?} {after:?}: {got:?}");
        }
    }
}
