//! The `tollgate` binary: parse, load the config, dispatch to `tollgate::cli`.
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;
use tollgate::{
    cli::{self, Cli, Command, PolicyCommand, SessionsCommand},
    config::Config,
    telemetry,
};

/// mimalloc: the proxy allocates and frees small buffers, headers and records per message on
/// every worker thread; glibc's malloc took about 7% of the agent's CPU in `cargo xtask bench`.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match cli.load_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tollgate: {e}");
            return ExitCode::from(1);
        }
    };
    telemetry::init(config.log_format);
    let code = match dispatch(&cli, config) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tollgate: {}", tollgate::cli::output::error_chain(&e));
            1
        }
    };
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

fn dispatch(cli: &Cli, config: Config) -> anyhow::Result<i32> {
    let json = cli.global.json;
    // The agent runs its tasks on `workers` threads. With one (the default on 2 CPUs), a
    // current-thread runtime on the main thread: no work-stealing queues or cross-thread wake-ups
    // to pay for (measured side by side with a one-worker multi-thread runtime, `cargo xtask
    // bench`, one quick run each: tollgate's rate against the peers of its run 3-8% higher on
    // every load; CPU per request from 0.4 µs more for pgbench -S to 4.7 µs less for HTTP
    // with `Connection: close`).
    // One-shot commands need no more than one thread either.
    let runtime = match cli.command {
        Command::Agent(_) if config.workers() > 1 => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(config.workers());
            b
        }
        _ => tokio::runtime::Builder::new_current_thread(),
    }
    .enable_all()
    .build()
    .context("cannot start the async runtime")?;
    Ok(match &cli.command {
        Command::Agent(_) => {
            runtime.block_on(tollgate::agent::run(config))?;
            cli::EXIT_OK
        }
        Command::Run(args) => runtime.block_on(cli::run::run(&config, args)),
        Command::Status => runtime.block_on(cli::status::run(&config, json)),
        Command::Sessions {
            command: SessionsCommand::List(args),
        } => runtime.block_on(cli::sessions::list(&config, args, json)),
        Command::Sessions {
            command: SessionsCommand::Show { id },
        } => runtime.block_on(cli::sessions::show(&config, id, json)),
        Command::Policy {
            command: PolicyCommand::Check { dir },
        } => cli::policy::check(&config, dir.as_deref(), json),
        Command::Ca { command } => cli::ca::run(&config, command, json),
    })
}
