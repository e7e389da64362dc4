//! The event FIFO (`--events PATH`, `[daemon] events`): one JSON line per
//! transition, for automation, as keepalived's `notify_fifo`:
//!
//! ```json
//! {"seq":3,"time":1795920245.123,"interface":"eth0","vhid":7,"from":"BACKUP","to":"MASTER","reason":"…","master":"10.0.0.1","addresses":["10.0.0.100"]}
//! ```
//!
//! `seq` counts every transition of the daemon from 1 in order. The
//! protocol thread only offers events to a bounded queue; a thread of its
//! own writes them. A reader that is slow or absent fills the FIFO, then
//! that queue; further events are dropped, never waited for, and the
//! reader sees the loss as a gap in `seq` (the count is logged too). The
//! FIFO is opened read-write, so the daemon never waits for a reader to
//! appear and a reader may come and go. The FIFO keeps what was written
//! while nobody read it (up to its 64 KiB): a reader that attaches later
//! first gets those older events, in order; their `time` says when.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use carp_io::{RuntimeHandle, TransitionEvent};
use log::{error, warn};
use nix::sys::stat::Mode;
use serde_json::json;

use crate::status_json::unix_time;

/// Events waiting for the writer at most.
const QUEUE: usize = 1024;

/// Creates the FIFO if needed (mode 0600) and opens it; before
/// `--daemonize`, so that a bad path stops the start visibly. An existing
/// one must be a FIFO of ours that nobody else can write to (else someone
/// could inject events, or swap in a symlink to a file we would write);
/// the open follows no symlink.
pub fn open(path: &Path) -> Result<(PathBuf, std::fs::File), String> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let shown = path.display();
    if std::fs::symlink_metadata(path).is_err() {
        nix::unistd::mkfifo(path, Mode::from_bits_truncate(0o600))
            .map_err(|e| format!("events: cannot create the FIFO {shown}: {e}"))?;
    }
    // Non-blocking to open, then blocking for the writer thread.
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| format!("events: cannot open {shown}: {e}"))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("events: {shown}: {e}"))?;
    if !meta.file_type().is_fifo() {
        return Err(format!("events: {shown} exists and is not a FIFO"));
    }
    if meta.uid() != nix::unistd::geteuid().as_raw() || meta.mode() & 0o022 != 0 {
        return Err(format!(
            "events: {shown} is not ours, or others can write to it; remove it and let ucarp create it"
        ));
    }
    set_blocking(&file).map_err(|e| format!("events: {shown}: {e}"))?;
    Ok((path.to_path_buf(), file))
}

fn set_blocking(file: &std::fs::File) -> nix::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let flags = OFlag::from_bits_truncate(fcntl(file, FcntlArg::F_GETFL)?);
    fcntl(file, FcntlArg::F_SETFL(flags - OFlag::O_NONBLOCK))?;
    Ok(())
}

/// One event as its JSON line.
pub fn line(event: &TransitionEvent) -> String {
    let mut line = json!({
        "seq": event.seq,
        "time": unix_time(event.at),
        "interface": event.interface,
        "vhid": event.vhid,
        "from": event.from.to_string(),
        "to": event.to.to_string(),
        "reason": event.reason,
        "master": event.master.map(|m| m.to_string()),
        "addresses": event.addresses.iter().map(ToString::to_string).collect::<Vec<_>>(),
    })
    .to_string();
    line.push('\n');
    line
}

/// Starts the writer thread.
pub fn spawn(
    (path, mut fifo): (PathBuf, std::fs::File),
    handle: &RuntimeHandle,
) -> std::io::Result<()> {
    let subscription = handle.subscribe(QUEUE);
    std::thread::Builder::new()
        .name("ucarp-events".into())
        .spawn(move || {
            let mut reported = 0;
            for event in subscription.events.iter() {
                let lost = subscription.lost();
                if lost > reported {
                    warn!(
                        "events: {} transition events dropped for {} (its reader is not keeping up)",
                        lost - reported,
                        path.display()
                    );
                    reported = lost;
                }
                // The only writer: lines never interleave. A full FIFO
                // makes this wait, and the queue behind it fill.
                if let Err(e) = fifo.write_all(line(&event).as_bytes()) {
                    error!("events: cannot write to {}: {e}; no more events", path.display());
                    return;
                }
            }
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_fifo_of_ours_that_others_cannot_write_is_used() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("ucarp-fifo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("events");
        let _ = std::fs::remove_file(&fifo);
        assert!(open(&fifo).is_ok(), "created");
        std::fs::set_permissions(&fifo, std::fs::Permissions::from_mode(0o622)).unwrap();
        let error = open(&fifo).unwrap_err();
        assert!(error.contains("others can write"), "{error}");
        let plain = dir.join("plain");
        std::fs::write(&plain, "x").unwrap();
        assert!(open(&plain).unwrap_err().contains("not a FIFO"));
        let link = dir.join("link");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&plain, &link).unwrap();
        assert!(open(&link).is_err(), "a symlink is not followed");
        assert_eq!(std::fs::read_to_string(&plain).unwrap(), "x");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
