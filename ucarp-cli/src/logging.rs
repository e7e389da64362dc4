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
            let message = syslog_message(syslog.facility, record.level(), syslog.pid, &line);
            if let Ok(socket) = syslog.socket.lock() {
                let _ = socket.send(message.as_bytes());
            }
        }
    }

    fn flush(&self) {}
}

/// A syslog datagram as /dev/log expects it (RFC 3164 without timestamp and
/// host, which the local daemon adds): `<priority>ucarp[pid]: line`.
fn syslog_message(facility: u8, level: Level, pid: u32, line: &str) -> String {
    let priority = u16::from(facility) * 8 + u16::from(severity(level));
    format!("<{priority}>ucarp[{pid}]: {line}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syslog_datagrams_carry_facility_severity_ident_and_pid() {
        // daemon (3) × 8 + warning (4) = 28.
        assert_eq!(
            syslog_message(3, Level::Warn, 42, "[WARNING] Switching to state: MASTER"),
            "<28>ucarp[42]: [WARNING] Switching to state: MASTER"
        );
        // local7 (23) × 8 + debug (7) = 191.
        assert_eq!(syslog_message(23, Level::Debug, 1, "x"), "<191>ucarp[1]: x");
        assert_eq!(label(Level::Error), "[ERROR]");
    }
}
