//! `ucarp status | step-down | demote | undemote | reload`: the client of
//! the control socket (see [`crate::control`]).
//!
//! ```text
//! ucarp status [--json] [--socket PATH]
//! ucarp step-down [VHID | IFACE:VHID] [--socket PATH]
//! ucarp demote (VHID | IFACE:VHID | --group NAME) [N] [--socket PATH]
//! ucarp undemote (VHID | IFACE:VHID | --group NAME) [--socket PATH]
//! ucarp reload [--socket PATH]
//! ```
//!
//! Without `--socket`, every control socket under the runtime directory is
//! found; `status` asks them all, the other commands need exactly one.
//! Exit codes: 0 done, 1 bad command line or refused request, 3 no
//! daemon answered.

use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::Value;

use crate::control;
use crate::status_json;

/// The words that make `ucarp` a client instead of a daemon.
pub const COMMANDS: [&str; 5] = ["status", "step-down", "demote", "undemote", "reload"];

const USAGE: &str = "usage: ucarp status [--json] [--socket PATH]
       ucarp step-down [VHID | IFACE:VHID] [--socket PATH]
       ucarp demote (VHID | IFACE:VHID | --group NAME) [N] [--socket PATH]
       ucarp undemote (VHID | IFACE:VHID | --group NAME) [--socket PATH]
       ucarp reload [--socket PATH]";

/// A client command line, checked.
#[derive(Debug, PartialEq, Eq)]
struct Request {
    /// The request line sent.
    line: String,
    json: bool,
    socket: Option<PathBuf>,
}

fn parse(args: &[String]) -> Result<Request, String> {
    let (command, rest) = args.split_first().ok_or(USAGE)?;
    let mut json = false;
    let mut socket = None;
    let mut group = None;
    let mut words = Vec::new();
    let mut rest = rest.iter();
    while let Some(arg) = rest.next() {
        let mut value = |name: &str| {
            rest.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--json" if command == "status" => json = true,
            "--socket" => socket = Some(PathBuf::from(value("--socket")?)),
            "--group" if command.contains("demote") => group = Some(value("--group")?),
            "-h" | "--help" => return Err(USAGE.into()),
            other if other.starts_with("--socket=") => {
                socket = Some(PathBuf::from(&other["--socket=".len()..]))
            }
            other if other.starts_with('-') && other.parse::<i64>().is_err() => {
                return Err(format!("{command}: unknown option {other}\n{USAGE}"))
            }
            other => words.push(other.to_string()),
        }
    }
    let line = match (command.as_str(), group, words.as_slice()) {
        ("status", None, []) | ("reload", None, []) | ("step-down", None, []) => command.clone(),
        ("step-down", None, [target]) => format!("step-down {target}"),
        ("demote", Some(g), []) => format!("demote-group {g}"),
        ("demote", Some(g), [n]) => format!("demote-group {g} {n}"),
        ("demote", None, [target]) => format!("demote {target}"),
        ("demote", None, [target, n]) => format!("demote {target} {n}"),
        ("undemote", Some(g), []) => format!("undemote-group {g}"),
        ("undemote", None, [target]) => format!("undemote {target}"),
        _ => return Err(format!("{command}: wrong arguments\n{USAGE}")),
    };
    Ok(Request { line, json, socket })
}

/// Runs a client command; `args` starts with the command word.
pub fn main(args: &[String]) -> ExitCode {
    let request = match parse(args) {
        Ok(request) => request,
        Err(message) => {
            eprintln!("ucarp: {message}");
            return ExitCode::from(1);
        }
    };
    let sockets = match &request.socket {
        Some(path) => vec![path.clone()],
        None => control::find_sockets(&control::default_dir()),
    };
    match sockets.as_slice() {
        [] => {
            eprintln!(
                "ucarp: ucarp is not running (no control socket in {})",
                control::default_dir().display()
            );
            return ExitCode::from(3);
        }
        [_] => {}
        several if request.line != "status" => {
            let names: Vec<String> = several.iter().map(|p| p.display().to_string()).collect();
            eprintln!(
                "ucarp: several daemons run here; say which with --socket: {}",
                names.join(", ")
            );
            return ExitCode::from(1);
        }
        _ => {}
    }
    let mut code = ExitCode::SUCCESS;
    let mut replies = Vec::new();
    for path in &sockets {
        match control::request(path, &request.line) {
            Ok(reply) if reply["ok"] == Value::Bool(true) => replies.push((path, reply)),
            Ok(reply) => {
                eprintln!(
                    "ucarp: {}",
                    reply["error"].as_str().unwrap_or("request refused")
                );
                code = ExitCode::from(1);
            }
            Err(message) => {
                eprintln!("ucarp: {message}");
                code = ExitCode::from(3);
            }
        }
    }
    for (path, reply) in replies {
        if request.line == "status" {
            if request.json {
                println!("{}", reply["status"]);
            } else {
                if sockets.len() > 1 {
                    println!("== {}", path.display());
                }
                print!("{}", status_json::text(&reply["status"]));
            }
        } else if let Some(summary) = reply["summary"].as_str() {
            println!("{summary}");
        }
    }
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(args: &[&str]) -> Result<String, String> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        parse(&args).map(|r| r.line)
    }

    #[test]
    fn command_lines_become_request_lines() {
        assert_eq!(line(&["status", "--json"]).unwrap(), "status");
        assert_eq!(line(&["step-down"]).unwrap(), "step-down");
        assert_eq!(line(&["step-down", "eth0:7"]).unwrap(), "step-down eth0:7");
        assert_eq!(line(&["demote", "7"]).unwrap(), "demote 7");
        assert_eq!(line(&["demote", "7", "50"]).unwrap(), "demote 7 50");
        assert_eq!(
            line(&["demote", "--group", "db", "20"]).unwrap(),
            "demote-group db 20"
        );
        assert_eq!(
            line(&["undemote", "--group", "db"]).unwrap(),
            "undemote-group db"
        );
        assert_eq!(line(&["undemote", "eth1:3"]).unwrap(), "undemote eth1:3");
        assert_eq!(line(&["reload", "--socket", "/x.sock"]).unwrap(), "reload");
    }

    #[test]
    fn bad_client_command_lines_are_refused() {
        assert!(line(&["status", "7"]).is_err());
        assert!(line(&["demote"]).is_err());
        assert!(line(&["undemote", "7", "5"]).is_err());
        assert!(line(&["reload", "--json"])
            .unwrap_err()
            .contains("unknown option --json"));
        assert!(line(&["status", "--socket"])
            .unwrap_err()
            .contains("needs a value"));
    }
}
