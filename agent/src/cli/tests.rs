//! Argument parsing and config loading.
use std::path::Path;

use clap::Parser;

use super::*;

fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
    Cli::try_parse_from(std::iter::once("tollgate").chain(args.iter().copied()))
}

fn run_args(cli: &Cli) -> (&str, Vec<&str>) {
    match &cli.command {
        Command::Run(r) => (
            r.workload.as_str(),
            r.command.iter().map(|a| a.to_str().unwrap()).collect(),
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn run_takes_the_command_verbatim() {
    // (argv, workload, command)
    let cases: [(&[&str], &str, &[&str]); 6] = [
        (&["run", "--workload", "ci", "make"], "ci", &["make"]),
        (
            &["run", "-w", "ci", "--", "ls", "-la"],
            "ci",
            &["ls", "-la"],
        ),
        (
            &[
                "run",
                "--workload=ci",
                "curl",
                "--json",
                "x",
                "--config",
                "y",
            ],
            "ci",
            &["curl", "--json", "x", "--config", "y"],
        ),
        (&["run", "-w", "ci", "--", "--weird"], "ci", &["--weird"]),
        (
            &["--json", "run", "-w", "ci", "sh", "-c", "exit 3"],
            "ci",
            &["sh", "-c", "exit 3"],
        ),
        (
            &["run", "-w", "ci", "--", "env", "--", "-x"],
            "ci",
            &["env", "--", "-x"],
        ),
    ];
    for (argv, workload, command) in cases {
        let cli = parse(argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
        let (w, c) = run_args(&cli);
        assert_eq!((w, c.as_slice()), (workload, command), "{argv:?}");
    }
    let cli = parse(&["--json", "run", "-w", "ci", "true"]).unwrap();
    assert!(cli.global.json);
    let cli = parse(&["run", "-w", "ci", "curl", "--json"]).unwrap();
    assert!(!cli.global.json, "--json after CMD belongs to CMD");
}

#[test]
fn invalid_command_lines_are_rejected() {
    for argv in [
        &["run", "--workload", "ci"][..],
        &["run", "make"],
        &["sessions"],
        &["sessions", "show"],
        &["sessions", "list", "--limit", "many"],
        &["status", "extra"],
        &["policy"],
        &["bogus"],
        &[],
    ] {
        assert!(parse(argv).is_err(), "{argv:?} parsed");
    }
}

#[test]
fn global_flags_go_anywhere_before_the_command() {
    let cli = parse(&[
        "sessions",
        "list",
        "--json",
        "--state-dir",
        "/s",
        "--since",
        "1h",
        "--workload",
        "w",
        "--limit",
        "5",
    ])
    .unwrap();
    assert!(cli.global.json);
    assert_eq!(cli.global.state_dir.as_deref(), Some(Path::new("/s")));
    let Command::Sessions {
        command: SessionsCommand::List(l),
    } = &cli.command
    else {
        panic!("{:?}", cli.command)
    };
    assert_eq!(l.since.as_deref(), Some("1h"));
    assert_eq!(l.until, None);
    assert_eq!(l.workload.as_deref(), Some("w"));
    assert_eq!(l.limit, Some(5));

    let cli = parse(&["--config", "/c.toml", "status", "--json"]).unwrap();
    assert_eq!(cli.global.config.as_deref(), Some(Path::new("/c.toml")));
    assert!(cli.global.json);
    assert!(matches!(cli.command, Command::Status));

    let cli = parse(&["sessions", "show", "0190-abc", "--json"]).unwrap();
    assert!(matches!(
        &cli.command,
        Command::Sessions { command: SessionsCommand::Show { id } } if id == "0190-abc"
    ));

    let cli = parse(&["policy", "check"]).unwrap();
    assert!(matches!(
        cli.command,
        Command::Policy {
            command: PolicyCommand::Check { dir: None }
        }
    ));
    let cli = parse(&["policy", "check", "/p"]).unwrap();
    assert!(matches!(
        &cli.command,
        Command::Policy { command: PolicyCommand::Check { dir: Some(d) } } if d == Path::new("/p")
    ));
}

#[test]
fn config_loading_applies_overrides() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("tollgate.toml");
    std::fs::write(
        &file,
        "state_dir = \"/from-file\"\npolicy_dir = \"/p-file\"\n",
    )
    .unwrap();
    let f = file.to_str().unwrap();

    let c = parse(&["--config", f, "status"])
        .unwrap()
        .load_config()
        .unwrap();
    assert_eq!(c.state_dir, Path::new("/from-file"));
    assert_eq!(c.admin_socket(), Path::new("/from-file/admin.sock"));

    let c = parse(&["--config", f, "--state-dir", "/flag", "status"])
        .unwrap()
        .load_config()
        .unwrap();
    assert_eq!(c.state_dir, Path::new("/flag"));

    let c = parse(&["--config", f, "agent", "--policy-dir", "/p-flag"])
        .unwrap()
        .load_config()
        .unwrap();
    assert_eq!(c.policy_dir, Path::new("/p-flag"));
    let c = parse(&["--config", f, "agent"])
        .unwrap()
        .load_config()
        .unwrap();
    assert_eq!(c.policy_dir, Path::new("/p-file"));

    // An explicit file must exist.
    let missing = tmp.path().join("missing.toml");
    let cli = parse(&["--config", missing.to_str().unwrap(), "status"]).unwrap();
    assert!(cli.load_config().is_err());
}

#[test]
fn an_error_chain_names_each_cause_once() {
    #[derive(Debug, thiserror::Error)]
    #[error("cannot migrate audit database /x.db: {0}")]
    struct Outer(#[source] std::io::Error);
    let inner = std::io::Error::other("migration 4 was previously applied but has been modified");
    let e = anyhow::Error::new(Outer(inner)).context("audit store");
    assert_eq!(
        super::output::error_chain(&e),
        "audit store: cannot migrate audit database /x.db: migration 4 was previously applied \
         but has been modified"
    );
    let plain = anyhow::anyhow!("no cause");
    assert_eq!(super::output::error_chain(&plain), "no cause");
}
