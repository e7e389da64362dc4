//! UCARP's signals, mapped onto the node's controls by a dedicated thread
//! that waits for them synchronously (no async-signal-safety concerns).
//!
//! SIGUSR1 logs the status, SIGUSR2 steps down, SIGTERM/SIGINT/SIGQUIT/
//! SIGHUP shut down: the leave advertisement if master, and with
//! `--shutdown` the down script first.

use carp_io::NodeHandle;
use log::info;
use nix::sys::signal::{SigSet, Signal};

const HANDLED: [Signal; 6] = [
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGHUP,
];

fn handled() -> SigSet {
    let mut set = SigSet::empty();
    for signal in HANDLED {
        set.add(signal);
    }
    set
}

/// Blocks the handled signals in this thread. Call before starting any
/// thread, so that every thread inherits the mask and only the waiting
/// thread ever receives them.
pub fn block() -> nix::Result<()> {
    handled().thread_block()
}

/// Starts the thread that turns signals into node commands. A second stop
/// signal while stopping makes the node stop at once (scripts killed).
pub fn spawn(handle: NodeHandle, run_down_script: bool) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("ucarp-signals".into())
        .spawn(move || {
            let mut stops = 0u32;
            loop {
                let Ok(signal) = handled().wait() else {
                    continue;
                };
                match signal {
                    Signal::SIGUSR1 => handle.log_status(),
                    Signal::SIGUSR2 => {
                        info!("SIGUSR2: stepping down");
                        handle.step_down();
                    }
                    other => {
                        stops += 1;
                        if stops == 1 {
                            info!("{other}: shutting down");
                        } else {
                            info!("{other} again: stopping at once");
                        }
                        handle.shutdown(run_down_script);
                    }
                }
            }
        })
        .map_err(|e| {
            std::io::Error::new(e.kind(), format!("cannot start the signal thread: {e}"))
        })?;
    Ok(())
}
