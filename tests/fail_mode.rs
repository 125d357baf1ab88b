//! Root suite: what enrolled tasks get while no agent runs. `fail_mode = "closed"` keeps the
//! programs pinned and refuses their connections until an agent starts again;
//! `fail_mode = "open"` detaches and lets them go direct. Needs root, cgroup v2, bpffs, curl.
mod harness;

use harness::{Agent, FailMode, Need, PeerServer, PolicyText, addr, cgroup, curl, setup};

fn policy(agent: &Agent, web: &PeerServer) -> String {
    PolicyText::new()
        .workload("client", &agent.cgroup_path("client"), false)
        .target("web", &[addr(web.addr)])
        .rule("client-web", &["client"], &["web"], "allow")
        .text()
        .to_owned()
}

fn pins(agent: &Agent) -> Vec<String> {
    std::fs::read_dir(&agent.pin_dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn fail_closed_refuses_enrolled_connections_until_an_agent_is_back() {
    let test = "fail_closed_refuses_enrolled_connections_until_an_agent_is_back";
    let Some(env) = setup(test, &[Need::Curl]) else {
        return;
    };
    let web = PeerServer::start("127.0.0.1:0");
    let mut agent = Agent::new(&env, "closed", FailMode::Closed);
    let client = agent.cgroup_dir("client");
    cgroup::mkdir(&client);
    agent.write_policy("test.toml", &policy(&agent, &web));
    agent.start();
    let r = curl(Some(&client), &web.url());
    assert!(r.via_proxy(), "before stop: {r:?}");

    let status = agent.terminate();
    assert!(
        status.success(),
        "agent exit on SIGTERM: {status}\n{}",
        agent.log_tail()
    );
    assert!(
        !pins(&agent).is_empty(),
        "fail closed keeps pins in {}",
        agent.pin_dir.display()
    );

    let hits = web.hits();
    let r = curl(Some(&client), &web.url());
    assert_eq!(
        r.code, 7,
        "enrolled connection with the agent down must be refused: {r:?}"
    );
    // A cgroup the agent never saw is refused too (never direct while unclassified).
    let fresh = agent.cgroup_dir("fresh");
    cgroup::mkdir(&fresh);
    let r = curl(Some(&fresh), &web.url());
    assert_eq!(
        r.code, 7,
        "new cgroup with the agent down must be refused: {r:?}"
    );
    assert_eq!(
        web.hits(),
        hits,
        "nothing reached the server while the agent was down"
    );
    // Outside the attach cgroup nothing changes.
    let r = curl(None, &web.url());
    assert!(r.direct(), "outside the attach cgroup: {r:?}");

    // The next agent takes over the pinned programs.
    agent.start();
    let r = curl(Some(&client), &web.url());
    assert!(r.via_proxy(), "after restart: {r:?}");
    agent.wait_ended("curl after restart", |s| s.pid() == Some(r.pid));
}

#[test]
fn fail_open_lets_enrolled_connections_go_direct_while_no_agent_runs() {
    let test = "fail_open_lets_enrolled_connections_go_direct_while_no_agent_runs";
    let Some(env) = setup(test, &[Need::Curl]) else {
        return;
    };
    let web = PeerServer::start("127.0.0.1:0");
    let mut agent = Agent::new(&env, "open", FailMode::Open);
    let client = agent.cgroup_dir("client");
    cgroup::mkdir(&client);
    agent.write_policy("test.toml", &policy(&agent, &web));
    agent.start();
    let r = curl(Some(&client), &web.url());
    assert!(r.via_proxy(), "before stop: {r:?}");

    let status = agent.terminate();
    assert!(
        status.success(),
        "agent exit on SIGTERM: {status}\n{}",
        agent.log_tail()
    );
    let r = curl(Some(&client), &web.url());
    assert!(
        r.direct(),
        "fail open: enrolled task goes direct while no agent runs: {r:?}"
    );

    agent.start();
    let r = curl(Some(&client), &web.url());
    assert!(r.via_proxy(), "intercepted again after restart: {r:?}");
}
