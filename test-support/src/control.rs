//! Asking our running daemon through its control socket, as `ucarp
//! status --json` does: one request line, one JSON reply.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

/// The reply to `line` on the socket at `path`; `Err` when nobody answers.
pub fn request(path: &Path, line: &str) -> Result<Value, String> {
    let mut stream = UnixStream::connect(path).map_err(|e| format!("{}: {e}", path.display()))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(format!("{line}\n").as_bytes())
        .map_err(|e| e.to_string())?;
    let mut reply = String::new();
    stream
        .read_to_string(&mut reply)
        .map_err(|e| e.to_string())?;
    serde_json::from_str(&reply).map_err(|e| format!("{e}: {reply:?}"))
}

/// Sends raw bytes and returns the raw reply (for malformed requests).
pub fn request_raw(path: &Path, bytes: &[u8]) -> Result<String, String> {
    let mut stream = UnixStream::connect(path).map_err(|e| format!("{}: {e}", path.display()))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    stream.write_all(bytes).map_err(|e| e.to_string())?;
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut reply = String::new();
    stream
        .read_to_string(&mut reply)
        .map_err(|e| e.to_string())?;
    Ok(reply)
}

/// The one control socket in `dir`.
pub fn socket_in(dir: &Path) -> Result<PathBuf, String> {
    let sockets: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "sock"))
        .collect();
    match sockets.as_slice() {
        [one] => Ok(one.clone()),
        other => Err(format!("{} sockets in {}", other.len(), dir.display())),
    }
}

/// The status (the reply's `status` object) of the daemon in `dir`.
pub fn status_in(dir: &Path) -> Result<Value, String> {
    status(&socket_in(dir)?)
}

/// The status of the daemon at `path`.
pub fn status(path: &Path) -> Result<Value, String> {
    let reply = request(path, "status")?;
    if reply["ok"] != Value::Bool(true) {
        return Err(format!("status refused: {reply}"));
    }
    Ok(reply["status"].clone())
}

/// The first virtual host's status of the daemon at `path`.
pub fn vhost(path: &Path) -> Result<Value, String> {
    Ok(status(path)?["virtual_hosts"][0].clone())
}

/// The status of our daemon for vhid 7 on `lab`'s `host`, if it answers.
pub fn vhost_of(lab: &crate::lab::Lab, host: usize) -> Option<Value> {
    vhost(&lab.control_socket(host, 7)).ok()
}

/// Waits until our daemon for vhid 7 on `host` is in `state`; its status.
pub fn wait_state(lab: &crate::lab::Lab, host: usize, state: &str, timeout: Duration) -> Value {
    crate::lab::until(&format!("host {host} {state}"), timeout, || {
        vhost_of(lab, host).filter(|v| v["state"] == state)
    })
}
