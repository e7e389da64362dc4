//! The control socket: `ucarp status`, `step-down`, `demote`, `undemote`
//! and `reload` against the running daemon.
//!
//! A Unix stream socket, root-only unless `control-group` opens it to a
//! group, at `$RUNTIME_DIRECTORY` (systemd's `RuntimeDirectory=`) or
//! `/run/ucarp`: `ucarp.sock` with a configuration file, `IFACE.VHID.sock`
//! in UCARP's one-virtual-host form (several such processes per machine are
//! usual). The file exists only while the daemon runs: removed on exit, and
//! a file left by a crash refuses connections (the client says the daemon
//! is not running) and is replaced at the next start. So the status it
//! gives is never stale.
//!
//! One request per connection: a line of words (`status`, `step-down
//! [TARGET]`, `demote TARGET [N]`, `undemote TARGET`, `demote-group NAME
//! [N]`, `undemote-group NAME`, `reload`; TARGET is `VHID` or
//! `IFACE:VHID`), at most [`MAX_REQUEST`] bytes; one JSON line back,
//! `{"ok":true,…}` or `{"ok":false,"error":"…"}`. Served by a thread of
//! its own, with read and write timeouts, so a stuck client holds up other
//! clients for at most a second and never the protocol.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use carp_io::{RuntimeHandle, VirtualHostId};
use log::{info, warn};
use serde_json::{json, Value};

use crate::reload::Reloader;
use crate::status_json;

/// Longest request line accepted.
pub const MAX_REQUEST: usize = 1024;
/// How long a client may take to send its request or read the reply.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(1);
/// Demotion set by `demote` without a number: enough to lose to any
/// healthy peer, as OpenBSD's boot-time demotion.
pub const DEFAULT_DEMOTE: u8 = 128;

/// Where control sockets live by default.
pub fn default_dir() -> PathBuf {
    match std::env::var_os("RUNTIME_DIRECTORY") {
        // systemd may list several, separated by colons; ours is the first.
        Some(dirs) if !dirs.is_empty() => {
            let dirs = dirs.to_string_lossy().into_owned();
            PathBuf::from(dirs.split(':').next().unwrap_or("/run/ucarp"))
        }
        _ => PathBuf::from("/run/ucarp"),
    }
}

/// Where the control socket goes, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SocketSetting {
    /// The default name in [`default_dir`].
    Default,
    /// This path.
    Path(PathBuf),
    /// No control socket (`none`).
    Off,
}

impl SocketSetting {
    /// Parses an option's value: `none`, or a path.
    pub fn parse(value: &str) -> SocketSetting {
        match value {
            "none" | "" => SocketSetting::Off,
            path => SocketSetting::Path(PathBuf::from(path)),
        }
    }

    /// The path for a daemon whose default socket name is `name`.
    pub fn path(&self, name: &str) -> Option<PathBuf> {
        match self {
            SocketSetting::Default => Some(default_dir().join(name)),
            SocketSetting::Path(path) => Some(path.clone()),
            SocketSetting::Off => None,
        }
    }
}

/// The bound socket, before its thread starts (binding happens before
/// `--daemonize`, so that a conflict stops the start visibly).
pub struct ControlSocket {
    listener: UnixListener,
    /// Removes the file if the start fails after binding, or at exit.
    cleanup: Cleanup,
}

impl ControlSocket {
    /// Binds `path`, replacing a socket file nobody listens on (left by a
    /// crash). Refuses when another daemon answers there, and a directory
    /// others could write to. `group`: a group that may use it too (mode
    /// 0660 instead of 0600).
    pub fn bind(path: &Path, group: Option<&str>) -> Result<ControlSocket, String> {
        let shown = path.display();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.exists() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("control socket: cannot create {}: {e}", dir.display()))?;
                let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755));
            }
            check_directory(dir)?;
        }
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_socket() => match UnixStream::connect(path) {
                Ok(_) => {
                    return Err(format!(
                        "control socket {shown}: another ucarp is running there \
                         (stop it, or give this one its own path with --control-socket)"
                    ))
                }
                // Nobody listens: left by a daemon that died.
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                    std::fs::remove_file(path).map_err(|e| {
                        format!("control socket {shown}: cannot remove the stale one: {e}")
                    })?;
                }
                Err(e) => return Err(format!("control socket {shown}: {e}; not replacing it")),
            },
            Ok(_) => {
                return Err(format!(
                    "control socket {shown}: exists and is not a socket; not replacing it"
                ))
            }
            Err(_) => {}
        }
        let mode = if group.is_some() { 0o660 } else { 0o600 };
        // Created with its final mode or tighter: never connectable by
        // others between bind and chmod.
        let old_mask = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
        let bound = UnixListener::bind(path);
        nix::sys::stat::umask(old_mask);
        let listener = bound.map_err(|e| format!("control socket {shown}: {e}"))?;
        let cleanup = Cleanup::new(path);
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| format!("control socket {shown}: {e}"))?;
        if let Some(group) = group {
            let gid = nix::unistd::Group::from_name(group)
                .ok()
                .flatten()
                .ok_or_else(|| format!("control-group: no group {group:?}"))?
                .gid;
            nix::unistd::chown(path, None, Some(gid)).map_err(|e| {
                format!(
                    "control socket {shown}: chown to group {group}: {e} \
                     (under systemd the unit needs CAP_CHOWN and @chown: see docs/systemd)"
                )
            })?;
        }
        Ok(ControlSocket { listener, cleanup })
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.cleanup.path
    }

    /// Serves requests on a thread of its own. The returned guard removes
    /// the socket file when dropped (at exit).
    pub fn serve(self, server: Server) -> std::io::Result<Cleanup> {
        let ControlSocket { listener, cleanup } = self;
        let server = Arc::new(server);
        std::thread::Builder::new()
            .name("ucarp-control".into())
            .spawn(move || {
                for stream in listener.incoming() {
                    match stream {
                        Ok(stream) => server.serve(stream),
                        Err(e) => {
                            warn!("control socket: accept failed: {e}");
                            std::thread::sleep(Duration::from_millis(100));
                        }
                    }
                }
            })?;
        Ok(cleanup)
    }
}

/// The socket's directory must not be writable by anyone but us: else
/// another user could swap the socket for a symlink between our steps.
fn check_directory(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let meta =
        std::fs::metadata(dir).map_err(|e| format!("control socket: {}: {e}", dir.display()))?;
    let ours = meta.uid() == nix::unistd::geteuid().as_raw();
    if !ours || meta.mode() & 0o022 != 0 {
        return Err(format!(
            "control socket: {} is writable by others (or not ours); give a directory only \
             we can write to (--control-socket)",
            dir.display()
        ));
    }
    Ok(())
}

/// Removes the control socket file, if it is still the one we made.
pub struct Cleanup {
    path: PathBuf,
    inode: Option<(u64, u64)>,
}

impl Cleanup {
    fn new(path: &Path) -> Cleanup {
        use std::os::unix::fs::MetadataExt;
        let inode = std::fs::symlink_metadata(path)
            .ok()
            .map(|m| (m.dev(), m.ino()));
        Cleanup {
            path: path.to_path_buf(),
            inode,
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        use std::os::unix::fs::MetadataExt;
        let now = std::fs::symlink_metadata(&self.path)
            .ok()
            .map(|m| (m.dev(), m.ino()));
        if now.is_some() && now == self.inode {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// What requests act on.
pub struct Server {
    pub handle: RuntimeHandle,
    /// With a configuration file: what `reload` runs (shared with SIGHUP).
    pub reload: Option<Arc<Mutex<Reloader>>>,
    pub started: SystemTime,
}

impl Server {
    fn serve(&self, stream: UnixStream) {
        let _ = stream.set_read_timeout(Some(CLIENT_TIMEOUT));
        let _ = stream.set_write_timeout(Some(CLIENT_TIMEOUT));
        let reply = match read_request(&stream) {
            Ok(line) => self.answer(&line),
            Err(message) => failure(message),
        };
        let mut text = reply.to_string();
        text.push('\n');
        let _ = (&stream).write_all(text.as_bytes());
        discard_unread(&stream);
    }

    /// The reply to one request line.
    pub fn answer(&self, line: &str) -> Value {
        let words: Vec<&str> = line.split_whitespace().collect();
        match self.act(&words) {
            Ok(reply) => reply,
            Err(message) => failure(message),
        }
    }

    fn act(&self, words: &[&str]) -> Result<Value, String> {
        let Some((command, args)) = words.split_first() else {
            return Err("empty request".into());
        };
        match (*command, args) {
            ("status", []) => Ok(json!({
                "ok": true,
                "status": status_json::runtime(&self.handle.status(), self.started),
            })),
            ("step-down", []) => {
                info!("control: every master steps down");
                self.handle.step_down(None);
                Ok(json!({"ok": true}))
            }
            ("step-down", [target]) => {
                let id = self.target(target)?;
                info!("control: {id} steps down");
                self.handle.step_down(Some(&id));
                Ok(json!({"ok": true}))
            }
            ("demote", [target]) => self.demote(target, DEFAULT_DEMOTE),
            ("demote", [target, n]) => self.demote(target, demote_value(n)?),
            ("undemote", [target]) => self.demote(target, 0),
            ("demote-group", [group]) => self.demote_group(group, DEFAULT_DEMOTE),
            ("demote-group", [group, n]) => self.demote_group(group, demote_value(n)?),
            ("undemote-group", [group]) => self.demote_group(group, 0),
            ("reload", []) => {
                let Some(reloader) = &self.reload else {
                    return Err("reload needs a configuration file (ucarp --config)".into());
                };
                info!("control: reloading");
                let mut reloader = reloader.lock().unwrap_or_else(|e| e.into_inner());
                reloader
                    .reload()
                    .map(|summary| json!({"ok": true, "summary": summary}))
            }
            (
                "status" | "step-down" | "demote" | "undemote" | "demote-group" | "undemote-group"
                | "reload",
                _,
            ) => Err(format!("{command}: wrong arguments (see ucarp(8))")),
            _ => Err(format!(
                "unknown command {:?}: status, step-down, demote, undemote, demote-group, undemote-group or reload",
                truncate(command, 40)
            )),
        }
    }

    fn demote(&self, target: &str, demote: u8) -> Result<Value, String> {
        let id = self.target(target)?;
        self.handle
            .set_demote(&id, demote)
            .map_err(|e| e.to_string())?;
        info!("control: operator demotion of {id} set to {demote}");
        Ok(json!({"ok": true}))
    }

    fn demote_group(&self, group: &str, demote: u8) -> Result<Value, String> {
        self.handle
            .set_group_demote(group, demote)
            .map_err(|e| e.to_string())?;
        info!("control: operator demotion of group {group:?} set to {demote}");
        Ok(json!({"ok": true}))
    }

    /// `VHID` (when one interface has it) or `IFACE:VHID`.
    fn target(&self, target: &str) -> Result<VirtualHostId, String> {
        let (interface, vhid) = match target.rsplit_once(':') {
            Some((interface, vhid)) => (Some(interface), vhid),
            None => (None, target),
        };
        let vhid: u8 = vhid.parse().map_err(|_| {
            format!(
                "{:?}: not a vhid (VHID or IFACE:VHID)",
                truncate(target, 40)
            )
        })?;
        let running: Vec<VirtualHostId> = self
            .handle
            .status()
            .virtual_hosts
            .into_iter()
            .filter(|v| v.vhid == vhid && interface.is_none_or(|i| i == v.interface))
            .map(|v| VirtualHostId {
                interface: v.interface,
                vhid,
            })
            .collect();
        match running.as_slice() {
            [id] => Ok(id.clone()),
            [] => Err(format!("no virtual host {target}")),
            _ => Err(format!(
                "vhid {vhid} runs on several interfaces; say which (IFACE:VHID)"
            )),
        }
    }
}

fn demote_value(n: &str) -> Result<u8, String> {
    n.parse()
        .map_err(|_| format!("{:?}: a demotion is 0 to 255", truncate(n, 20)))
}

fn failure(message: String) -> Value {
    json!({"ok": false, "error": message})
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// One request line, bounded in length and in total time (a client that
/// trickles bytes is cut off at [`CLIENT_TIMEOUT`], not per byte).
fn read_request(stream: &UnixStream) -> Result<String, String> {
    let deadline = std::time::Instant::now() + CLIENT_TIMEOUT;
    let mut line = Vec::new();
    let mut chunk = [0u8; 256];
    while !line.contains(&b'\n') && line.len() <= MAX_REQUEST {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err("request not received in time".into());
        }
        let _ = stream.set_read_timeout(Some(left));
        match (&*stream).read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => line.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err("request not received in time".into())
            }
            Err(e) => return Err(format!("cannot read the request: {e}")),
        }
    }
    if let Some(end) = line.iter().position(|b| *b == b'\n') {
        line.truncate(end + 1);
    }
    if line.len() > MAX_REQUEST {
        return Err(format!("request longer than {MAX_REQUEST} bytes"));
    }
    String::from_utf8(line).map_err(|_| "request is not UTF-8".into())
}

/// Reads away what a client sent beyond its request (a request too long):
/// closing a socket with unread data resets the connection, and the
/// client would lose the reply it has not read yet.
fn discard_unread(stream: &UnixStream) {
    if stream.set_nonblocking(true).is_err() {
        return;
    }
    let mut buf = [0u8; 4096];
    for _ in 0..64 {
        match (&*stream).read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// The client side: one request to one socket, the JSON reply.
pub fn request(path: &Path, line: &str) -> Result<Value, String> {
    let shown = path.display();
    let mut stream = UnixStream::connect(path).map_err(|e| match e.kind() {
        ErrorKind::NotFound => format!("ucarp is not running (no control socket at {shown})"),
        ErrorKind::ConnectionRefused => {
            format!("ucarp is not running ({shown} was left by a daemon that has stopped)")
        }
        ErrorKind::PermissionDenied => format!(
            "permission denied on {shown}: the control socket is root-only \
             (run as root, or set control-group in [daemon])"
        ),
        _ => format!("{shown}: {e}"),
    })?;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    stream
        .write_all(format!("{line}\n").as_bytes())
        .map_err(|e| format!("{shown}: {e}"))?;
    let mut reply = String::new();
    stream
        .read_to_string(&mut reply)
        .map_err(|e| format!("{shown}: no reply: {e}"))?;
    serde_json::from_str(&reply).map_err(|e| format!("{shown}: bad reply ({e}): {reply:?}"))
}

/// Control sockets in `dir` and its subdirectories (systemd instances
/// have `RuntimeDirectory=ucarp/%i`), sorted.
pub fn find_sockets(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![(dir.to_path_buf(), 0)];
    while let Some((dir, depth)) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let path = entry.path();
            if kind.is_socket() && path.extension().is_some_and(|e| e == "sock") {
                found.push(path);
            } else if kind.is_dir() && depth == 0 {
                dirs.push((path, 1));
            }
        }
    }
    found.sort();
    found
}
