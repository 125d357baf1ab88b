//! `tollgate policy check`: validate a policy directory without an agent.
use std::path::Path;

use serde_json::json;

use crate::{
    cli::{EXIT_FAILURE, EXIT_OK, output},
    config::Config,
    policy::{self, Policy, PolicyErrors},
};

/// Loads `dir` (the config's policy_dir by default) and reports; exit 1 on errors.
pub fn check(config: &Config, dir: Option<&Path>, json: bool) -> i32 {
    let dir = dir.unwrap_or(&config.policy_dir);
    let result = policy::load_dir(dir, config.trust_domain.as_deref());
    let (text, code) = report(dir, &result, json);
    if code == EXIT_OK || json {
        output::emit_or_fail("policy check", &text, code)
    } else {
        eprint!("{text}");
        code
    }
}

/// What to print and the exit code.
pub fn report(dir: &Path, result: &Result<Policy, PolicyErrors>, json: bool) -> (String, i32) {
    match (result, json) {
        (Ok(p), false) => {
            let names: Vec<&str> = p.workloads().iter().map(|w| w.name.as_str()).collect();
            let text = format!(
                "ok: {} workloads{}, {} targets, {} rules in {} (fingerprint {})\n",
                names.len(),
                if names.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", names.join(", "))
                },
                p.targets().len(),
                p.rules().len(),
                dir.display(),
                p.fingerprint()
            );
            (text, EXIT_OK)
        }
        (Ok(p), true) => {
            let names: Vec<&str> = p.workloads().iter().map(|w| w.name.as_str()).collect();
            let value = json!({
                "ok": true,
                "dir": dir.display().to_string(),
                "workloads": names,
                "targets": p.targets().len(),
                "rules": p.rules().len(),
                "fingerprint": p.fingerprint(),
            });
            (format!("{value}\n"), EXIT_OK)
        }
        (Err(errors), false) => (format!("{errors}\n"), EXIT_FAILURE),
        (Err(errors), true) => {
            let lines: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
            let value = json!({"ok": false, "dir": dir.display().to_string(), "errors": lines});
            (format!("{value}\n"), EXIT_FAILURE)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn examples() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies")
    }

    #[test]
    fn the_example_policies_check_ok() {
        let dir = examples();
        let result = policy::load_dir(&dir, None);
        let (text, code) = report(&dir, &result, false);
        assert_eq!(code, EXIT_OK, "{text}");
        assert!(text.starts_with("ok: "), "{text}");
        assert!(text.contains("(fingerprint "), "{text}");

        let (line, code) = report(&dir, &result, true);
        assert_eq!(code, EXIT_OK);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["ok"], true);
        let n = v["workloads"].as_array().unwrap().len();
        assert!(n > 0, "{v}");
        assert!(text.starts_with(&format!("ok: {n} workloads (")), "{text}");
    }

    #[test]
    fn errors_are_listed_one_per_line_with_exit_1() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.toml"), "this is = not [valid\n").unwrap();
        std::fs::write(dir.path().join("b.toml"), "[[bogus]]\nx = 1\n").unwrap();
        let result = policy::load_dir(dir.path(), None);
        let (text, code) = report(dir.path(), &result, false);
        assert_eq!(code, EXIT_FAILURE);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines.len() >= 2, "{text}");
        assert!(lines[0].contains("a.toml:1:"), "{text}");
        assert!(text.contains("b.toml:"), "{text}");

        let (line, code) = report(dir.path(), &result, true);
        assert_eq!(code, EXIT_FAILURE);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["ok"], false);
        assert_eq!(v["errors"].as_array().unwrap().len(), lines.len());
    }

    #[test]
    fn a_missing_directory_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let config = Config {
            policy_dir: missing.clone(),
            ..Config::default()
        };
        assert_eq!(check(&config, None, false), EXIT_FAILURE);
        assert_eq!(check(&config, Some(&examples()), false), EXIT_OK);
    }
}
