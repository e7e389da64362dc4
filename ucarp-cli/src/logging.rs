//! Logging as UCARP does it: syslog with ident `ucarp`, the PID and the
//! chosen facility, plus stderr unless daemonized, lines like
//! `[WARNING] Switching to state: MASTER`. `--debug` adds debug lines;
//! `RUST_LOG` (env_logger syntax) overrides the level.

use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::sync::Mutex;

use log::{Level, LevelFilter, Log, Metadata, Record};

use crate::options::Facility;

/// Where log lines go.
pub struct Logger {
    filter: env_filter::Filter,
    stderr: bool,
    syslog: Option<Syslog>,
}

struct Syslog {
    socket: Mutex<UnixDatagram>,
    facility: u8,
    pid: u32,
}

fn label(level: Level) -> &'static str {
    match level {
        Level::Error => "[ERROR]",
        Level::Warn => "[WARNING]",
        Level::Info => "[INFO]",
        Level::Debug | Level::Trace => "[DEBUG]",
    }
}

fn severity(level: Level) -> u8 {
    match level {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    }
}

impl Logger {
    /// Installs the logger. Syslog is skipped, with a note on stderr, when
    /// /dev/log cannot be reached.
    pub fn install(debug: bool, facility: Facility, stderr: bool) {
        let default = if debug {
            LevelFilter::Debug
        } else {
            LevelFilter::Info
        };
        let mut builder = env_filter::Builder::new();
        builder.filter_level(default);
        if let Ok(spec) = std::env::var("RUST_LOG") {
            builder.parse(&spec);
        }
        let syslog = match facility {
            Facility::None => None,
            Facility::Syslog(facility) => {
                let socket =
                    UnixDatagram::unbound().and_then(|s| s.connect("/dev/log").map(|()| s));
                match socket {
                    Ok(socket) => Some(Syslog {
                        socket: Mutex::new(socket),
                        facility,
                        pid: std::process::id(),
                    }),
                    Err(e) => {
                        if stderr {
                            eprintln!("[WARNING] syslog unavailable (/dev/log: {e}); logging to stderr only");
                        }
                        None
                    }
                }
            }
        };
        let logger = Logger {
            filter: builder.build(),
            stderr,
            syslog,
        };
        log::set_max_level(logger.filter.filter());
        let _ = log::set_boxed_logger(Box::new(logger));
    }
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.filter.enabled(metadata)
    }

    fn log(&self, record: &Record<'_>) {
        if !self.filter.matches(record) {
            return;
        }
        let line = format!("{} {}", label(record.level()), record.args());
        if self.stderr {
            let _ = writeln!(std::io::stderr().lock(), "{line}");
        }
        if let Some(syslog) = &self.syslog {
            let priority = syslog.facility * 8 + severity(record.level());
            let message = format!("<{priority}>ucarp[{}]: {line}", syslog.pid);
            if let Ok(socket) = syslog.socket.lock() {
                let _ = socket.send(message.as_bytes());
            }
        }
    }

    fn flush(&self) {}
}
