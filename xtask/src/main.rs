//! Project tasks, run as `cargo xtask <task>` (alias in `.cargo/config.toml`).
//!
//! xtask runs things; it does not compile eBPF (`agent/build.rs` does, with the toolchain and
//! linker that `setup` installs).
mod bench;
mod install;
mod run;
mod setup;
mod test;
mod util;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "tollgate's project tasks"
)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what building and testing need: nightly + rust-src, bpf-linker, Debian packages,
    /// bpffs. Idempotent; as root.
    Setup,
    /// Setup, then `cargo fmt --check`, `cargo clippy -D warnings` and `cargo test --workspace`
    /// (root-only integration tests included). Extra arguments go to `cargo test`.
    Test {
        /// Passed to `cargo test --workspace` as written, e.g. `config::` or `-- --nocapture`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Setup, then the agent in the foreground with `policies/` and the state in `.state/`.
    /// Extra arguments go to `tollgate agent`.
    Run {
        /// Passed to `tollgate agent`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Release build installed to /usr/local/bin, /etc/tollgate and a systemd unit.
    Install,
    /// Benchmarks. Extra arguments go to the benchmark harness.
    Bench {
        /// Passed to the benchmark harness.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().task {
        Task::Setup => setup::run(),
        // Raw, so that `cargo xtask test -- --nocapture` reaches cargo test as written (clap
        // would drop the `--`).
        Task::Test { .. } => test::run_suite(&args_after(std::env::args(), "test")),
        Task::Run { args } => run::run_agent(&args),
        Task::Install => install::install(),
        Task::Bench { args } => bench::run(&args),
    }
}

/// The arguments after the task name `task` (the first argument equal to it).
fn args_after(argv: impl IntoIterator<Item = String>, task: &str) -> Vec<String> {
    argv.into_iter()
        .skip(1)
        .skip_while(|a| a != task)
        .skip(1)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How extra arguments reach `cargo test`, as cargo hands them over after the alias's `--`.
    #[test]
    fn test_arguments_pass_through_as_written() {
        let cases: &[(&[&str], &[&str])] = &[
            (&["test"], &[]),
            (&["test", "config::"], &["config::"]),
            (&["test", "--", "--nocapture"], &["--", "--nocapture"]),
            (
                &["test", "config::", "--", "--nocapture"],
                &["config::", "--", "--nocapture"],
            ),
            (
                &["test", "-p", "tollgate", "test"],
                &["-p", "tollgate", "test"],
            ),
        ];
        for (argv, want) in cases {
            let argv: Vec<String> = std::iter::once("xtask")
                .chain(argv.iter().copied())
                .map(String::from)
                .collect();
            assert!(matches!(
                Cli::try_parse_from(&argv).expect("parses").task,
                Task::Test { .. }
            ));
            assert_eq!(args_after(argv.clone(), "test"), *want, "{argv:?}");
        }
    }

    /// `run` and `bench` arguments go through clap: a first `--` is dropped.
    #[test]
    fn run_arguments() {
        let cases: &[(&[&str], &[&str])] = &[
            (&["run"], &[]),
            (&["run", "--log-format", "json"], &["--log-format", "json"]),
            (
                &["run", "--", "--fail-mode", "open"],
                &["--fail-mode", "open"],
            ),
        ];
        for (argv, want) in cases {
            let argv = std::iter::once("xtask").chain(argv.iter().copied());
            let Task::Run { args } = Cli::try_parse_from(argv).expect("parses").task else {
                panic!("not the run task");
            };
            assert_eq!(args, *want);
        }
    }
}
