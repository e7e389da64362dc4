//! `ucarp`: CARP failover with UCARP 1.5.2's command line.
//!
//! Exit codes: 0 after a clean shutdown, 1 for a bad command line, 2 when
//! the protocol cannot start or stops on an error. Everything that can fail
//! at start-up (options, interface, randomness, sockets) is done before
//! `--daemonize` detaches, so a failure is seen by whoever started us.

mod logging;
mod options;
mod signals;
mod usage;

use std::net::IpAddr;
use std::process::ExitCode;

use carp_io::{Node, ScriptConfig, ScriptHooks, VirtualHostSpec};
use clap::Parser;
use log::{error, warn};
use options::{Options, RawArgs};

fn main() -> ExitCode {
    let raw = match RawArgs::try_parse() {
        Ok(raw) => raw,
        Err(e) => {
            let message = e.to_string();
            let first = message.lines().next().unwrap_or("bad command line");
            let first = first.trim_start_matches("error: ");
            eprintln!("ucarp: {first} (see ucarp --help)");
            return ExitCode::from(1);
        }
    };
    if raw.help {
        print!("{}", usage::USAGE);
        return ExitCode::SUCCESS;
    }
    let options = match raw.validate() {
        Ok(options) => options,
        Err(e) => {
            eprintln!("ucarp: {e}");
            return ExitCode::from(1);
        }
    };
    if let Err(message) = check_interface(&options.vhost) {
        eprintln!("ucarp: {message}");
        return ExitCode::from(1);
    }
    // The logger queues lines from now on; its threads start after the
    // fork. Start-up errors go to stderr before daemonizing, so that
    // `ucarp -B` with a bad setup does not exit 0.
    let writers = logging::Logger::install(options.debug, options.facility, !options.daemonize);
    let (node, scripts) = match open(&options.vhost) {
        Ok(opened) => opened,
        Err(e) => {
            writers.print_pending();
            eprintln!("ucarp: {e}");
            return ExitCode::from(2);
        }
    };
    if options.daemonize {
        if let Err(e) = carp_io::daemon::daemonize() {
            eprintln!("ucarp: cannot daemonize: {e}");
            return ExitCode::from(2);
        }
    }
    // Threads start only now: after the fork, and after the stop signals
    // are blocked, so that every thread inherits the mask and only the
    // signal thread receives them.
    if let Err(e) = signals::block() {
        eprintln!("ucarp: cannot block signals: {e}");
        return ExitCode::from(2);
    }
    if let Err(e) = writers.start() {
        eprintln!("ucarp: {e}");
        return ExitCode::from(2);
    }
    for warning in &options.warnings {
        warn!("{warning}");
    }
    let code = match run(node, scripts, &options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e}");
            ExitCode::from(2)
        }
    };
    logging::Logger::flush_now();
    code
}

/// The interface must exist; a source address not on it is only a warning
/// (it may be added later, as with UCARP).
fn check_interface(vhost: &VirtualHostSpec) -> Result<(), String> {
    match carp_io::iface::InterfaceInfo::lookup(&vhost.interface) {
        Ok(info) => {
            let on_it = match vhost.source {
                IpAddr::V4(v4) => info.ipv4.contains(&v4),
                IpAddr::V6(_) => false,
            };
            if !on_it {
                // The logger is not installed yet: say it on stderr.
                eprintln!(
                    "[WARNING] --srcip (-s): {} is not an address of {}",
                    vhost.source, vhost.interface
                );
            }
            Ok(())
        }
        Err(carp_io::IoError::NoSuchInterface(name)) => Err(format!(
            "--interface (-i): no such interface {name:?} (see `ip link`)"
        )),
        Err(e) => Err(format!("--interface (-i): {e}")),
    }
}

/// Everything that can fail before the node runs, without starting a
/// thread: the node with its sockets, and the scripts it will run.
fn open(vhost: &VirtualHostSpec) -> Result<(Node, ScriptConfig), Box<dyn std::error::Error>> {
    let (config, scripts) = vhost.build(carp_io::random_u64()?)?;
    Ok((Node::open(config)?, scripts))
}

fn run(
    mut node: Node,
    scripts: ScriptConfig,
    options: &Options,
) -> Result<(), Box<dyn std::error::Error>> {
    node.set_hooks(Box::new(ScriptHooks::new(scripts)?));
    signals::spawn(node.handle(), options.shutdown)?;
    node.run()?;
    Ok(())
}
