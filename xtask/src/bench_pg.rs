//! `cargo xtask bench postgres`: what tollgate's PostgreSQL handler costs next to a direct
//! connection, pgbouncer and HAProxy, measured in one run with interleaved rounds and reported
//! as medians. It prints; it asserts nothing about speed.
//!
//! 1. `pgbench -S` (simple and extended protocol): TPS, ratio to direct, and the CPU time the
//!    proxy process spent per transaction (`/proc/<pid>/stat` utime+stime), with its kernel
//!    part (stime) and, for tollgate, its audit writer thread's part; and tollgate's TPS and CPU
//!    over each other path's, the median of the round-by-round ratios (each round runs every
//!    path, so a machine that slows down between rounds moves both sides of a ratio).
//! 2. Latency p50/p99 at fixed rates, from pgbench's transaction log: half the direct TPS
//!    (above what a slow path sustains: then its latency is queueing) and half the slowest
//!    path's TPS (a rate every path sustains).
//! 3. Masking: `SELECT *` of a wide table through tollgate, masking off vs on.
//!
//! Every run proves its path: the counter of the proxy it claims (tollgate's
//! `connections_allowed`, pgbouncer's `SHOW STATS`, HAProxy's frontend sessions) rose, and the
//! other proxies' did not move.
#[path = "bench_pg_data.rs"]
mod data;
#[path = "bench_pg_paths.rs"]
mod paths;
#[path = "bench_pg_pgbench.rs"]
mod pgbench;
#[path = "bench_pg_proc.rs"]
pub(super) mod proc;
#[path = "bench_pg_proxies.rs"]
mod proxies;
#[path = "bench_pg_report.rs"]
pub(super) mod report;
#[path = "bench_pg_server.rs"]
mod server;

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::{Path as FsPath, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context as _, bail};

use super::{
    env::{self, BenchAgent, Host, visit},
    note,
    stats::{fmt_num, median, paired_ratio, percentile},
    step,
};
use paths::{Counters, Path};
use pgbench::{Load, Protocol, Script};
use report::{Table, ratio};

/// What to measure and how much.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Options {
    /// Interleaved rounds per comparison.
    rounds: usize,
    /// Seconds per pgbench run.
    secs: u32,
    /// pgbench `-c`. 16 by default: with 16 clients this 2-CPU machine reproduces the peer
    /// figures the PostgreSQL issue quotes (pgbouncer about 0.64x direct, HAProxy 0.67x). With 4
    /// clients every proxy reads much lower (pgbouncer about 0.41x, HAProxy 0.36x), because the
    /// run is bound by wake-up latency rather than by CPU.
    clients: u32,
    /// pgbench `-j`.
    threads: u32,
    /// `pgbench -i -s`.
    scale: u32,
    /// Rows of the wide table.
    wide_rows: usize,
    /// Build the agent with `--release` first.
    build: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            rounds: 5,
            secs: 10,
            clients: 16,
            threads: 2,
            scale: 10,
            wide_rows: 1000,
            build: true,
        }
    }
}

const USAGE: &str = "usage: cargo xtask bench postgres [--quick] [--rounds N] [--secs N] \
                     [--clients N] [--threads N] [--scale N] [--wide-rows N] [--no-build]";

impl Options {
    fn parse(args: &[String]) -> anyhow::Result<Options> {
        let mut o = Options::default();
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let mut value = |name: &str| -> anyhow::Result<u32> {
                it.next()
                    .with_context(|| format!("{name} needs a value\n{USAGE}"))?
                    .parse()
                    .with_context(|| format!("{name}: not a number\n{USAGE}"))
            };
            match arg.as_str() {
                "--quick" => {
                    o.rounds = 3;
                    o.secs = 3;
                }
                "--rounds" => o.rounds = value(arg)?.max(1) as usize,
                "--secs" => o.secs = value(arg)?.max(1),
                "--clients" => o.clients = value(arg)?.clamp(1, 40),
                "--threads" => o.threads = value(arg)?.max(1),
                "--scale" => o.scale = value(arg)?.max(1),
                "--wide-rows" => o.wide_rows = value(arg)?.max(1) as usize,
                "--no-build" => o.build = false,
                "-h" | "--help" => {
                    println!("{USAGE}");
                    std::process::exit(0);
                }
                other => bail!("unknown argument {other:?}\n{USAGE}"),
            }
        }
        // pgbench refuses more threads than clients.
        o.threads = o.threads.min(o.clients);
        Ok(o)
    }
}

/// Programs the bench runs, and the package that has each.
const PROGRAMS: &[(&str, &str)] = &[
    ("/usr/lib/postgresql/15/bin/initdb", "postgresql-15"),
    ("/usr/lib/postgresql/15/bin/postgres", "postgresql-15"),
    ("/usr/lib/postgresql/15/bin/pg_isready", "postgresql-15"),
    ("/usr/bin/pgbench", "postgresql-client-15"),
    ("/usr/bin/psql", "postgresql-client-15"),
    (proxies::PGBOUNCER, "pgbouncer"),
    (proxies::HAPROXY, "haproxy"),
];

/// Runs the PostgreSQL benchmark with `args`.
pub fn run(args: &[String]) -> anyhow::Result<()> {
    let opts = Options::parse(args)?;
    if !env::is_root() {
        bail!("cargo xtask bench postgres needs root (eBPF, cgroups, the postgres user)");
    }
    for (program, package) in PROGRAMS {
        if !FsPath::new(program).is_file() {
            bail!("{program} is missing: apt-get install {package} (cargo xtask setup does)");
        }
    }
    let bin = super::agent_binary(opts.build)?;
    let host = Host::detect()?;
    let ids = proc::postgres_ids()?;
    let load_start = loadavg();
    // Declared first, dropped last: after every process that uses it has stopped.
    let work = proc::Workdir::create(ids)?;

    step("PostgreSQL 15, pgbouncer, HAProxy and tollgate on loopback");
    let pg = server::Postgres::start(&work, ids, env::free_port()?)?;
    note(&format!(
        "postgres on 127.0.0.1:{0} and 127.0.0.2:{0}; pgbench -i -s {1}, wide table of {2} rows",
        pg.port, opts.scale, opts.wide_rows
    ));
    pg.fill(opts.scale, opts.wide_rows)?;
    let bouncer = proxies::Pgbouncer::start(&work, ids, env::free_port()?, pg.port, &pg.password)?;
    let haproxy = proxies::Haproxy::start(&work, ids, env::free_port()?, pg.port)?;
    let root = proc::Ids { uid: 0, gid: 0 };
    work.subdir("secrets", root, 0o700)?;
    let password_file = work.file("secrets/bench-password", &pg.password, root, 0o600)?;
    let script = work.file("wide.sql", data::WIDE_SCRIPT, root, 0o644)?;

    let mut agent = BenchAgent::new(&bin, &host, env::free_port()?)?;
    let client_cgroup = agent.cgroup("pgclient")?;
    let policy = data::policy(
        &agent.cgroup_path("pgclient"),
        SocketAddr::from(([127, 0, 0, 1], pg.port)),
        SocketAddr::from(([127, 0, 0, 2], pg.port)),
        &password_file,
    );
    check_policy(&bin, &work, &policy)?;
    agent.write_policy(&policy)?;
    agent.start()?;
    let agent_pid = proc::child_running(&bin)?;

    let mut bench = Bench {
        agent,
        agent_pid,
        haproxy,
        bouncer,
        pg,
        opts,
        host,
        client_cgroup,
        scratch: work.path.clone(),
        script,
    };
    bench.print_settings(&load_start);
    bench.check_masking()?;
    bench.warm_up()?;
    let throughput = bench.throughput()?;
    let rates = latency_rates(&throughput);
    let mut latency = Vec::new();
    for (rate, why) in &rates {
        latency.push((*rate, *why, bench.latency(*rate, why)?));
    }
    let masking = bench.masking()?;
    bench.agent.stop()?;
    bench.pg.check_alive()?;

    println!();
    print!("{}", throughput_table(&bench.opts, &throughput).render());
    println!();
    for (rate, why, series) in &latency {
        print!("{}", latency_table(*rate, why, series).render());
        println!();
    }
    print!("{}", masking_table(&bench.opts, &masking).render());
    println!();
    println!(
        "(medians over {} interleaved rounds of {} s; ratio = path / direct; proxy CPU = user+system \
         time of the tollgate agent, pgbouncer or haproxy process per transaction; load average \
         {} at start, {} at the end: the machine is shared, so compare columns of one run rather \
         than absolute figures)",
        bench.opts.rounds,
        bench.opts.secs,
        load_start,
        loadavg()
    );
    Ok(())
}

/// The 1-minute load average, as text.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

/// `tollgate policy check` on the bench policy, so that a policy error shows as such.
fn check_policy(bin: &FsPath, work: &proc::Workdir, policy: &str) -> anyhow::Result<()> {
    let dir = work.subdir("policy-check", proc::Ids { uid: 0, gid: 0 }, 0o700)?;
    std::fs::write(dir.join("bench.toml"), policy)?;
    let out = Command::new(bin)
        .args(["policy", "check"])
        .arg(&dir)
        .stdin(Stdio::null())
        .output()
        .context("running tollgate policy check")?;
    if !out.status.success() {
        bail!(
            "the bench policy does not load:\n{}{}\n{policy}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Per-round figures of one (protocol, path) or masking setting.
#[derive(Debug, Default, Clone)]
struct Series {
    /// TPS per round.
    tps: Vec<f64>,
    /// Proxy CPU µs per transaction per round (empty for direct).
    cpu: Vec<f64>,
    /// Of it, system (kernel) time.
    kernel: Vec<f64>,
    /// Of it, tollgate's audit writer thread (empty for the other paths).
    writer: Vec<f64>,
    /// Latency p50 (µs) per round.
    p50: Vec<f64>,
    /// Latency p99 (µs) per round.
    p99: Vec<f64>,
    /// Transactions without a latency (skipped, failed) over all rounds.
    not_completed: u64,
}

/// One measured run.
struct Measurement {
    tps: f64,
    /// The proxy's CPU per transaction.
    cpu: Option<proc::Cpu>,
    outcome: pgbench::Outcome,
}

impl Series {
    /// Adds a run's proxy CPU per transaction; the writer's part only for tollgate's.
    fn add_cpu(&mut self, cpu: Option<proc::Cpu>, path: Path) {
        if let Some(c) = cpu {
            self.cpu.push(c.total);
            self.kernel.push(c.system);
            if path == Path::Tollgate {
                self.writer.push(c.writer);
            }
        }
    }
}

/// Everything the measurements use. Fields drop in order: the agent first, the server last.
struct Bench {
    agent: BenchAgent,
    agent_pid: u32,
    haproxy: proxies::Haproxy,
    bouncer: proxies::Pgbouncer,
    pg: server::Postgres,
    opts: Options,
    host: Host,
    client_cgroup: PathBuf,
    scratch: PathBuf,
    script: PathBuf,
}

/// The loopback address of the masked tollgate target.
const MASKED_HOST: &str = "127.0.0.2";

impl Bench {
    fn print_settings(&self, load: &str) {
        let o = &self.opts;
        step("settings");
        note(&format!(
            "{}; pgbench -n -c {} -j {} -T {} with -S (select only, scale {}) in -M simple and \
             -M extended; {} interleaved rounds",
            first_line("pgbench", &["--version"]),
            o.clients,
            o.threads,
            o.secs,
            o.scale,
            o.rounds
        ));
        note(
            "every client: sslmode=disable, role bench with a SCRAM-SHA-256 password (through \
             tollgate the agent logs in with its credential)",
        );
        note(&format!(
            "postgres: {}; port {}",
            server::SETTINGS.trim().replace('\n', ", "),
            self.pg.port,
        ));
        note(&format!(
            "tollgate: release build, client cgroup {} enrolled; target protocol postgres, \
             upstream_tls disable, statement rule allow select/set/transaction, statement \
             audit on, masking off (on for the masked target at {MASKED_HOST})",
            self.client_cgroup.display()
        ));
        note(&format!(
            "{}: session pooling, default_pool_size 20, SCRAM, port {}",
            first_line(proxies::PGBOUNCER, &["--version"]),
            self.bouncer.port
        ));
        note(&format!(
            "{}: mode tcp, one frontend and one server, port {}",
            first_line(proxies::HAPROXY, &["-v"]),
            self.haproxy.port
        ));
        note(&format!(
            "machine: {} CPUs, load average {load} at start (shared with other builds)",
            std::thread::available_parallelism().map_or(0, usize::from)
        ));
    }

    /// The proxies' counters now.
    fn counters(&mut self) -> anyhow::Result<Counters> {
        Ok(Counters {
            tollgate_allowed: self
                .agent
                .counter("connections_allowed")
                .context("tollgate status has no connections_allowed counter")?,
            pgbouncer_xacts: self.bouncer.transactions()?,
            haproxy_sessions: self.haproxy.sessions()?,
        })
    }

    /// Where pgbench connects for `path`.
    fn port(&self, path: Path) -> u16 {
        match path {
            Path::Direct | Path::Tollgate => self.pg.port,
            Path::Pgbouncer => self.bouncer.port,
            Path::Haproxy => self.haproxy.port,
        }
    }

    /// The process whose CPU time a run through `path` costs.
    fn proxy_pid(&self, path: Path) -> Option<u32> {
        match path {
            Path::Direct => None,
            Path::Tollgate => Some(self.agent_pid),
            Path::Pgbouncer => Some(self.bouncer.pid()),
            Path::Haproxy => Some(self.haproxy.pid()),
        }
    }

    /// Runs `load` through `path` (to `host`), checks the path and measures the proxy's CPU.
    fn measure(&mut self, path: Path, host: &str, load: &Load) -> anyhow::Result<Measurement> {
        let port = self.port(path);
        let pid = self.proxy_pid(path);
        let before = self.counters()?;
        let cpu_before = pid.map(proc::cpu).transpose()?;
        let outcome = {
            let _visit = (path == Path::Tollgate)
                .then(|| visit(&self.host, &self.client_cgroup))
                .transpose()?;
            pgbench::run(load, host, port, &self.pg.password, &self.scratch)
        };
        let outcome = outcome.with_context(|| format!("{} run", path.label()))?;
        if path == Path::Tollgate {
            self.agent.settle()?;
        }
        let cpu_after = pid.map(proc::cpu).transpose()?;
        let after = self.counters()?;
        paths::verify(
            path,
            before,
            after,
            u64::from(load.clients),
            outcome.transactions,
        )?;
        let cpu = cpu_before
            .zip(cpu_after)
            .map(|(b, a)| (a - b).per(outcome.transactions));
        Ok(Measurement {
            tps: outcome.tps,
            cpu,
            outcome,
        })
    }

    fn load(&self, script: Script, protocol: Protocol, secs: u32, rate: Option<u64>) -> Load {
        Load {
            script,
            protocol,
            clients: self.opts.clients,
            threads: self.opts.threads,
            secs,
            rate,
        }
    }

    /// psql through tollgate (from the enrolled cgroup) to `host`: masking is on at the masked
    /// target and off at the other, or the masking figures would compare the wrong things.
    fn check_masking(&mut self) -> anyhow::Result<()> {
        step("check: masking off at the plain target, on at the masked one");
        let sql = format!(
            "SELECT {}, {} FROM wide WHERE id = 1",
            data::CARD_COLUMN,
            data::EMAIL_COLUMN
        );
        let row = data::wide_row(1);
        let (card, email) = (&row[0], &row[1]);
        for (host, masked) in [("127.0.0.1", false), (MASKED_HOST, true)] {
            let before = self.counters()?;
            let out = {
                let _visit = visit(&self.host, &self.client_cgroup)?;
                Command::new("psql")
                    .args(["-X", "-A", "-t", "-h", host, "-p"])
                    .arg(self.pg.port.to_string())
                    .args(["-U", server::ROLE, "-d", server::DATABASE, "-c", &sql])
                    .env("PGPASSWORD", &self.pg.password)
                    .env("PGSSLMODE", "disable")
                    .stdin(Stdio::null())
                    .output()
                    .context("running psql")?
            };
            let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            if !out.status.success() {
                bail!(
                    "psql through tollgate to {host} failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            paths::verify(Path::Tollgate, before, self.counters()?, 1, 1)?;
            let raw = text.contains(card.as_str()) || text.contains(email.as_str());
            let last4 = &card[card.len() - 4..];
            let looks_masked =
                !raw && text.contains(last4) && text.contains("[REDACTED") && text.contains('*');
            if masked != looks_masked || (!masked && !raw) {
                bail!(
                    "through tollgate to {host} the row reads {text:?}: masking should be {}",
                    if masked { "on" } else { "off" }
                );
            }
            note(&format!("{host}: {text}"));
        }
        Ok(())
    }

    /// One short run per path and per masking setting (connections, caches, classification).
    fn warm_up(&mut self) -> anyhow::Result<()> {
        step("warm-up: 1 s per path");
        for path in Path::ALL {
            let load = self.load(Script::SelectOnly, Protocol::Simple, 1, None);
            let m = self.measure(path, "127.0.0.1", &load)?;
            note(&format!("{:<9} {:>8.0} tps", path.label(), m.tps));
        }
        for host in ["127.0.0.1", MASKED_HOST] {
            let load = self.load(Script::File(self.script.clone()), Protocol::Simple, 1, None);
            self.measure(Path::Tollgate, host, &load)?;
        }
        Ok(())
    }

    /// (1): pgbench -S, simple and extended, every path, interleaved.
    fn throughput(&mut self) -> anyhow::Result<BTreeMap<(Protocol, Path), Series>> {
        step("1 pgbench -S: direct, tollgate, pgbouncer, haproxy; simple and extended protocol");
        let mut out: BTreeMap<(Protocol, Path), Series> = BTreeMap::new();
        for round in 0..self.opts.rounds {
            for path in Path::rotation(round) {
                for protocol in protocols(round) {
                    let load = self.load(Script::SelectOnly, protocol, self.opts.secs, None);
                    let m = self.measure(path, "127.0.0.1", &load)?;
                    note(&format!(
                        "round {}/{} {:<9} {:<8} {:>8.0} tps{}",
                        round + 1,
                        self.opts.rounds,
                        path.label(),
                        protocol.name(),
                        m.tps,
                        cpu_note(m.cpu)
                    ));
                    let s = out.entry((protocol, path)).or_default();
                    s.tps.push(m.tps);
                    s.add_cpu(m.cpu, path);
                }
            }
        }
        Ok(out)
    }

    /// (2): latency at a fixed rate, simple protocol, every path, interleaved.
    fn latency(&mut self, rate: u64, why: &str) -> anyhow::Result<BTreeMap<Path, Series>> {
        step(&format!(
            "2 latency at {rate} tps ({why}), pgbench -S -M simple --rate"
        ));
        let mut out: BTreeMap<Path, Series> = BTreeMap::new();
        for round in 0..self.opts.rounds {
            for path in Path::rotation(round) {
                let load = self.load(
                    Script::SelectOnly,
                    Protocol::Simple,
                    self.opts.secs,
                    Some(rate),
                );
                let m = self.measure(path, "127.0.0.1", &load)?;
                let lat = &m.outcome.latencies_us;
                let (p50, p99) = (percentile(lat, 50.0), percentile(lat, 99.0));
                note(&format!(
                    "round {}/{} {:<9} p50 {:>7.0} µs  p99 {:>7.0} µs  ({:.0} tps){}",
                    round + 1,
                    self.opts.rounds,
                    path.label(),
                    p50,
                    p99,
                    m.tps,
                    cpu_note(m.cpu)
                ));
                let s = out.entry(path).or_default();
                s.tps.push(m.tps);
                s.add_cpu(m.cpu, path);
                s.p50.push(p50);
                s.p99.push(p99);
                s.not_completed += m.outcome.not_completed;
            }
        }
        Ok(out)
    }

    /// (3): `SELECT * FROM wide` through tollgate, masking off vs on, interleaved.
    fn masking(&mut self) -> anyhow::Result<[Series; 2]> {
        step(&format!(
            "3 masking: SELECT * FROM wide ({} text columns × {} rows) through tollgate, off vs on",
            data::WIDE_COLUMNS,
            self.opts.wide_rows
        ));
        let mut out = [Series::default(), Series::default()];
        for round in 0..self.opts.rounds {
            let order = if round.is_multiple_of(2) {
                [false, true]
            } else {
                [true, false]
            };
            for masked in order {
                let host = if masked { MASKED_HOST } else { "127.0.0.1" };
                let load = self.load(
                    Script::File(self.script.clone()),
                    Protocol::Simple,
                    self.opts.secs,
                    None,
                );
                let m = self.measure(Path::Tollgate, host, &load)?;
                note(&format!(
                    "round {}/{} masking {:<3} {:>8.1} tps{}",
                    round + 1,
                    self.opts.rounds,
                    if masked { "on" } else { "off" },
                    m.tps,
                    cpu_note(m.cpu)
                ));
                let s = &mut out[usize::from(masked)];
                s.tps.push(m.tps);
                s.add_cpu(m.cpu, Path::Tollgate);
            }
        }
        Ok(out)
    }
}

/// Even rounds run simple first, odd rounds extended first.
fn protocols(round: usize) -> [Protocol; 2] {
    if round.is_multiple_of(2) {
        [Protocol::Simple, Protocol::Extended]
    } else {
        [Protocol::Extended, Protocol::Simple]
    }
}

fn cpu_note(cpu: Option<proc::Cpu>) -> String {
    cpu.map_or(String::new(), |c| {
        let writer = if c.writer > 0.0 {
            format!(", writer {:.1}", c.writer)
        } else {
            String::new()
        };
        format!(
            "  proxy CPU {:.1} µs/tx (kernel {:.1}{writer})",
            c.total, c.system
        )
    })
}

/// The first three words of `program args` output (`HAProxy version 2.6.12`), or the program
/// name.
fn first_line(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .ok()
        .and_then(|o| {
            let text = String::from_utf8_lossy(&o.stdout).into_owned();
            let words: Vec<&str> = text.lines().next()?.split_whitespace().take(3).collect();
            Some(words.join(" "))
        })
        .filter(|l| !l.is_empty())
        .unwrap_or_else(|| program.to_owned())
}

/// Median of `v`, formatted; `-` when there are no values.
fn med(v: &[f64]) -> String {
    if v.is_empty() {
        "-".into()
    } else {
        fmt_num(median(v))
    }
}

fn path_columns() -> Vec<&'static str> {
    Path::ALL.iter().map(|p| p.label()).collect()
}

fn throughput_table(o: &Options, s: &BTreeMap<(Protocol, Path), Series>) -> Table {
    let mut t = Table::new(
        format!(
            "1 pgbench -S (select only, scale {}), {} clients, {} threads, {} s runs",
            o.scale, o.clients, o.threads, o.secs
        ),
        &path_columns(),
    );
    let empty = Series::default();
    for protocol in [Protocol::Simple, Protocol::Extended] {
        let get = |p: Path| s.get(&(protocol, p)).unwrap_or(&empty);
        let direct = median(&get(Path::Direct).tps);
        let name = protocol.name();
        t.row(
            format!("{name}: TPS"),
            Path::ALL.iter().map(|&p| med(&get(p).tps)).collect(),
        );
        t.row(
            format!("{name}: ratio to direct"),
            Path::ALL
                .iter()
                .map(|&p| ratio(median(&get(p).tps) / direct))
                .collect(),
        );
        t.row(
            format!("{name}: proxy CPU µs/tx"),
            Path::ALL.iter().map(|&p| med(&get(p).cpu)).collect(),
        );
        t.row(
            format!("{name}:   of it kernel"),
            Path::ALL.iter().map(|&p| med(&get(p).kernel)).collect(),
        );
        t.row(
            format!("{name}:   of it audit writer"),
            Path::ALL.iter().map(|&p| med(&get(p).writer)).collect(),
        );
        let ours = get(Path::Tollgate);
        t.row(
            format!("{name}: tollgate's TPS over this"),
            Path::ALL
                .iter()
                .map(|&p| ratio(paired_ratio(&ours.tps, &get(p).tps)))
                .collect(),
        );
        t.row(
            format!("{name}: tollgate's CPU over this"),
            Path::ALL
                .iter()
                .map(|&p| ratio(paired_ratio(&ours.cpu, &get(p).cpu)))
                .collect(),
        );
    }
    t
}

/// The latency rates: half the direct simple TPS, and half the slowest path's (when lower).
fn latency_rates(s: &BTreeMap<(Protocol, Path), Series>) -> Vec<(u64, &'static str)> {
    let tps = |p: Path| {
        s.get(&(Protocol::Simple, p))
            .map_or(f64::NAN, |s| median(&s.tps))
    };
    let half = |x: f64| ((x * 0.5).round() as u64).max(1);
    let direct = half(tps(Path::Direct));
    let slowest = half(
        Path::ALL
            .iter()
            .map(|&p| tps(p))
            .fold(f64::INFINITY, f64::min),
    );
    let mut rates = vec![(direct, "half the direct simple TPS")];
    if slowest < direct {
        rates.push((slowest, "half the slowest path's simple TPS"));
    }
    rates
}

/// Whether a path kept up with `rate` (its median achieved TPS within 5 %).
fn sustained(rate: u64, achieved: f64) -> bool {
    achieved >= rate as f64 * 0.95
}

fn latency_table(rate: u64, why: &str, s: &BTreeMap<Path, Series>) -> Table {
    let mut t = Table::new(
        format!(
            "2 latency at a fixed {rate} tps = {why} (pgbench -S -M simple --rate; from the \
             scheduled start, so queueing counts), µs"
        ),
        &path_columns(),
    );
    let empty = Series::default();
    let get = |p: Path| s.get(&p).unwrap_or(&empty);
    let direct = |f: fn(&Series) -> &Vec<f64>| median(f(get(Path::Direct)));
    for (name, f) in [
        ("p50", (|s: &Series| &s.p50) as fn(&Series) -> &Vec<f64>),
        ("p99", |s: &Series| &s.p99),
    ] {
        t.row(name, Path::ALL.iter().map(|&p| med(f(get(p)))).collect());
        t.row(
            format!("{name} ratio to direct"),
            Path::ALL
                .iter()
                .map(|&p| ratio(median(f(get(p))) / direct(f)))
                .collect(),
        );
    }
    t.row(
        "achieved TPS",
        Path::ALL.iter().map(|&p| med(&get(p).tps)).collect(),
    );
    t.row(
        "kept up with the rate",
        Path::ALL
            .iter()
            .map(|&p| {
                if sustained(rate, median(&get(p).tps)) {
                    "yes".into()
                } else {
                    "NO: queueing".into()
                }
            })
            .collect(),
    );
    t.row(
        "proxy CPU µs/tx",
        Path::ALL.iter().map(|&p| med(&get(p).cpu)).collect(),
    );
    t.row(
        "skipped/failed tx",
        Path::ALL
            .iter()
            .map(|&p| get(p).not_completed.to_string())
            .collect(),
    );
    t
}

fn masking_table(o: &Options, s: &[Series; 2]) -> Table {
    let mut t = Table::new(
        format!(
            "3 masking through tollgate: SELECT * FROM wide ({} text columns × {} rows; column \
             rule *card* last4 + email detector redact), {} clients",
            data::WIDE_COLUMNS,
            o.wide_rows,
            o.clients
        ),
        &["masking off", "masking on", "on / off"],
    );
    for (name, f) in [
        ("TPS", (|s: &Series| &s.tps) as fn(&Series) -> &Vec<f64>),
        ("agent CPU µs/tx", |s: &Series| &s.cpu),
    ] {
        let (off, on) = (f(&s[0]), f(&s[1]));
        t.row(
            name,
            vec![med(off), med(on), ratio(median(on) / median(off))],
        );
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn options_parse() {
        let q = Options::parse(&args(&["--quick", "--no-build"])).expect("parse");
        assert_eq!((q.rounds, q.secs, q.build), (3, 3, false));
        let o = Options::parse(&args(&["--clients", "1", "--threads", "2"])).expect("parse");
        assert_eq!((o.clients, o.threads), (1, 1), "threads capped by clients");
        assert!(Options::parse(&args(&["--secs"])).is_err());
        assert!(Options::parse(&args(&["--stream-mib", "1"])).is_err());
        assert_eq!(Options::parse(&[]).expect("parse"), Options::default());
    }

    #[test]
    fn latency_rates_cases() {
        let series = |direct: f64, slow: f64| {
            let mut s = BTreeMap::new();
            for (p, tps) in [
                (Path::Direct, direct),
                (Path::Tollgate, slow),
                (Path::Pgbouncer, direct),
                (Path::Haproxy, direct),
            ] {
                s.insert(
                    (Protocol::Simple, p),
                    Series {
                        tps: vec![tps],
                        ..Series::default()
                    },
                );
            }
            s
        };
        let rates = |s: &BTreeMap<(Protocol, Path), Series>| -> Vec<u64> {
            latency_rates(s).iter().map(|r| r.0).collect()
        };
        assert_eq!(rates(&series(40_000.0, 10_000.0)), vec![20_000, 5_000]);
        assert_eq!(rates(&series(40_000.0, 40_000.0)), vec![20_000]);
        assert_eq!(rates(&series(1.0, 1.0)), vec![1]);
        assert!(sustained(1000, 960.0));
        assert!(!sustained(1000, 900.0));
    }

    #[test]
    fn protocols_alternate() {
        assert_eq!(protocols(0), [Protocol::Simple, Protocol::Extended]);
        assert_eq!(protocols(1), [Protocol::Extended, Protocol::Simple]);
    }

    #[test]
    fn tables_show_ratios_to_direct() {
        let mut s = BTreeMap::new();
        for (p, tps) in [
            (Path::Direct, 1000.0),
            (Path::Tollgate, 500.0),
            (Path::Pgbouncer, 800.0),
            (Path::Haproxy, 900.0),
        ] {
            for protocol in [Protocol::Simple, Protocol::Extended] {
                s.insert(
                    (protocol, p),
                    Series {
                        tps: vec![tps, tps + 10.0, tps - 10.0],
                        cpu: if p == Path::Direct {
                            vec![]
                        } else {
                            vec![20.0]
                        },
                        ..Series::default()
                    },
                );
            }
        }
        let text = throughput_table(&Options::default(), &s).render();
        assert!(text.contains("0.50x"), "{text}");
        assert!(text.contains("0.90x"), "{text}");
        let cpu_line = text
            .lines()
            .find(|l| l.contains("simple: proxy CPU"))
            .expect("cpu row");
        assert!(cpu_line.split_whitespace().any(|w| w == "-"), "{cpu_line}");
        let masking = masking_table(
            &Options::default(),
            &[
                Series {
                    tps: vec![200.0],
                    ..Series::default()
                },
                Series {
                    tps: vec![150.0],
                    ..Series::default()
                },
            ],
        )
        .render();
        assert!(masking.contains("0.75x"), "{masking}");
    }
}
