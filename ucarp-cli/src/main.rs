//! `ucarp`: CARP failover with UCARP 1.5.2's command line, or any number of
//! virtual hosts from a configuration file (`--config`, ucarp.toml(5)).
//!
//! Exit codes: 0 after a clean shutdown (and for a good `--check-config`),
//! 1 for a bad command line or configuration file, 2 when the protocol
//! cannot start or stops on an error. Everything that can fail at start-up
//! (options, file, interfaces, randomness, sockets) is done before
//! `--daemonize` detaches, so a failure is seen by whoever started us.

mod config;
mod control;
mod ctl;
mod event_fifo;
mod logging;
mod metrics;
mod notify;
mod options;
mod reload;
mod signals;
mod status_json;
mod usage;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use carp_io::iface::InterfaceInfo;
use carp_io::{
    NoHooks, Runtime, RuntimeConfig, ScriptConfig, ScriptHooks, VirtualHostId, VirtualHostSpec,
};
use clap::Parser;
use std::sync::{Arc, Mutex};

use log::{error, info, warn};
use options::{Facility, Mode, RawArgs};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args
        .first()
        .is_some_and(|first| ctl::COMMANDS.contains(&first.as_str()))
    {
        return ctl::main(&args);
    }
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
    let mode = match raw.mode() {
        Ok(mode) => mode,
        Err(e) => {
            eprintln!("ucarp: {e}");
            return ExitCode::from(1);
        }
    };
    let plan = match mode {
        Mode::CheckConfig(path) => return check_config(&path),
        Mode::CommandLine(options) => Plan {
            socket_name: format!("{}.{}.sock", options.vhost.interface, options.vhost.vhid),
            vhosts: vec![options.vhost],
            facility: options.facility,
            debug: options.debug,
            file_debug: false,
            daemonize: options.daemonize,
            shutdown: options.shutdown,
            services: options.services,
            warnings: options.warnings,
            file: None,
        },
        Mode::ConfigFile {
            path,
            daemonize,
            debug,
        } => match config::load(&path) {
            Ok(file) => Plan {
                debug: debug || file.debug,
                file_debug: file.debug,
                daemonize,
                facility: file.facility,
                shutdown: file.shutdown,
                services: file.services,
                socket_name: "ucarp.sock".into(),
                warnings: file.warnings,
                vhosts: file.vhosts,
                file: Some(path),
            },
            Err(e) => {
                eprintln!("ucarp: {e}");
                return ExitCode::from(1);
            }
        },
    };
    if let Err(message) = plan.check_interfaces() {
        eprintln!("ucarp: {message}");
        return ExitCode::from(1);
    }
    // The logger queues lines from now on; its threads start after the
    // fork. Start-up errors go to stderr before daemonizing, so that
    // `ucarp -B` with a bad setup does not exit 0.
    let writers = logging::Logger::install(plan.debug, plan.facility, !plan.daemonize);
    let watchdog = notify::watchdog_period();
    let (runtime, scripts) = match open(&plan, watchdog) {
        Ok(opened) => opened,
        Err(e) => {
            writers.print_pending();
            eprintln!("ucarp: {e}");
            return ExitCode::from(2);
        }
    };
    let services = match OpenedServices::open(&plan) {
        Ok(services) => services,
        Err(e) => {
            writers.print_pending();
            eprintln!("ucarp: {e}");
            return ExitCode::from(2);
        }
    };
    if plan.daemonize {
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
    for warning in &plan.warnings {
        warn!("{warning}");
    }
    let code = match run(runtime, scripts, plan, services, watchdog) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e}");
            ExitCode::from(2)
        }
    };
    logging::Logger::flush_now();
    code
}

/// What the daemon runs, from either form of the command line.
struct Plan {
    vhosts: Vec<VirtualHostSpec>,
    facility: Facility,
    debug: bool,
    /// `[daemon] debug` as the file said at start (`-D` aside).
    file_debug: bool,
    daemonize: bool,
    /// Down scripts run when the daemon stops (`-z`).
    shutdown: bool,
    warnings: Vec<String>,
    /// The configuration file, if any: SIGHUP reloads it.
    file: Option<PathBuf>,
    /// Control socket, metrics, events.
    services: options::Services,
    /// The control socket's file name in the default directory.
    socket_name: String,
}

impl Plan {
    /// Where a virtual host's setting came from, for messages: the option
    /// on the command line, the virtual host in the file.
    fn origin(&self, vhost: &VirtualHostSpec, option: &str) -> String {
        match &self.file {
            None => option.to_string(),
            Some(path) => format!("{}: {}", path.display(), vhost.id()),
        }
    }

    /// Every interface must exist; a source address not on its interface
    /// is only a warning (it may be added later, as with UCARP).
    fn check_interfaces(&self) -> Result<(), String> {
        for vhost in &self.vhosts {
            let info = check_interface(vhost)
                .map_err(|e| format!("{}: {e}", self.origin(vhost, "--interface (-i)")))?;
            if let Some(warning) = source_warning(vhost, &info) {
                // The logger is not installed yet: say it on stderr.
                eprintln!(
                    "[WARNING] {}: {warning}",
                    self.origin(vhost, "--srcip (-s)")
                );
            }
        }
        Ok(())
    }
}

/// `--check-config FILE`: the verdict on stdout (good) or stderr (bad).
fn check_config(path: &Path) -> ExitCode {
    match config::load(path) {
        Ok(file) => {
            for warning in &file.warnings {
                eprintln!("[WARNING] {warning}");
            }
            let mut interfaces: Vec<&str> =
                file.vhosts.iter().map(|v| v.interface.as_str()).collect();
            interfaces.sort_unstable();
            interfaces.dedup();
            println!(
                "{}: OK, {} virtual host{} on {}",
                path.display(),
                file.vhosts.len(),
                if file.vhosts.len() == 1 { "" } else { "s" },
                interfaces.join(", ")
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ucarp: {e}");
            ExitCode::from(1)
        }
    }
}

/// Whether the interface exists, worded for the operator.
pub(crate) fn check_interface(vhost: &VirtualHostSpec) -> Result<InterfaceInfo, String> {
    match InterfaceInfo::lookup(&vhost.interface) {
        Ok(info) => Ok(info),
        Err(carp_io::IoError::NoSuchInterface(name)) => {
            Err(format!("no such interface {name:?} (see `ip link`)"))
        }
        Err(e) => Err(e.to_string()),
    }
}

/// Source addresses that are not on their interface.
fn source_warning(vhost: &VirtualHostSpec, info: &InterfaceInfo) -> Option<String> {
    let absent: Vec<String> = vhost
        .sources
        .iter()
        .filter(|source| match source {
            IpAddr::V4(v4) => !info.ipv4.contains(v4),
            IpAddr::V6(v6) => !info.ipv6.contains(v6),
        })
        .map(ToString::to_string)
        .collect();
    (!absent.is_empty()).then(|| {
        format!(
            "{} {} not an address of {}",
            absent.join(" and "),
            if absent.len() == 1 { "is" } else { "are" },
            vhost.interface
        )
    })
}

/// Everything that can fail before the runtime runs, without starting a
/// thread: the runtime with every virtual host's sockets, and the scripts
/// each will run.
type Opened = (Runtime, Vec<(VirtualHostId, ScriptConfig)>);

fn open(
    plan: &Plan,
    watchdog: Option<std::time::Duration>,
) -> Result<Opened, Box<dyn std::error::Error>> {
    let mut runtime = Runtime::new(RuntimeConfig {
        heartbeat: watchdog.map(notify::heartbeat_for),
        ..RuntimeConfig::default()
    })?;
    let mut scripts = Vec::new();
    for vhost in &plan.vhosts {
        let (config, script_config) = vhost
            .build(carp_io::initial_counter()?)
            .map_err(|e| format!("{}: {e}", vhost.id()))?;
        runtime
            .add(config, Box::new(NoHooks))
            .map_err(|e| match &plan.file {
                None => e.to_string(),
                Some(_) => format!("{}: {e}", vhost.id()),
            })?;
        scripts.push((vhost.id(), script_config));
    }
    Ok((runtime, scripts))
}

/// The services' sockets and files, opened before `--daemonize` so that
/// a conflict or a bad path stops the start visibly.
struct OpenedServices {
    control: Option<control::ControlSocket>,
    metrics: Option<std::net::TcpListener>,
    events: Option<(PathBuf, std::fs::File)>,
}

impl OpenedServices {
    fn open(plan: &Plan) -> Result<OpenedServices, String> {
        let s = &plan.services;
        let control = match s.control_socket.path(&plan.socket_name) {
            Some(path) => Some(control::ControlSocket::bind(
                &path,
                s.control_group.as_deref(),
            )?),
            None => None,
        };
        Ok(OpenedServices {
            control,
            metrics: s.metrics.map(metrics::bind).transpose()?,
            events: s.events.as_deref().map(event_fifo::open).transpose()?,
        })
    }
}

fn run(
    mut runtime: Runtime,
    scripts: Vec<(VirtualHostId, ScriptConfig)>,
    plan: Plan,
    services: OpenedServices,
    watchdog: Option<std::time::Duration>,
) -> Result<(), Box<dyn std::error::Error>> {
    for (id, script_config) in scripts {
        runtime.set_hooks(&id, Box::new(ScriptHooks::new(script_config)?));
    }
    let handle = runtime.handle();
    let reload = plan.file.map(|path| {
        Arc::new(Mutex::new(reload::Reloader {
            path,
            running: plan.vhosts.iter().map(|v| (v.id(), v.clone())).collect(),
            handle: handle.clone(),
            shutdown: plan.shutdown,
            facility: plan.facility,
            debug: plan.file_debug,
            services: plan.services.clone(),
        }))
    });
    signals::spawn(handle.clone(), plan.shutdown, reload.clone())?;
    // Removes the socket file when `run` returns, however it returns.
    let _control = match services.control {
        Some(socket) => {
            info!("control socket {}", socket.path().display());
            Some(socket.serve(control::Server {
                handle: handle.clone(),
                reload,
                started: std::time::SystemTime::now(),
            })?)
        }
        None => None,
    };
    if let Some(listener) = services.metrics {
        if let Ok(addr) = listener.local_addr() {
            info!("metrics on http://{addr}/metrics");
        }
        metrics::serve(listener, handle.clone())?;
    }
    if let Some(fifo) = services.events {
        event_fifo::spawn(fifo, &handle)?;
    }
    if let Some(notifier) = notify::Notifier::from_env() {
        notify::spawn(notifier, handle.clone(), watchdog)?;
    }
    runtime.run()?;
    Ok(())
}
