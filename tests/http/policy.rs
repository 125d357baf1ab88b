//! The http suite's policy, as TOML text in the format of `policies/README.md`: the `app`
//! workload and seven http targets (nginx plain, nginx TLS terminated with HTTP/2, nginx TLS
//! originated, nginx behind a target that names the wrong CA, the in-process backend, an SNI
//! pass-through and a plain target, each to an address where nothing listens), with
//! credentials from root-only files, masking of card numbers and request rules.
use std::{fmt::Write as _, net::SocketAddr, path::Path};

/// Name of the enrolled workload.
pub const WORKLOAD: &str = "app";
/// nginx, plain HTTP (`tls = "none"`): bearer token, masking, request rules.
pub const WEB: &str = "web";
/// nginx, HTTPS terminated by tollgate (`tls = "terminate"`): bearer token, masking.
pub const WEB_TLS: &str = "web-tls";
/// nginx, the task speaks plain HTTP, tollgate TLS (`tls = "originate"`): bearer token.
pub const WEB_ORIGINATE: &str = "web-originate";
/// nginx, terminated, but `ca_file` names a CA that did not sign nginx's certificate.
pub const WEB_BAD_CA: &str = "web-bad-ca";
/// The in-process backend, plain (`tls = "none"`): an `X-Api-Key` header credential.
pub const BACKEND: &str = "backend";
/// SNI pass-through (`tls = "passthrough"`) to an address where nothing listens.
pub const DEAD_PASSTHROUGH: &str = "dead-passthrough";
/// Plain HTTP (`tls = "none"`) to another address where nothing listens.
pub const DEAD_WEB: &str = "dead-web";
/// The request rule denying `/admin` on `web`.
pub const NO_ADMIN: &str = "no-admin";
/// The request rule allowing reads on `web`.
pub const WEB_READS: &str = "app-reads-web";

/// Where everything is.
#[derive(Debug, Clone)]
pub struct Spec<'a> {
    /// cgroup glob of the workload.
    pub cgroup_glob: String,
    /// nginx plain.
    pub web: SocketAddr,
    /// nginx TLS with HTTP/2.
    pub web_tls: SocketAddr,
    /// nginx TLS, for originate.
    pub web_originate: SocketAddr,
    /// nginx TLS, for the wrong CA.
    pub web_bad_ca: SocketAddr,
    /// The backend.
    pub backend: SocketAddr,
    /// An address where nothing listens.
    pub dead: SocketAddr,
    /// Another address where nothing listens.
    pub dead_web: SocketAddr,
    /// nginx's CA.
    pub ca: &'a Path,
    /// The unrelated CA.
    pub other_ca: &'a Path,
    /// The bearer token file (root-only).
    pub bearer_file: &'a Path,
    /// The API key file (root-only).
    pub api_key_file: &'a Path,
    /// The server name nginx's certificate carries.
    pub server_name: &'a str,
}

const MASKING: &str = "[target.http.masking]\n\
     json_keys = [{ key = \"*.card_number\", style = \"last4\" }]\n\
     detectors = [{ detector = \"card\", style = \"last4\" }]\n";

/// The whole policy.
pub fn policy(s: &Spec<'_>) -> String {
    let path = |p: &Path| p.display().to_string();
    let mut t = format!(
        "# http suite: the app workload and its HTTP(S) servers\n\
         [[workload]]\nname = {WORKLOAD:?}\nspiffe_id = \"spiffe://test.tollgate/{WORKLOAD}\"\n\
         mode = \"enforce\"\n[workload.selector]\ncgroup = {glob:?}\n\n",
        glob = s.cgroup_glob
    );
    let bearer = format!(
        "credential = {{ bearer_file = {:?} }}\n",
        path(s.bearer_file)
    );
    target(&mut t, WEB, s.web, "tls = \"none\"\n", &bearer, MASKING);
    target(
        &mut t,
        WEB_TLS,
        s.web_tls,
        &format!(
            "tls = \"terminate\"\nca_file = {:?}\nserver_name = {:?}\n",
            path(s.ca),
            s.server_name
        ),
        &bearer,
        MASKING,
    );
    target(
        &mut t,
        WEB_ORIGINATE,
        s.web_originate,
        &format!(
            "tls = \"originate\"\nca_file = {:?}\nserver_name = {:?}\n",
            path(s.ca),
            s.server_name
        ),
        &bearer,
        "",
    );
    target(
        &mut t,
        WEB_BAD_CA,
        s.web_bad_ca,
        &format!(
            "tls = \"terminate\"\nca_file = {:?}\nserver_name = {:?}\n",
            path(s.other_ca),
            s.server_name
        ),
        &bearer,
        "",
    );
    target(
        &mut t,
        BACKEND,
        s.backend,
        "tls = \"none\"\n",
        &format!(
            "credential = {{ header = \"X-Api-Key\", value_file = {:?} }}\n",
            path(s.api_key_file)
        ),
        "",
    );
    target(
        &mut t,
        DEAD_PASSTHROUGH,
        s.dead,
        "tls = \"passthrough\"\n",
        "",
        "",
    );
    target(&mut t, DEAD_WEB, s.dead_web, "tls = \"none\"\n", "", "");
    // web: reads allowed, /admin denied (deny wins over the allow, which matches every path).
    rule(
        &mut t,
        WEB_READS,
        WEB,
        "allow",
        "[rule.http]\nmethods = [\"GET\", \"HEAD\"]\npath_prefix = [\"/\"]\n",
    );
    rule(
        &mut t,
        NO_ADMIN,
        WEB,
        "deny",
        "[rule.http]\npaths = [\"/admin\", \"/admin/**\"]\n",
    );
    // The others: connection rules only, so every request is allowed (no-request-rules).
    for name in [
        WEB_TLS,
        WEB_ORIGINATE,
        WEB_BAD_CA,
        DEAD_PASSTHROUGH,
        DEAD_WEB,
    ] {
        rule(&mut t, &format!("app-{name}"), name, "allow", "");
    }
    rule(
        &mut t,
        "app-backend",
        BACKEND,
        "allow",
        "[rule.http]\nmethods = [\"GET\", \"POST\"]\npath_prefix = [\"/\"]\n",
    );
    t
}

fn target(
    t: &mut String,
    name: &str,
    addr: SocketAddr,
    tls: &str,
    credential: &str,
    masking: &str,
) {
    let _ = write!(
        t,
        "[[target]]\nname = {name:?}\nprotocol = \"http\"\naddresses = [\"{addr}\"]\n\
         [target.http]\n{tls}{credential}{masking}\n"
    );
}

fn rule(t: &mut String, name: &str, target: &str, action: &str, http: &str) {
    let _ = write!(
        t,
        "[[rule]]\nname = {name:?}\nworkloads = [{WORKLOAD:?}]\ntargets = [{target:?}]\n\
         action = {action:?}\n{http}\n"
    );
}
