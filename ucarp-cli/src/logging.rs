//! Logging as UCARP does it: syslog with ident `ucarp`, the PID and the
//! chosen facility, plus stderr unless daemonized, lines like
//! `[WARNING] Switching to state: MASTER`. `--debug` adds debug lines;
//! `RUST_LOG` (env_logger syntax, without the `/regex` message filter)
//! overrides the level.
//!
//! Logging never blocks the protocol: a log call only formats the line and
//! offers it to a bounded queue; writer threads do the writing. A full
//! queue drops the line and counts it, and the writer says how many were
//! lost once it can. Syslog is written without blocking (a syslog daemon
//! that stops reading costs lines, not the writer), and `/dev/log` is
//! connected again after the syslog daemon restarts, or if it was not there
//! when we started. Stderr has its own thread, so a stuck stderr does not
//! hold up syslog. Flushing at exit ([`Logger::flush_now`]) waits for the
//! syslog writer, not for a stuck stderr.

use std::io::{ErrorKind, Write};
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::{Level, LevelFilter, Log, Metadata, Record};

use crate::options::Facility;

/// Lines waiting for the writer at most.
const QUEUE: usize = 1024;
/// The syslog socket's path.
const DEV_LOG: &str = "/dev/log";
/// A lost `/dev/log` is looked for again at most this often.
const RECONNECT_EVERY: Duration = Duration::from_secs(1);
/// How long [`Logger::flush_now`] waits for the writer at exit.
const FLUSH_WAIT: Duration = Duration::from_secs(1);

/// Where log lines go.
pub struct Logger {
    filter: env_filter::Filter,
    queue: SyncSender<Entry>,
    /// Lines the full queue refused, not yet reported.
    dropped: Arc<AtomicU64>,
}

enum Entry {
    Line(Level, String),
    /// Acknowledged once everything before it is written.
    Flush(SyncSender<()>),
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
    /// Installs the logger. No thread is started yet: lines wait in the
    /// queue until [`Writers::start`] (after `--daemonize` has forked), so
    /// that nothing logged during start-up is lost.
    pub fn install(debug: bool, facility: Facility, stderr: bool) -> Writers {
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
                let syslog = Syslog::new(DEV_LOG, facility);
                if let Err(e) = &syslog.connected {
                    eprintln!(
                        "[WARNING] syslog unavailable ({DEV_LOG}: {e}); logging to stderr, and to syslog once it is there"
                    );
                }
                Some(syslog)
            }
        };
        let (queue, lines) = mpsc::sync_channel(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let logger = Logger {
            filter: builder.build(),
            queue,
            dropped: Arc::clone(&dropped),
        };
        log::set_max_level(logger.filter.filter());
        let _ = log::set_boxed_logger(Box::new(logger));
        Writers {
            lines,
            stderr,
            syslog,
            dropped,
        }
    }

    /// Waits (at most a second) until every line logged so far is written.
    pub fn flush_now() {
        log::logger().flush();
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
        if let Err(TrySendError::Full(_)) = self.queue.try_send(Entry::Line(record.level(), line)) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn flush(&self) {
        let (ack, acked) = mpsc::sync_channel(1);
        let deadline = Instant::now() + FLUSH_WAIT;
        let mut entry = Entry::Flush(ack);
        loop {
            match self.queue.try_send(entry) {
                Ok(()) => break,
                Err(TrySendError::Full(back)) if Instant::now() < deadline => {
                    entry = back;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(_) => return,
            }
        }
        let _ = acked.recv_timeout(deadline.saturating_duration_since(Instant::now()));
    }
}

/// The writing side, started once the process is what it will stay (after
/// `--daemonize`): a thread for syslog (never blocking) that hands stderr
/// lines to a second thread, so a stuck stderr (a pipe nobody reads, a
/// frozen terminal) costs stderr lines, not syslog ones.
pub struct Writers {
    lines: Receiver<Entry>,
    stderr: bool,
    syslog: Option<Syslog>,
    dropped: Arc<AtomicU64>,
}

impl Writers {
    /// Starts the writer threads.
    pub fn start(self) -> std::io::Result<()> {
        let spawn_error = |e: std::io::Error| {
            std::io::Error::new(e.kind(), format!("cannot start the log thread: {e}"))
        };
        let stderr = if self.stderr {
            let (queue, lines) = mpsc::sync_channel::<StderrEntry>(QUEUE);
            std::thread::Builder::new()
                .name("ucarp-stderr".into())
                .spawn(move || {
                    for entry in lines {
                        match entry {
                            StderrEntry::Line(line) => {
                                let _ = writeln!(std::io::stderr().lock(), "{line}");
                            }
                            StderrEntry::Flush(ack) => {
                                let _ = ack.try_send(());
                            }
                        }
                    }
                })
                .map_err(spawn_error)?;
            Some(StderrQueue { queue, lost: 0 })
        } else {
            None
        };
        let mut writer = Writer {
            stderr,
            journal: stderr_is_journal(),
            syslog: self.syslog,
            dropped: self.dropped,
        };
        let lines = self.lines;
        std::thread::Builder::new()
            .name("ucarp-log".into())
            .spawn(move || writer.run(&lines))
            .map_err(spawn_error)?;
        Ok(())
    }

    /// For a start-up failure before the writers run: what was logged so
    /// far, on stderr.
    pub fn print_pending(&self) {
        while let Ok(entry) = self.lines.try_recv() {
            if let Entry::Line(_, line) = entry {
                eprintln!("{line}");
            }
        }
    }
}

/// What the stderr thread is handed.
enum StderrEntry {
    Line(String),
    /// Acknowledged once every line before it is written: a flush is only
    /// done when stderr has the lines too (the daemon's last words before
    /// it exits are on stderr).
    Flush(SyncSender<()>),
}

/// Lines for the stderr thread, dropped (and counted) when it is stuck.
struct StderrQueue {
    queue: SyncSender<StderrEntry>,
    lost: u64,
}

impl StderrQueue {
    fn send(&mut self, line: &str) {
        if self.lost > 0 {
            let note = format!("[WARNING] {} log lines did not reach stderr", self.lost);
            if self.queue.try_send(StderrEntry::Line(note)).is_ok() {
                self.lost = 0;
            }
        }
        if self
            .queue
            .try_send(StderrEntry::Line(line.to_string()))
            .is_err()
        {
            self.lost += 1;
        }
    }

    /// Passes a flush on; a stuck stderr acknowledges nothing (the flush
    /// waits at most its bound).
    fn flush(&self, ack: SyncSender<()>) {
        let _ = self.queue.try_send(StderrEntry::Flush(ack));
    }
}

/// The syslog writer thread's side.
struct Writer {
    stderr: Option<StderrQueue>,
    /// Stderr is systemd's journal: each line starts with `<N>`, its
    /// syslog severity, which journald turns into the entry's priority.
    journal: bool,
    syslog: Option<Syslog>,
    dropped: Arc<AtomicU64>,
}

impl Writer {
    fn run(&mut self, lines: &Receiver<Entry>) {
        for entry in lines {
            let dropped = self.dropped.swap(0, Ordering::Relaxed);
            if dropped > 0 {
                self.write(
                    Level::Warn,
                    &format!("[WARNING] {dropped} log lines dropped: logging could not keep up"),
                );
            }
            match entry {
                Entry::Line(level, line) => self.write(level, &line),
                Entry::Flush(ack) => match &self.stderr {
                    Some(stderr) => stderr.flush(ack),
                    None => {
                        let _ = ack.try_send(());
                    }
                },
            }
        }
    }

    fn write(&mut self, level: Level, line: &str) {
        if let Some(stderr) = &mut self.stderr {
            if self.journal {
                stderr.send(&format!("<{}>{line}", severity(level)));
            } else {
                stderr.send(line);
            }
        }
        if let Some(syslog) = &mut self.syslog {
            syslog.send(level, line);
        }
    }
}

/// Whether stderr is connected to systemd's journal: `$JOURNAL_STREAM`
/// holds the device and inode of that stream (systemd.exec(5)).
pub fn stderr_is_journal() -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(stream) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(meta) = std::fs::metadata("/proc/self/fd/2") else {
        return false;
    };
    journal_stream_matches(&stream, meta.dev(), meta.ino())
}

/// `JOURNAL_STREAM=<device>:<inode>` names this device and inode.
fn journal_stream_matches(stream: &str, dev: u64, ino: u64) -> bool {
    let mut parts = stream.split(':');
    let (Some(d), Some(i), None) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    d.parse() == Ok(dev) && i.parse() == Ok(ino)
}

/// A non-blocking connection to the syslog socket that reconnects.
struct Syslog {
    path: &'static str,
    facility: u8,
    pid: u32,
    connected: std::io::Result<UnixDatagram>,
    last_attempt: Instant,
    /// Lines syslog did not take (not reading, or not there), unreported.
    lost: u64,
}

impl Syslog {
    fn new(path: &'static str, facility: u8) -> Syslog {
        Syslog {
            path,
            facility,
            pid: std::process::id(),
            connected: connect(path),
            last_attempt: Instant::now(),
            lost: 0,
        }
    }

    fn send(&mut self, level: Level, line: &str) {
        if self.lost > 0 {
            let note = self.lost_note();
            if self.try_send(Level::Warn, &note) {
                self.lost = 0;
            }
        }
        if !self.try_send(level, line) {
            self.lost += 1;
        }
    }

    fn lost_note(&self) -> String {
        format!(
            "[WARNING] {} log lines did not reach syslog (it was not reading, or not there)",
            self.lost
        )
    }

    /// One attempt, reconnecting once if the socket is gone (the syslog
    /// daemon restarted) and it is time to look again.
    fn try_send(&mut self, level: Level, line: &str) -> bool {
        let message = syslog_message(self.facility, level, self.pid, line);
        for attempt in 0..2 {
            let result = match &self.connected {
                Ok(socket) => socket.send(message.as_bytes()).map(|_| ()),
                Err(_) => Err(ErrorKind::NotConnected.into()),
            };
            match result {
                Ok(()) => return true,
                // Not reading: the line is lost, the connection is fine.
                Err(e)
                    if e.kind() == ErrorKind::WouldBlock
                        || e.raw_os_error() == Some(nix::libc::ENOBUFS) =>
                {
                    return false
                }
                Err(_) if attempt == 0 && self.last_attempt.elapsed() >= RECONNECT_EVERY => {
                    self.last_attempt = Instant::now();
                    self.connected = connect(self.path);
                }
                Err(_) => return false,
            }
        }
        false
    }
}

fn connect(path: &str) -> std::io::Result<UnixDatagram> {
    let socket = UnixDatagram::unbound()?;
    socket.connect(path)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
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
    fn journal_stream_is_recognised_by_device_and_inode() {
        assert!(journal_stream_matches("8:12345", 8, 12345));
        assert!(!journal_stream_matches("8:12345", 8, 12346));
        assert!(!journal_stream_matches("9:12345", 8, 12345));
        assert!(!journal_stream_matches("8:12345:1", 8, 12345));
        assert!(!journal_stream_matches("", 8, 12345));
    }

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
