//! pgbench runs of `cargo xtask bench postgres`: the command line, the summary it prints, and
//! the per-transaction log (`-l`) of fixed-rate runs, from which latency percentiles come.
use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use anyhow::{Context as _, bail};

use super::{proc::run_bounded, server};

/// What pgbench runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Script {
    /// The built-in select-only script (`-S`).
    SelectOnly,
    /// A script file (`-f`).
    File(PathBuf),
}

/// The query protocol (`-M`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Protocol {
    /// One Query message per statement.
    Simple,
    /// Parse/Bind/Execute per statement (unnamed, parsed every time).
    Extended,
}

impl Protocol {
    /// The `-M` value.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Simple => "simple",
            Protocol::Extended => "extended",
        }
    }
}

/// One pgbench run.
#[derive(Debug, Clone)]
pub struct Load {
    /// What it runs.
    pub script: Script,
    /// How.
    pub protocol: Protocol,
    /// `-c`.
    pub clients: u32,
    /// `-j`.
    pub threads: u32,
    /// `-T`.
    pub secs: u32,
    /// `--rate` (transactions per second over all clients), with a per-transaction log.
    pub rate: Option<u64>,
}

impl Load {
    /// pgbench's arguments against `host:port`; the log goes to `log_prefix` (`-l`) when the
    /// load has a rate.
    pub fn args(&self, host: &str, port: u16, log_prefix: &Path) -> Vec<String> {
        let mut a: Vec<String> = vec!["-n".into()];
        match &self.script {
            Script::SelectOnly => a.push("-S".into()),
            Script::File(f) => a.extend(["-f".into(), f.display().to_string()]),
        }
        a.extend(
            [
                "-M",
                self.protocol.name(),
                "-c",
                &self.clients.to_string(),
                "-j",
                &self.threads.to_string(),
                "-T",
                &self.secs.to_string(),
            ]
            .map(String::from),
        );
        if let Some(rate) = self.rate {
            a.extend([
                format!("--rate={rate}"),
                "-l".into(),
                format!("--log-prefix={}", log_prefix.display()),
            ]);
        }
        a.extend(
            [
                "-h",
                host,
                "-p",
                &port.to_string(),
                "-U",
                server::ROLE,
                server::DATABASE,
            ]
            .map(String::from),
        );
        a
    }
}

/// What a run reports.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// Transactions completed.
    pub transactions: u64,
    /// Transactions per second (without the initial connection time).
    pub tps: f64,
    /// Latencies (µs, from the scheduled start) of the logged transactions; empty without a
    /// rate.
    pub latencies_us: Vec<f64>,
    /// Logged transactions without a latency (skipped or failed).
    pub not_completed: u64,
}

/// Runs `load` against `host:port` with the bench role's password; `scratch` holds its output
/// and log files. An error when pgbench fails or reports a failed transaction.
pub fn run(
    load: &Load,
    host: &str,
    port: u16,
    password: &str,
    scratch: &Path,
) -> anyhow::Result<Outcome> {
    let logs = scratch.join("pgbench-log");
    let _ = fs::remove_dir_all(&logs);
    fs::create_dir_all(&logs)?;
    let mut cmd = Command::new("pgbench");
    cmd.args(load.args(host, port, &logs.join("tx")))
        .current_dir(scratch)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("LC_ALL", "C.UTF-8")
        .env("PGPASSWORD", password)
        .env("PGSSLMODE", "disable")
        .env("PGCONNECT_TIMEOUT", "10");
    let limit = Duration::from_secs(u64::from(load.secs) + 60);
    let (status, text) = run_bounded(cmd, &scratch.join("pgbench.out"), limit)?;
    if !status.success() {
        bail!("pgbench against {host}:{port} failed ({status}):\n{text}");
    }
    let summary =
        parse_summary(&text).with_context(|| format!("unexpected pgbench output:\n{text}"))?;
    if summary.failed > 0 {
        bail!(
            "pgbench against {host}:{port}: {} failed transactions:\n{text}",
            summary.failed
        );
    }
    let mut out = Outcome {
        transactions: summary.transactions,
        tps: summary.tps,
        latencies_us: Vec::new(),
        not_completed: 0,
    };
    if load.rate.is_some() {
        for e in fs::read_dir(&logs)?.flatten() {
            let text = fs::read_to_string(e.path())?;
            out.not_completed += parse_log(&text, &mut out.latencies_us);
        }
        if out.latencies_us.is_empty() {
            bail!("pgbench wrote no transaction log in {}", logs.display());
        }
    }
    let _ = fs::remove_dir_all(&logs);
    Ok(out)
}

/// The figures of pgbench's summary.
#[derive(Debug, Clone, PartialEq)]
struct Summary {
    transactions: u64,
    failed: u64,
    tps: f64,
}

/// Reads `number of transactions actually processed: N`, `number of failed transactions: N`
/// (absent before PostgreSQL 15: 0) and `tps = X (without initial connection time)`.
fn parse_summary(text: &str) -> Option<Summary> {
    let after = |key: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(key))
            .map(str::trim)
    };
    let first_number = |s: &str| -> Option<String> {
        let end = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(s.len());
        (end > 0).then(|| s[..end].to_owned())
    };
    let transactions = first_number(after("number of transactions actually processed:")?)?
        .parse()
        .ok()?;
    let failed = match after("number of failed transactions:") {
        Some(s) => first_number(s)?.parse().ok()?,
        None => 0,
    };
    let tps = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("tps ="))
        .find(|rest| !rest.contains("including"))
        .and_then(|rest| first_number(rest.trim()))?
        .parse()
        .ok()?;
    Some(Summary {
        transactions,
        failed,
        tps,
    })
}

/// Appends the latencies (third field, µs) of a pgbench transaction log to `into`; returns how
/// many lines had none (`skipped`, `failed`).
fn parse_log(text: &str, into: &mut Vec<f64>) -> u64 {
    let mut missing = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match line.split_whitespace().nth(2).map(str::parse::<f64>) {
            Some(Ok(us)) => into.push(us),
            _ => missing += 1,
        }
    }
    missing
}

#[cfg(test)]
mod tests {
    use super::*;

    const PG15: &str = "pgbench (15.18 (Debian 15.18-0+deb12u1))\n\
        transaction type: <builtin: select only>\nscaling factor: 10\nquery mode: simple\n\
        number of clients: 4\nnumber of threads: 2\nmaximum number of tries: 1\n\
        duration: 3 s\nnumber of transactions actually processed: 41916\n\
        number of failed transactions: 0 (0.000%)\nlatency average = 0.185 ms\n\
        initial connection time = 8.512 ms\n\
        tps = 21507.627419 (without initial connection time)\n";

    #[test]
    fn summary_cases() {
        let failed = PG15.replace(
            "failed transactions: 0 (0.000%)",
            "failed transactions: 3 (0.01%)",
        );
        let old = "number of transactions actually processed: 10/10\n\
                   tps = 5.0 (including connections establishing)\n\
                   tps = 6.5 (excluding connections establishing)\n";
        // (output, (transactions, failed, tps))
        type Case<'a> = (&'a str, Option<(u64, u64, f64)>);
        let cases: [Case; 5] = [
            (PG15, Some((41916, 0, 21507.627419))),
            (&failed, Some((41916, 3, 21507.627419))),
            (old, Some((10, 0, 6.5))),
            ("tps = 5\n", None),
            ("", None),
        ];
        for (text, want) in cases {
            let got = parse_summary(text).map(|s| (s.transactions, s.failed, s.tps));
            assert_eq!(got, want, "{text}");
        }
    }

    #[test]
    fn log_cases() {
        let text = "0 0 1520 0 1700000000 123456 80\n\
                    1 0 skipped 0 1700000000 223456 9000\n\
                    1 1 980 0 1700000000 323456 12\n\n\
                    0 1 failed 0 1700000001 1 0\n";
        let mut v = vec![];
        assert_eq!(parse_log(text, &mut v), 2);
        assert_eq!(v, vec![1520.0, 980.0]);
    }

    #[test]
    fn args_cases() {
        let select = Load {
            script: Script::SelectOnly,
            protocol: Protocol::Extended,
            clients: 4,
            threads: 2,
            secs: 10,
            rate: None,
        };
        let a = select.args("127.0.0.1", 5432, Path::new("/w/tx")).join(" ");
        assert_eq!(
            a,
            "-n -S -M extended -c 4 -j 2 -T 10 -h 127.0.0.1 -p 5432 -U bench bench"
        );
        let wide = Load {
            script: Script::File("/w/wide.sql".into()),
            protocol: Protocol::Simple,
            rate: Some(5000),
            ..select
        };
        let a = wide.args("127.0.0.2", 5432, Path::new("/w/tx")).join(" ");
        assert_eq!(
            a,
            "-n -f /w/wide.sql -M simple -c 4 -j 2 -T 10 --rate=5000 -l --log-prefix=/w/tx \
             -h 127.0.0.2 -p 5432 -U bench bench"
        );
    }
}
