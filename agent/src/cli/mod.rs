//! The `tollgate` command line: argument parsing (clap derive) and one module per subcommand.
//! Each `run` returns the process exit code; `main` only parses, loads the config and dispatches.
pub mod ca;
pub mod output;
pub mod policy;
pub mod run;
pub mod sessions;
pub mod status;

use std::{ffi::OsString, path::PathBuf};

use clap::{Args, Parser, Subcommand};

use crate::config::{Config, ConfigError, DEFAULT_CONFIG};

/// Success.
pub const EXIT_OK: i32 = 0;
/// The command ran and failed (not ready, not found, invalid policy, refused request).
pub const EXIT_FAILURE: i32 = 1;
/// No agent answered on the admin socket.
pub const EXIT_NO_AGENT: i32 = 2;

/// Transparent, least-privilege, audited network access for the tasks of a Linux host.
#[derive(Debug, Parser)]
#[command(name = "tollgate", version, propagate_version = true)]
pub struct Cli {
    /// Options of every subcommand.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options accepted by every subcommand.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Main config file; a missing default file means built-in defaults
    /// [default: /etc/tollgate/tollgate.toml]
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// State directory (admin socket, audit database); overrides the config.
    #[arg(long, global = true, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Machine-readable output: JSON (JSON lines for lists).
    #[arg(long, global = true)]
    pub json: bool,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the agent (as root): attach the eBPF programs, proxy, audit, serve the admin socket.
    Agent(AgentArgs),
    /// Run a command enrolled as a workload: its connections go through the agent.
    Run(RunArgs),
    /// Show the agent's state; exit 0 when ready, 1 when not, 2 when no agent answers.
    Status,
    /// Query the audit log of sessions (connections).
    Sessions {
        /// Sessions subcommand.
        #[command(subcommand)]
        command: SessionsCommand,
    },
    /// Policy tools.
    Policy {
        /// Policy subcommand.
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// The local CA: put it in the host's trust store, take it out, or print it.
    #[command(long_about = ca::LONG_ABOUT)]
    Ca {
        /// CA subcommand.
        #[command(subcommand)]
        command: ca::CaCommand,
    },
}

/// `tollgate agent`.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// Policy directory; overrides the config.
    #[arg(long, value_name = "DIR")]
    pub policy_dir: Option<PathBuf>,
}

/// `tollgate run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Workload (from policy) the command runs as.
    #[arg(long, short = 'w', value_name = "NAME")]
    pub workload: String,
    /// The command and its arguments (put `--` before it if it starts with `-`).
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    pub command: Vec<OsString>,
}

/// `tollgate sessions …`.
#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    /// List sessions, newest first.
    List(ListArgs),
    /// Show one session.
    Show {
        /// Session id (from `sessions list`).
        id: String,
    },
}

/// `tollgate sessions list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only sessions of this workload.
    #[arg(long, value_name = "W")]
    pub workload: Option<String>,
    /// Only sessions started since T: RFC 3339 (2024-05-01T12:00:00Z) or a duration ago (1h).
    #[arg(long, value_name = "T")]
    pub since: Option<String>,
    /// Only sessions started before T: RFC 3339 or a duration ago.
    #[arg(long, value_name = "T")]
    pub until: Option<String>,
    /// At most N sessions.
    #[arg(long, value_name = "N")]
    pub limit: Option<u32>,
}

/// `tollgate policy …`.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Validate a policy directory without an agent; exit 1 on errors.
    Check {
        /// Policy directory [default: the config's policy_dir].
        dir: Option<PathBuf>,
    },
}

impl Cli {
    /// The config named by `--config` (the default file may be missing), with `--state-dir`
    /// and `agent --policy-dir` applied.
    pub fn load_config(&self) -> Result<Config, ConfigError> {
        let mut config = match &self.global.config {
            Some(path) => Config::load(path, true)?,
            None => Config::load(DEFAULT_CONFIG.as_ref(), false)?,
        };
        if let Some(dir) = &self.global.state_dir {
            config.state_dir = dir.clone();
        }
        if let Command::Agent(AgentArgs {
            policy_dir: Some(dir),
        }) = &self.command
        {
            config.policy_dir = dir.clone();
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests;
