//! systemd integration: `Type=notify` and the watchdog, by the
//! `sd_notify(3)` protocol (datagrams of `KEY=value` lines to the socket
//! in `$NOTIFY_SOCKET`; a leading `@` names an abstract socket). Twenty
//! lines of std, so no crate for it.
//!
//! - `READY=1` once the protocol loop has gone round for the first time
//!   (every socket is open by then), with `MAINPID` (`--daemonize` forks).
//! - `STATUS=` a one-line summary, updated on every transition.
//! - `STOPPING=1` once the daemon begins to stop (from systemd or not).
//! - `WATCHDOG=1` every half `WatchdogSec`, but only while the protocol
//!   loop is alive: the runtime is told to go round at least every
//!   quarter period, and a loop silent for half the period gets no ping,
//!   so systemd restarts a frozen daemon instead of trusting a live side
//!   thread.
//!
//! Runs on its own thread; sends never block (a full socket drops the
//! datagram).

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::mpsc::RecvTimeoutError;
use std::time::Duration;

use carp_io::{RuntimeHandle, RuntimeStatus};
use log::{debug, warn};

/// The notification socket from the environment, if systemd gave one.
pub struct Notifier {
    socket: UnixDatagram,
    addr: SocketAddr,
}

impl Notifier {
    /// From `$NOTIFY_SOCKET`; `None` when unset (not run by systemd).
    pub fn from_env() -> Option<Notifier> {
        let value = std::env::var_os("NOTIFY_SOCKET")?;
        let value = value.to_string_lossy().into_owned();
        let addr = match value.strip_prefix('@') {
            Some(name) => SocketAddr::from_abstract_name(name.as_bytes()),
            None => SocketAddr::from_pathname(&value),
        };
        let made = addr.and_then(|addr| Ok((UnixDatagram::unbound()?, addr)));
        match made {
            Ok((socket, addr)) => {
                let _ = socket.set_nonblocking(true);
                Some(Notifier { socket, addr })
            }
            Err(e) => {
                warn!("NOTIFY_SOCKET={value}: {e}; not notifying systemd");
                None
            }
        }
    }

    /// Sends one notification (several `KEY=value` lines).
    pub fn send(&self, message: &str) {
        if let Err(e) = self.socket.send_to_addr(message.as_bytes(), &self.addr) {
            debug!("sd_notify: {e}");
        }
    }
}

/// The watchdog period systemd asks for (`$WATCHDOG_USEC`, for this
/// process if `$WATCHDOG_PID` says which).
pub fn watchdog_period() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.parse::<u32>().ok() != Some(std::process::id()) {
            return None;
        }
    }
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// How often the runtime must go round so that the watchdog can tell it
/// is alive.
pub fn heartbeat_for(period: Duration) -> Duration {
    period / 4
}

/// A one-line summary of every virtual host, for `STATUS=`.
pub fn summary(status: &RuntimeStatus) -> String {
    let vhosts = &status.virtual_hosts;
    let named = |state: &str| -> Vec<String> {
        vhosts
            .iter()
            .filter(|v| v.state().to_string() == state)
            .map(|v| format!("{}:{}", v.interface, v.vhid))
            .collect()
    };
    let mut parts = Vec::new();
    for state in ["MASTER", "BACKUP", "INIT"] {
        let names = named(state);
        if !names.is_empty() {
            let shown = if names.len() > 8 {
                format!("{} virtual hosts", names.len())
            } else {
                names.join(" ")
            };
            parts.push(format!("{state} {shown}"));
        }
    }
    if parts.is_empty() {
        "no virtual host".into()
    } else {
        parts.join("; ")
    }
}

/// Starts the thread that tells systemd we are ready, what we are doing,
/// and that the protocol loop is alive.
pub fn spawn(
    notifier: Notifier,
    handle: RuntimeHandle,
    watchdog: Option<Duration>,
) -> std::io::Result<()> {
    let events = handle.subscribe(64);
    std::thread::Builder::new()
        .name("ucarp-notify".into())
        .spawn(move || {
            // Ready once the loop has gone round and every virtual host
            // has left INIT (at most a few seconds: the first turn does
            // that), so that STATUS= says what runs.
            let asked = std::time::Instant::now();
            while handle.heartbeat_age() > Duration::from_secs(1)
                || (handle
                    .status()
                    .virtual_hosts
                    .iter()
                    .any(|v| v.state() == carp_engine::State::Init)
                    && asked.elapsed() < Duration::from_secs(3))
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            notifier.send(&format!(
                "READY=1\nMAINPID={}\nSTATUS={}",
                std::process::id(),
                summary(&handle.status())
            ));
            let tick = watchdog.map_or(Duration::from_secs(3600), |p| p / 2);
            let mut told_stopping = false;
            loop {
                match events.events.recv_timeout(tick) {
                    Ok(_) => {
                        // Several transitions at once make one update.
                        while events.events.try_recv().is_ok() {}
                        notifier.send(&format!("STATUS={}", summary(&handle.status())));
                    }
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => return,
                }
                if handle.is_stopping() && !told_stopping {
                    notifier.send("STOPPING=1");
                    told_stopping = true;
                }
                if let Some(period) = watchdog {
                    // Stopping, the loop waits for down scripts (bounded by
                    // their timeouts, and by TimeoutStopSec): keep pinging,
                    // so the watchdog does not kill a down script midway.
                    if handle.heartbeat_age() < period / 2 || handle.is_stopping() {
                        notifier.send("WATCHDOG=1");
                    } else {
                        warn!(
                            "the protocol loop has not gone round for {:?}; not pinging systemd's watchdog",
                            handle.heartbeat_age()
                        );
                    }
                }
            }
        })?;
    Ok(())
}
