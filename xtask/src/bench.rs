//! `cargo xtask bench`: what tollgate costs, measured side by side in one run with interleaved
//! rounds and reported as medians. It prints; it asserts nothing about speed.
//!
//! 1. One TCP stream (throughput) and a small ping-pong (latency p50/p99) through a loopback
//!    server: the same client intercepted (its process moved into an enrolled cgroup) and
//!    direct (back in its own cgroup, outside the attach cgroup).
//! 2. `connect()`+close of an unenrolled process (a cgroup under the attach cgroup matching no
//!    workload) with the programs attached (agent running) and detached (agent stopped,
//!    `fail_mode = "open"`).
//! 3. The agent's RSS at start and per idle proxied connection.
//!
//! Every measurement checks its path (the server reports the source port it saw), so an
//! "intercepted" number can never be a direct one by mistake.
//!
//! `cargo xtask bench postgres` compares PostgreSQL paths instead (`bench_pg.rs`);
//! `cargo xtask bench all` runs both (with the options they share: `--quick`, `--rounds N`,
//! `--no-build`).
#[path = "bench_env.rs"]
mod env;
#[path = "bench_http.rs"]
mod http;
#[path = "bench_net.rs"]
mod net;
#[path = "bench_pg.rs"]
mod pg;
#[path = "bench_stats.rs"]
mod stats;

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::{Context as _, bail};

use env::{BenchAgent, Host, visit};
use net::Path;
use stats::{Row, median, percentile};

/// What to measure and how much.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Options {
    /// Interleaved rounds per comparison.
    rounds: usize,
    /// MiB sent through the single stream per round.
    stream_mib: u64,
    /// Ping-pongs per round.
    pings: usize,
    /// connect+close loops per round.
    connects: usize,
    /// Idle proxied connections for the RSS measurement.
    idle: usize,
    /// Build the agent with `--release` first.
    build: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            rounds: 5,
            stream_mib: 512,
            pings: 5000,
            connects: 20_000,
            idle: 1000,
            build: true,
        }
    }
}

const USAGE: &str = "usage: cargo xtask bench [--quick] [--rounds N] [--stream-mib N] [--pings N] \
                     [--connects N] [--idle N] [--no-build]";

impl Options {
    fn parse(args: &[String]) -> anyhow::Result<Options> {
        let mut o = Options::default();
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let mut value = |name: &str| -> anyhow::Result<u64> {
                it.next()
                    .with_context(|| format!("{name} needs a value\n{USAGE}"))?
                    .parse()
                    .with_context(|| format!("{name}: not a number\n{USAGE}"))
            };
            match arg.as_str() {
                "--quick" => {
                    o = Options {
                        rounds: 3,
                        stream_mib: 64,
                        pings: 1000,
                        connects: 2000,
                        idle: 200,
                        build: o.build,
                    }
                }
                "--rounds" => o.rounds = value(arg)?.max(1) as usize,
                "--stream-mib" => o.stream_mib = value(arg)?.max(1),
                "--pings" => o.pings = value(arg)?.max(10) as usize,
                "--connects" => o.connects = value(arg)?.clamp(100, 25_000) as usize,
                "--idle" => o.idle = value(arg)?.max(1) as usize,
                "--no-build" => o.build = false,
                "-h" | "--help" => {
                    println!("{USAGE}");
                    std::process::exit(0);
                }
                other => bail!("unknown argument {other:?}\n{USAGE}"),
            }
        }
        Ok(o)
    }
}

/// Runs the benchmark named by the first argument (`postgres`, `http`, `all`; else the TCP one)
/// with the other arguments.
pub fn run(args: &[String]) -> anyhow::Result<()> {
    match args.first().map(String::as_str) {
        Some("postgres" | "pg") => pg::run(&args[1..]),
        Some("http") => http::run(&args[1..]),
        Some("tcp") => run_tcp(&args[1..]),
        Some("all") => {
            run_tcp(&args[1..])?;
            // Built (or not) by the TCP bench already.
            let mut rest = args[1..].to_vec();
            rest.push("--no-build".into());
            pg::run(&rest)?;
            http::run(&rest)
        }
        _ => run_tcp(args),
    }
}

/// Runs the TCP benchmarks with `args`.
fn run_tcp(args: &[String]) -> anyhow::Result<()> {
    let mut opts = Options::parse(args)?;
    if !env::is_root() {
        bail!("cargo xtask bench needs root (eBPF, cgroups)");
    }
    let bin = agent_binary(opts.build)?;
    let host = Host::detect()?;
    if let Some(limit) = env::open_files_limit() {
        let fit = (limit.saturating_sub(256) / 2) as usize;
        if fit < opts.idle {
            println!(
                "    open files limit {limit}: {fit} idle connections instead of {}",
                opts.idle
            );
            opts.idle = fit.max(1);
        }
    }
    step(&format!(
        "bench: {} rounds, {} MiB stream, {} ping-pongs, {} connects, {} idle connections",
        opts.rounds, opts.stream_mib, opts.pings, opts.connects, opts.idle
    ));

    let sink = net::sink("127.0.0.1:0")?;
    let echo = net::echo("127.0.0.1:0")?;
    let holder = net::holder("127.0.0.1:0")?;
    let mut agent = BenchAgent::new(&bin, &host, env::free_port()?)?;
    let enrolled = agent.cgroup("enrolled")?;
    let plain = agent.cgroup("plain")?;
    agent.write_policy(&policy(
        &agent.cgroup_path("enrolled"),
        &[sink.addr, echo.addr, holder.addr],
    ))?;
    agent.start()?;

    let mut rows = stream_and_latency(&opts, &host, &enrolled, sink.addr, echo.addr)?;
    rows.push(connect_cost(&opts, &host, &mut agent, &plain)?);
    let rss = memory(&opts, &host, &mut agent, &enrolled, holder.addr)?;
    agent.stop()?;

    println!();
    print!("{}", stats::render(&rows));
    println!(
        "agent RSS at start: {:.1} MiB; per idle proxied connection: {:.1} KiB \
         ({} connections: {:.1} → {:.1} MiB; after closing them: {:.1} MiB)",
        rss.start as f64 / 1024.0,
        rss.per_conn_kib,
        opts.idle,
        rss.start as f64 / 1024.0,
        rss.loaded as f64 / 1024.0,
        rss.after as f64 / 1024.0,
    );
    println!(
        "(medians over {} interleaved rounds; ratio = tollgate / baseline; \
         throughput: higher is better, times: lower is better)",
        opts.rounds
    );
    Ok(())
}

fn step(what: &str) {
    println!("==> {what}");
}

fn note(what: &str) {
    println!("    {what}");
}

/// Builds (unless told not to) and returns the release agent.
fn agent_binary(build: bool) -> anyhow::Result<PathBuf> {
    if build {
        step("cargo build --release -p tollgate");
        let status = std::process::Command::new("cargo")
            .args(["build", "--release", "-p", "tollgate"])
            .current_dir(env::repo_root())
            .status()
            .context("running cargo build")?;
        if !status.success() {
            bail!("cargo build --release -p tollgate failed ({status})");
        }
    }
    let bin = env::target_dir().join("release").join("tollgate");
    if !bin.is_file() {
        bail!("{} missing (run without --no-build)", bin.display());
    }
    Ok(bin)
}

/// One workload (`bench`, the enrolled cgroup) allowed to reach the bench servers.
fn policy(cgroup: &str, addrs: &[SocketAddr]) -> String {
    let addrs: Vec<String> = addrs.iter().map(ToString::to_string).collect();
    format!(
        "# cargo xtask bench: the enrolled bench client may reach the bench servers.\n\
         [[workload]]\nname = \"bench\"\nspiffe_id = \"spiffe://bench.tollgate/bench\"\n\
         mode = \"enforce\"\n[workload.selector]\ncgroup = {cgroup:?}\n\n\
         [[target]]\nname = \"bench\"\nprotocol = \"tcp\"\naddresses = {addrs:?}\n\n\
         [[rule]]\nname = \"bench\"\nworkloads = [\"bench\"]\ntargets = [\"bench\"]\n\
         action = \"allow\"\n"
    )
}

/// Even rounds start with the first mode, odd rounds with the second.
fn order(round: usize) -> [bool; 2] {
    if round.is_multiple_of(2) {
        [false, true]
    } else {
        [true, false]
    }
}

/// (1): throughput and ping-pong latency, direct vs intercepted.
fn stream_and_latency(
    opts: &Options,
    host: &Host,
    enrolled: &std::path::Path,
    sink: SocketAddr,
    echo: SocketAddr,
) -> anyhow::Result<Vec<Row>> {
    step("1 TCP stream and ping-pong: direct vs intercepted");
    let bytes = opts.stream_mib << 20;
    let (mut tput, mut p50, mut p99) = ([vec![], vec![]], [vec![], vec![]], [vec![], vec![]]);
    // Warm-up of both paths (classification, page cache, CPU frequency).
    for proxied in [false, true] {
        let _visit = proxied.then(|| visit(host, enrolled)).transpose()?;
        net::stream(sink, bytes.min(16 << 20))?;
        net::ping_pong(echo, 100, 64)?;
    }
    for round in 0..opts.rounds {
        for proxied in order(round) {
            let want = if proxied { Path::Proxied } else { Path::Direct };
            let _visit = proxied.then(|| visit(host, enrolled)).transpose()?;
            let (secs, path) = net::stream(sink, bytes)?;
            check(path, want, "stream")?;
            let (rtts, path) = net::ping_pong(echo, opts.pings, 64)?;
            check(path, want, "ping-pong")?;
            let i = usize::from(proxied);
            tput[i].push(opts.stream_mib as f64 / secs);
            p50[i].push(percentile(&rtts, 50.0));
            p99[i].push(percentile(&rtts, 99.0));
            note(&format!(
                "round {}/{} {:<8} {:>8.0} MiB/s  p50 {:>7.1} µs  p99 {:>7.1} µs",
                round + 1,
                opts.rounds,
                if proxied { "proxied" } else { "direct" },
                tput[i][round],
                p50[i][round],
                p99[i][round],
            ));
        }
    }
    let labels = ("direct", "proxied");
    let row = |metric: String, v: &[Vec<f64>; 2]| Row {
        metric,
        baseline: median(&v[0]),
        tollgate: median(&v[1]),
        labels,
    };
    Ok(vec![
        row(
            format!("1 TCP stream, {} MiB (MiB/s)", opts.stream_mib),
            &tput,
        ),
        row("ping-pong 64 B, p50 (µs)".into(), &p50),
        row("ping-pong 64 B, p99 (µs)".into(), &p99),
    ])
}

fn check(got: Path, want: Path, what: &str) -> anyhow::Result<()> {
    if got != want {
        bail!("{what}: the connection went {got:?}, expected {want:?}: the setup is wrong");
    }
    Ok(())
}

/// The agent's counter of connections its hook let go direct (unenrolled cgroups).
const DIRECT_COUNTER: &str = "ebpf_direct";

/// (2): connect+close of an unenrolled process, programs attached vs detached.
fn connect_cost(
    opts: &Options,
    host: &Host,
    agent: &mut BenchAgent,
    plain: &std::path::Path,
) -> anyhow::Result<Row> {
    step("connect+close of an unenrolled process: programs detached vs attached");
    let mut cost = [vec![], vec![]];
    let mut next_ip = 10u8;
    for round in 0..opts.rounds {
        // The agent runs at the start of even rounds (attached first there) and is stopped at
        // the start of odd ones (detached first): one start or stop per measurement.
        let modes = if round.is_multiple_of(2) {
            [true, false]
        } else {
            [false, true]
        };
        for attached in modes {
            if attached {
                if !agent.is_running() {
                    agent.start()?;
                }
            } else {
                agent.stop()?;
            }
            // A fresh destination per measurement: the previous one's TIME_WAIT sockets hold
            // most of the ephemeral ports towards it.
            let acc = net::acceptor(&format!("127.0.0.{next_ip}:0"))?;
            next_ip = next_ip.wrapping_add(1).max(10);
            let (us, direct) = {
                let _visit = visit(host, plain)?;
                net::connect_loop(acc.addr, 200)?; // warm-up (and classification when attached)
                let before = attached.then(|| agent.counter(DIRECT_COUNTER)).flatten();
                let us = net::connect_loop(acc.addr, opts.connects)?;
                let after = attached.then(|| agent.counter(DIRECT_COUNTER)).flatten();
                (us, before.zip(after).map(|(b, a)| a.saturating_sub(b)))
            };
            cost[usize::from(attached)].push(us);
            // With the programs attached, every loop must have run the hook and gone direct.
            let seen = direct.map_or(String::new(), |n| format!(" ({DIRECT_COUNTER} +{n})"));
            note(&format!(
                "round {}/{} {:<8} {:>6.2} µs per connect+close{seen}",
                round + 1,
                opts.rounds,
                if attached { "attached" } else { "detached" },
                us
            ));
        }
    }
    if !agent.is_running() {
        agent.start()?;
    }
    Ok(Row {
        metric: "connect+close, unenrolled (µs)".into(),
        baseline: median(&cost[0]),
        tollgate: median(&cost[1]),
        labels: ("detached", "attached"),
    })
}

/// Agent RSS in KiB at start, with the idle connections open, and after closing them.
struct Rss {
    start: u64,
    loaded: u64,
    after: u64,
    per_conn_kib: f64,
}

/// (3): RSS of a fresh agent, and per idle proxied connection.
fn memory(
    opts: &Options,
    host: &Host,
    agent: &mut BenchAgent,
    enrolled: &std::path::Path,
    holder: SocketAddr,
) -> anyhow::Result<Rss> {
    step("agent RSS: at start and per idle proxied connection");
    agent.stop()?;
    agent.start()?;
    std::thread::sleep(Duration::from_secs(1));
    let start = agent.rss_kib()?;
    let conns = {
        let _visit = visit(host, enrolled)?;
        net::open_idle(holder, opts.idle, Path::Proxied)?
    };
    std::thread::sleep(Duration::from_secs(1));
    let loaded = agent.rss_kib()?;
    drop(conns);
    std::thread::sleep(Duration::from_secs(2));
    let after = agent.rss_kib()?;
    Ok(Rss {
        start,
        loaded,
        after,
        per_conn_kib: loaded.saturating_sub(start) as f64 / opts.idle as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn options_parse() {
        let o = Options::parse(&args(&["--rounds", "3", "--no-build"])).expect("parse");
        assert_eq!((o.rounds, o.build, o.stream_mib), (3, false, 512));
        let q = Options::parse(&args(&["--quick", "--idle", "50"])).expect("parse");
        assert_eq!((q.rounds, q.idle, q.build), (3, 50, true));
        assert!(Options::parse(&args(&["--rounds"])).is_err());
        assert!(Options::parse(&args(&["--bogus"])).is_err());
        assert_eq!(Options::parse(&[]).expect("parse"), Options::default());
    }

    #[test]
    fn order_alternates() {
        assert_eq!(order(0), [false, true]);
        assert_eq!(order(1), [true, false]);
    }

    #[test]
    fn policy_names_the_cgroup_and_addresses() {
        let p = policy("/b/enrolled", &["127.0.0.1:5".parse().expect("addr")]);
        assert!(p.contains("cgroup = \"/b/enrolled\""), "{p}");
        assert!(p.contains("addresses = [\"127.0.0.1:5\"]"), "{p}");
    }
}
