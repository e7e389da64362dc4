//! UCARP's signals, mapped onto the node's controls by a dedicated thread
//! that waits for them synchronously (no async-signal-safety concerns).
//!
//! SIGUSR1 logs the status, SIGUSR2 steps down, SIGTERM/SIGINT/SIGQUIT
//! shut down: the leave advertisement if master, and with `--shutdown` the
//! down script first. SIGHUP shuts down too, as in UCARP, unless a
//! configuration file is in use: then it reloads the file.

use std::sync::{Arc, Mutex};

use carp_io::RuntimeHandle;
use log::info;

use crate::reload::Reloader;
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

/// Starts the thread that turns signals into runtime commands. A second
/// stop signal while stopping makes the runtime stop at once (scripts
/// killed).
pub fn spawn(
    handle: RuntimeHandle,
    run_down_script: bool,
    reload: Option<Arc<Mutex<Reloader>>>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("ucarp-signals".into())
        .spawn(move || {
            let mut stops = 0u32;
            let mut run_down_script = run_down_script;
            loop {
                let Ok(signal) = handled().wait() else {
                    continue;
                };
                match (signal, &reload) {
                    (Signal::SIGUSR1, _) => handle.log_status(),
                    (Signal::SIGUSR2, _) => {
                        info!("SIGUSR2: stepping down");
                        handle.step_down(None);
                    }
                    (Signal::SIGHUP, Some(reloader)) => {
                        if stops > 0 {
                            // Not a second stop: that would kill the down
                            // scripts the first one waits for.
                            info!("SIGHUP while stopping: ignored");
                        } else {
                            let mut reloader = reloader.lock().unwrap_or_else(|e| e.into_inner());
                            info!("SIGHUP: reloading {}", reloader.path.display());
                            let _ = reloader.reload();
                            run_down_script = reloader.shutdown;
                        }
                    }
                    (other, _) => {
                        stops += 1;
                        // A reload through the control socket may have
                        // changed it.
                        if let Some(reloader) = &reload {
                            if let Ok(reloader) = reloader.try_lock() {
                                run_down_script = reloader.shutdown;
                            }
                        }
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
