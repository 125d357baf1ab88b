//! Root suite: `tollgate run --workload NAME -- cmd` runs `cmd` in a fresh cgroup of that
//! workload, intercepts it, and passes its exit code through. Needs root, cgroup v2, bpffs,
//! curl.
mod harness;

use std::process::{Command, Stdio};

use harness::{
    Agent, FailMode, Need, PeerServer, PolicyText, addr,
    client::{CURL_ARGS, run_curl},
    setup,
};

#[test]
fn tollgate_run_intercepts_its_child_and_passes_the_exit_code_through() {
    let test = "tollgate_run_intercepts_its_child_and_passes_the_exit_code_through";
    let Some(env) = setup(test, &[Need::Curl]) else {
        return;
    };
    let web = PeerServer::start("127.0.0.1:0");
    let denied = PeerServer::start("127.0.0.1:0");
    let mut agent = Agent::new(&env, "run", FailMode::Open);
    let runs = format!("{}/run-runner-*", agent.run_cgroup);
    let policy = PolicyText::new()
        .workload("runner", &runs, false)
        .target("web", &[addr(web.addr)])
        .rule("runner-web", &["runner"], &["web"], "allow");
    agent.write_policy("test.toml", policy.text());
    agent.start();

    let tollgate_run = |args: &[&str]| {
        let mut cmd = Command::new(&env.tollgate);
        cmd.arg("run")
            .arg("--config")
            .arg(&agent.config)
            .args(["--workload", "runner", "--"])
            .args(args)
            .stdin(Stdio::null());
        cmd
    };

    // Exit codes pass through.
    for code in [0, 3, 42] {
        let out = tollgate_run(&["sh", "-c", &format!("exit {code}")])
            .output()
            .expect("tollgate run");
        assert_eq!(
            out.status.code(),
            Some(code),
            "tollgate run exit code: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // The child is intercepted and recorded as the workload.
    let mut cmd = tollgate_run(&["curl"]);
    cmd.args(CURL_ARGS).arg(web.url());
    let r = run_curl(cmd, None);
    assert!(r.via_proxy(), "tollgate run child not intercepted: {r:?}");
    assert_eq!(r.remote, Some(web.addr));
    let s = agent.wait_ended("tollgate run curl", |s| {
        s.workload() == "runner" && s.dst() == Some(web.addr)
    });
    assert_eq!((s.decision(), s.rule()), ("allow", "runner-web"), "{}", s.0);
    assert!(s.bytes_down() > 0, "{}", s.0);

    // A refused connection's curl exit code (7, 52 or 56) comes back unchanged.
    let mut cmd = tollgate_run(&["curl"]);
    cmd.args(CURL_ARGS).arg(denied.url());
    let r = run_curl(cmd, None);
    assert!(r.refused(), "denied destination under tollgate run: {r:?}");
    assert_eq!(denied.hits(), 0);
    let s = agent.wait_ended("tollgate run denied curl", |s| {
        s.workload() == "runner" && s.dst() == Some(denied.addr)
    });
    assert_eq!(
        (s.decision(), s.rule()),
        ("deny", "default-deny"),
        "{}",
        s.0
    );

    // Each run gets its own cgroup below run_cgroup, removed after the child exits.
    let run_dir = agent.abs(&agent.run_cgroup);
    let leftovers = || -> Vec<std::ffi::OsString> {
        std::fs::read_dir(&run_dir)
            .expect("run cgroup")
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.file_name())
            .collect()
    };
    let clean = harness::poll(std::time::Duration::from_secs(5), || {
        leftovers().is_empty().then_some(())
    });
    assert!(
        clean.is_some(),
        "run cgroups left behind: {:?}",
        leftovers()
    );
}

/// A run's binding lasts as long as its cgroup: a process the command left behind, and a run
/// under way while the agent restarts, stay the workload's (through the proxy, recorded), even
/// where no cgroup glob of the policy matches the run cgroup.
#[test]
fn a_run_stays_bound_after_its_command_exits_and_across_an_agent_restart() {
    let test = "a_run_stays_bound_after_its_command_exits_and_across_an_agent_restart";
    let Some(env) = setup(test, &[Need::Curl]) else {
        return;
    };
    let web = PeerServer::start("127.0.0.1:0");
    let mut agent = Agent::new(&env, "runbound", FailMode::Open);
    let policy = PolicyText::new()
        .workload("bound", "/no-such-slice/*", false)
        .target("web", &[addr(web.addr)])
        .rule("bound-web", &["bound"], &["web"], "allow");
    agent.write_policy("test.toml", policy.text());
    agent.start();

    // `sh -c SCRIPT sh curl ARGS URL`: SCRIPT runs curl as "$@".
    let run = |script: &str| {
        let mut cmd = Command::new(&env.tollgate);
        cmd.arg("run")
            .arg("--config")
            .arg(&agent.config)
            .args([
                "--workload",
                "bound",
                "--",
                "sh",
                "-c",
                script,
                "sh",
                "curl",
            ])
            .args(CURL_ARGS)
            .arg(web.url())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    };
    let recorded = |agent: &Agent, what: &str, pid_before: usize| {
        harness::poll(std::time::Duration::from_secs(10), || {
            let n = agent
                .sessions()
                .iter()
                .filter(|s| s.workload() == "bound" && s.dst() == Some(web.addr))
                .count();
            (n > pid_before).then_some(n)
        })
        .unwrap_or_else(|| panic!("{what}: not recorded\n{}", agent.sessions_text()))
    };

    // The command exits at once; the curl it left behind connects a second later, after
    // `tollgate run` has released its cgroup.
    let out = run("(sleep 1; exec \"$@\") & exit 0")
        .output()
        .expect("tollgate run");
    assert!(out.status.success(), "{out:?}");
    let seen = recorded(&agent, "the leftover curl", 0);
    assert_eq!(web.hits(), 1);

    // A run under way while the agent restarts: its curl comes after the new agent is up.
    let child = run("sleep 3; exec \"$@\"").spawn().expect("tollgate run");
    std::thread::sleep(std::time::Duration::from_millis(500));
    agent.terminate();
    agent.start();
    let out = child.wait_with_output().expect("tollgate run");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    recorded(&agent, "the curl of a run across a restart", seen);
    assert_eq!(web.hits(), 2);
}
