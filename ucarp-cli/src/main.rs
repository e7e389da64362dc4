//! `ucarp`: CARP failover with UCARP 1.5.2's command line.
//!
//! Exit codes: 0 after a clean shutdown, 1 for a bad command line, 2 when
//! the protocol cannot start or stops on an error.

mod logging;
mod options;
mod signals;
mod usage;

use std::net::IpAddr;
use std::process::ExitCode;
use std::time::Duration;

use carp_engine::Config;
use carp_io::{Node, NodeConfig, ScriptConfig, ScriptHooks};
use carp_proto::VirtualHostAuth;
use clap::Parser;
use log::{error, warn};
use options::{Options, RawArgs};

/// How long a script may run before it is killed.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(60);

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
    if let Err(message) = check_interface(&options) {
        eprintln!("ucarp: {message}");
        return ExitCode::from(1);
    }
    if options.daemonize {
        if let Err(e) = carp_io::daemon::daemonize() {
            eprintln!("ucarp: cannot daemonize: {e}");
            return ExitCode::from(2);
        }
    }
    logging::Logger::install(options.debug, options.facility, !options.daemonize);
    for warning in &options.warnings {
        warn!("{warning}");
    }
    match run(&options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e}");
            ExitCode::from(2)
        }
    }
}

/// The interface must exist; a source address not on it is only a warning
/// (it may be added later, as with UCARP).
fn check_interface(options: &Options) -> Result<(), String> {
    match carp_io::iface::InterfaceInfo::lookup(&options.interface) {
        Ok(info) => {
            if !info.ipv4.contains(&options.srcip) {
                // The logger is not installed yet: say it on stderr.
                eprintln!(
                    "[WARNING] --srcip (-s): {} is not an address of {}",
                    options.srcip, options.interface
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

fn run(options: &Options) -> Result<(), Box<dyn std::error::Error>> {
    signals::block()?;
    let auth = VirtualHostAuth::new(&options.password, options.vhid, &[IpAddr::V4(options.vip)])?;
    let mut engine = Config::new(auth, options.srcip, carp_io::random_u64())
        .with_interval(options.advbase, options.advskew)
        .with_deadratio(options.deadratio)
        .with_preempt(options.preempt);
    engine.neutral = options.neutral;
    engine.ignore_link_state = options.ignore_ifstate;
    let mut config = NodeConfig::new(&options.interface, options.vip, engine);
    config.group = options.group;
    config.broadcast = options.broadcast;
    let hooks = ScriptHooks::new(ScriptConfig {
        up: options.upscript.clone(),
        down: options.downscript.clone(),
        interface: options.interface.clone(),
        vip: options.vip_as_given.clone(),
        xparam: options.xparam.clone(),
        timeout: SCRIPT_TIMEOUT,
        vhid: options.vhid,
    });
    let node = Node::new(config, Box::new(hooks))?;
    signals::spawn(node.handle(), options.shutdown)?;
    node.run()?;
    Ok(())
}
