//! The stdio MCP server to run per session (`MCP_UPSTREAM_COMMAND`), and how a child is started:
//! no shell, its own process group (so `npx` and the server it starts end together), and an
//! environment holding only what it needs plus who the caller is.

use std::process::Stdio;

use mcp_oauth_domain::validation::ValidatedToken;
use process_wrap::tokio::{CommandWrap, ProcessGroup};
use rmcp::transport::TokioChildProcess;
use tokio::process::ChildStderr;

/// Variables a child inherits from this process: enough to find programs and a home for
/// their caches, never this server's secrets.
const INHERITED_ENV: [&str; 7] = ["PATH", "HOME", "USER", "LANG", "LC_ALL", "TMPDIR", "TZ"];

pub const SUBJECT_ENV: &str = "MCP_SUBJECT";
pub const CLIENT_ID_ENV: &str = "MCP_CLIENT_ID";
pub const SCOPE_ENV: &str = "MCP_SCOPE";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamCommand {
    pub program: String,
    pub args: Vec<String>,
    /// Set for the child on top of the inherited variables (`MCP_UPSTREAM_ENV`).
    pub env: Vec<(String, String)>,
}

impl UpstreamCommand {
    /// `line` is split like a shell would split words (quotes, backslashes) but never run by
    /// one; `extra_args` (a JSON array) come after it unsplit; `env` is `KEY=VALUE,KEY=VALUE`.
    pub fn parse(line: &str, extra_args: Option<&str>, env: &str) -> Result<Self, String> {
        let mut words = shell_words::split(line).map_err(|e| format!("MCP_UPSTREAM_COMMAND: {e}"))?;
        if words.is_empty() {
            return Err("MCP_UPSTREAM_COMMAND names no program".into());
        }
        if let Some(raw) = extra_args.filter(|a| !a.trim().is_empty()) {
            let extra: Vec<String> =
                serde_json::from_str(raw).map_err(|_| "MCP_UPSTREAM_ARGS must be a JSON array of strings".to_owned())?;
            words.extend(extra);
        }
        let mut pairs = Vec::new();
        for entry in env.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (key, value) = entry.split_once('=').ok_or_else(|| format!("MCP_UPSTREAM_ENV: `{entry}` is not KEY=VALUE"))?;
            let key = key.trim();
            if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("MCP_UPSTREAM_ENV: `{key}` is not a variable name"));
            }
            if [SUBJECT_ENV, CLIENT_ID_ENV, SCOPE_ENV].contains(&key) {
                return Err(format!("MCP_UPSTREAM_ENV: `{key}` is set by this server for each caller"));
            }
            pairs.push((key.to_owned(), value.to_owned()));
        }
        let program = words.remove(0);
        Ok(Self { program, args: words, env: pairs })
    }

    /// Starts one child for `caller`, with stdin and stdout for MCP and stderr for the log.
    pub(super) fn spawn(&self, caller: &ValidatedToken) -> std::io::Result<(TokioChildProcess, Option<ChildStderr>)> {
        let mut command = CommandWrap::with_new(&self.program, |command| {
            command.args(&self.args).env_clear();
            for name in INHERITED_ENV {
                if let Some(value) = std::env::var_os(name) {
                    command.env(name, value);
                }
            }
            command
                .envs(self.env.iter().map(|(k, v)| (k, v)))
                .env(SUBJECT_ENV, &caller.subject)
                .env(CLIENT_ID_ENV, &caller.client_id)
                .env(SCOPE_ENV, caller.scope.to_string());
        });
        command.wrap(ProcessGroup::leader());
        TokioChildProcess::builder(command).stderr(Stdio::piped()).spawn()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_line_is_split_without_a_shell_and_extended_by_json_arguments() {
        let command = UpstreamCommand::parse("npx -y '@scope/server one'", Some(r#"["--flag", "a b"]"#), "A=1, B_2=x=y").unwrap();
        assert_eq!(command.program, "npx");
        assert_eq!(command.args, ["-y", "@scope/server one", "--flag", "a b"]);
        assert_eq!(command.env, [("A".to_owned(), "1".to_owned()), ("B_2".to_owned(), "x=y".to_owned())]);
        assert!(UpstreamCommand::parse("  ", None, "").is_err());
        assert!(UpstreamCommand::parse("x 'unclosed", None, "").is_err());
        assert!(UpstreamCommand::parse("x", Some("--flag"), "").is_err(), "arguments are a JSON array");
        assert!(UpstreamCommand::parse("x", None, "NOVALUE").is_err());
        assert!(UpstreamCommand::parse("x", None, "MCP_SUBJECT=admin").is_err(), "the caller's identity cannot be forged");
    }
}
