//! The example policies in `policies/` (what `tollgate agent` runs with from the repository):
//! each file loads on its own, the directory loads as a whole, and they stay safe for a dev host.
use std::{fs, path::PathBuf};

use crate::policy::{Host, load_dir, load_str};

fn examples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../policies")
}

fn example_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(examples_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_example_file_loads_on_its_own() {
    let files = example_files();
    assert!(files.len() >= 3, "{files:?}");
    for path in files {
        let text = fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with('#'),
            "{} must open with a comment saying what it is for",
            path.display()
        );
        if let Err(e) = load_str(&path, &text, None) {
            panic!("{} does not load:\n{e}", path.display());
        }
    }
}

#[test]
fn example_directory_loads_and_stays_on_loopback() {
    let p = load_dir(&examples_dir(), None).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        p.workload("etl").is_some(),
        "`tollgate run --workload etl` needs it"
    );
    assert!(p.cgroup_enrolled("/tollgate.slice/run-etl-1", None));
    assert!(
        p.workloads()
            .iter()
            .any(|w| w.mode == crate::policy::Mode::Audit)
    );
    for t in p.targets() {
        for a in &t.addresses {
            let loopback = match &a.host {
                Host::Ip(ip) => ip.is_loopback(),
                Host::Net(n) => n.network().is_loopback() && n.broadcast().is_loopback(),
                Host::Name(n) => n == "localhost",
            };
            assert!(loopback, "target {} address {a} is not loopback", t.name);
        }
    }
}
