//! Detaching from the terminal, as UCARP's `--daemonize` does.

use std::fs::OpenOptions;
use std::os::fd::AsFd;

use nix::unistd::{chdir, dup2_stderr, dup2_stdin, dup2_stdout, fork, setsid, ForkResult};

/// Double fork, `setsid`, working directory `/`, stdio to `/dev/null`.
/// Returns in the grandchild only; the parents exit with status 0.
///
/// Call it before any thread is started: after `fork` only the calling
/// thread exists in the child.
#[allow(unsafe_code)] // fork(2); see SAFETY below
pub fn daemonize() -> std::io::Result<()> {
    for step in 0..2 {
        // SAFETY: the caller starts no thread before this (documented
        // above), so the child has the only thread and no lock can be held
        // by a thread that vanished; the parent only exits.
        match unsafe { fork() }? {
            ForkResult::Parent { .. } => std::process::exit(0),
            ForkResult::Child => {
                if step == 0 {
                    setsid()?;
                }
            }
        }
    }
    chdir("/")?;
    let null = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    dup2_stdin(null.as_fd())?;
    dup2_stdout(null.as_fd())?;
    dup2_stderr(null.as_fd())?;
    Ok(())
}
