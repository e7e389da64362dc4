//! The configuration file (`ucarp --config FILE`): daemon settings and any
//! number of virtual hosts, in TOML. Everything is checked before anything
//! starts; an error names the file, line, column and key. The command line
//! is the same thing for one virtual host: both produce
//! [`VirtualHostSpec`]s, checked by the same functions.
//!
//! ```toml
//! [daemon]
//! facility = "daemon"
//! shutdown = true
//!
//! [defaults]
//! interface = "eth0"
//! srcip = "10.0.0.1"
//! passfile = "/etc/ucarp/password"
//! upscript = "/etc/ucarp/vip-up.sh"
//! downscript = "/etc/ucarp/vip-down.sh"
//!
//! [[vhost]]
//! vhid = 1
//! addresses = ["10.0.0.100", "10.0.0.101"]
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::net::IpAddr;
use std::ops::Range;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use carp_io::{ScriptSpec, VirtualAddress, VirtualHostId, VirtualHostSpec};
use carp_proto::Password;
use serde::Deserialize;
use toml::Spanned;

use crate::options::{self, Facility, UsageError};

/// A configuration file, checked.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    /// `[daemon] facility`.
    pub facility: Facility,
    /// `[daemon] debug`.
    pub debug: bool,
    /// `[daemon] shutdown`: down scripts run when the daemon stops.
    pub shutdown: bool,
    /// `[daemon] control-socket`, `control-group`, `metrics`, `events`.
    pub services: options::Services,
    /// Every `[[vhost]]`, in file order.
    pub vhosts: Vec<VirtualHostSpec>,
    /// Some virtual host's password is in the file itself.
    pub inline_password: bool,
    /// Things worth a warning that do not stop us.
    pub warnings: Vec<String>,
}

/// Why a configuration file is refused: where, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file.
    pub path: PathBuf,
    /// 1-based line and column, when the problem has a place.
    pub at: Option<(usize, usize)>,
    /// What is wrong, starting with the key.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.at {
            Some((line, column)) => write!(
                f,
                "{}:{line}:{column}: {}",
                self.path.display(),
                self.message
            ),
            None => write!(f, "{}: {}", self.path.display(), self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// A file larger than this is not a configuration file.
const MAX_SIZE: u64 = 1 << 20;

/// Reads and checks `path`. The file must be a regular file (a FIFO would
/// hang the reload); scripts and passfiles it names are checked too.
pub fn load(path: &Path) -> Result<ConfigFile, ConfigError> {
    let whole = |message: String| ConfigError {
        path: path.to_path_buf(),
        at: None,
        message,
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| whole(format!("cannot read it: {e}")))?;
    let meta = file
        .metadata()
        .map_err(|e| whole(format!("cannot read it: {e}")))?;
    if !meta.is_file() {
        return Err(whole("not a regular file".into()));
    }
    if meta.len() > MAX_SIZE {
        return Err(whole(format!(
            "{} bytes; a configuration file is at most {MAX_SIZE}",
            meta.len()
        )));
    }
    let mut bytes = Vec::new();
    file.take(MAX_SIZE)
        .read_to_end(&mut bytes)
        .map_err(|e| whole(format!("cannot read it: {e}")))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let offset = e.utf8_error().valid_up_to();
        let text = String::from_utf8_lossy(e.as_bytes()).into_owned();
        ConfigError {
            path: path.to_path_buf(),
            at: Some(line_column(&text, offset)),
            message: "not UTF-8 text".into(),
        }
    })?;
    let mut config = parse(path, &text)?;
    let mode = std::os::unix::fs::PermissionsExt::mode(&meta.permissions());
    if config.inline_password && mode & 0o077 != 0 {
        config.warnings.push(format!(
            "{}: holds passwords and other users may read it (mode {:o}); chmod 600 it, or use passfile",
            path.display(),
            mode & 0o777
        ));
    }
    Ok(config)
}

/// Checks the text of a configuration file; `path` is for messages and for
/// relative paths inside it (resolved against the file's directory).
pub fn parse(path: &Path, text: &str) -> Result<ConfigFile, ConfigError> {
    let error = |span: Option<Range<usize>>, message: String| ConfigError {
        path: path.to_path_buf(),
        at: span.map(|s| line_column(text, s.start)),
        message,
    };
    let raw: RawFile =
        toml::from_str(text).map_err(|e| error(e.span(), e.message().to_string()))?;
    // `ucarp.toml` has the parent "": the current directory. Absolute, so
    // that a script is never looked up in PATH and --daemonize (which
    // moves to /) changes nothing.
    let base = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let base = std::path::absolute(base).unwrap_or_else(|_| base.to_path_buf());
    let checker = Checker { base: &base };
    let at = |e: Located| error(Some(e.span), e.message);
    let facility = match &raw.daemon.facility {
        Some(name) => options::facility(Some(name.get_ref()), "facility")
            .map_err(|e| at(Located::new(name.span(), e)))?,
        None => Facility::Syslog(3),
    };
    let services = daemon_services(&raw.daemon).map_err(at)?;
    let mut vhosts: Vec<VirtualHostSpec> = Vec::new();
    let mut seen: BTreeMap<VirtualHostId, usize> = BTreeMap::new();
    let mut devices: BTreeMap<String, usize> = BTreeMap::new();
    if raw.vhost.is_empty() {
        return Err(error(None, "no [[vhost]]: nothing to run".into()));
    }
    for table in &raw.vhost {
        let merged = table.get_ref().merged_over(&raw.defaults);
        let spec = checker.vhost(&merged, table.span()).map_err(at)?;
        let line = line_column(text, table.span().start).0;
        if let Some(first) = seen.insert(spec.id(), line) {
            let span = merged.vhid.as_ref().map_or(table.span(), Spanned::span);
            return Err(at(Located {
                span,
                message: format!(
                    "vhid: {} is already configured at line {first} (one virtual host per interface and vhid)",
                    spec.id()
                ),
            }));
        }
        if let Some(name) = &spec.vmac {
            if let Some(first) = devices.insert(name.clone(), line) {
                let span = merged
                    .vmac_name
                    .as_ref()
                    .map(Spanned::span)
                    .or_else(|| merged.vmac.as_ref().map(Spanned::span))
                    .unwrap_or(table.span());
                return Err(at(Located {
                    span,
                    message: format!(
                        "vmac: device {name} is already used by the virtual host at line {first}; \
                         give each its own vmac-name"
                    ),
                }));
            }
        }
        vhosts.push(spec);
    }
    Ok(ConfigFile {
        facility,
        debug: raw.daemon.debug.unwrap_or(false),
        shutdown: raw.daemon.shutdown.unwrap_or(false),
        services,
        vhosts,
        inline_password: raw.defaults.password.is_some()
            || raw.vhost.iter().any(|v| v.get_ref().password.is_some()),
        warnings: Vec::new(),
    })
}

/// The virtual MAC device's name, if `vmac = true`: `vmac-name` or
/// `ucarp<vhid>`. It carries owned addresses, so it needs some.
fn vmac(raw: &RawVhost, spec: &VirtualHostSpec) -> Result<Option<String>, Located> {
    let on = raw.vmac.as_ref().filter(|v| *v.get_ref());
    match (on, &raw.vmac_name) {
        (None, None) => Ok(None),
        (None, Some(name)) => Err(Located {
            span: name.span(),
            message: "vmac-name: without vmac = true".into(),
        }),
        (Some(on), name) => {
            if !spec.addresses.iter().any(|a| a.prefix.is_some()) {
                return Err(Located {
                    span: on.span(),
                    message: "vmac: the virtual MAC carries addresses the daemon owns; \
                              give them with a prefix length (addresses = [\"10.0.0.100/24\"])"
                        .into(),
                });
            }
            match name {
                None => Ok(Some(carp_io::vmac::default_name(spec.vhid))),
                Some(name) if carp_io::vmac::valid_name(name.get_ref()) => {
                    Ok(Some(name.get_ref().clone()))
                }
                Some(name) => Err(Located {
                    span: name.span(),
                    message: format!(
                        "vmac-name: {:?} cannot name a network device \
                         (1 to 15 characters, no '/', ':' or spaces)",
                        name.get_ref()
                    ),
                }),
            }
        }
    }
}

/// `[daemon]`'s control-socket, control-group, metrics and events; an
/// error points at the first key that is wrong.
fn daemon_services(daemon: &RawDaemon) -> Result<options::Services, Located> {
    let keys = [
        ("control-socket", &daemon.control_socket),
        ("control-group", &daemon.control_group),
        ("metrics", &daemon.metrics),
        ("events", &daemon.events),
    ];
    let value = |i: usize| keys[i].1.as_ref().map(|v| v.get_ref().as_str());
    options::Services::parse(
        value(0),
        value(1),
        value(2),
        value(3),
        ["control-socket", "control-group", "metrics", "events"],
    )
    .map_err(|e| {
        let span = keys
            .iter()
            .find(|(name, _)| e.0.starts_with(&format!("{name}:")))
            .and_then(|(_, v)| v.as_ref().map(Spanned::span))
            .unwrap_or(0..0);
        Located::new(span, e)
    })
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[start..].chars().count() + 1)
}

/// The file as written. Every table refuses keys it does not know.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    daemon: RawDaemon,
    #[serde(default)]
    defaults: RawVhost,
    #[serde(default)]
    vhost: Vec<Spanned<RawVhost>>,
}

/// `[daemon]`: settings of the process.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDaemon {
    facility: Option<Spanned<String>>,
    debug: Option<bool>,
    shutdown: Option<bool>,
    #[serde(rename = "control-socket")]
    control_socket: Option<Spanned<String>>,
    #[serde(rename = "control-group")]
    control_group: Option<Spanned<String>>,
    metrics: Option<Spanned<String>>,
    events: Option<Spanned<String>>,
}

/// `[[vhost]]` (and `[defaults]`): the command line's per-virtual-host
/// options, by their long names.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawVhost {
    interface: Option<Spanned<String>>,
    srcip: Option<Spanned<OneOrMany>>,
    vhid: Option<Spanned<i64>>,
    addresses: Option<Spanned<Vec<Spanned<String>>>>,
    password: Option<Spanned<String>>,
    passfile: Option<Spanned<String>>,
    advbase: Option<Spanned<i64>>,
    advskew: Option<Spanned<i64>>,
    deadratio: Option<Spanned<i64>>,
    preempt: Option<Spanned<bool>>,
    neutral: Option<Spanned<bool>>,
    ignoreifstate: Option<Spanned<bool>>,
    mcast: Option<Spanned<OneOrMany>>,
    nomcast: Option<Spanned<bool>>,
    upscript: Option<Spanned<String>>,
    downscript: Option<Spanned<String>>,
    xparam: Option<Spanned<String>>,
    script_timeout: Option<Spanned<i64>>,
    peers: Option<Spanned<Vec<Spanned<String>>>>,
    track_interfaces: Option<Spanned<Vec<Spanned<String>>>>,
    track_scripts: Option<Spanned<Vec<Spanned<RawTrackScript>>>>,
    demote: Option<Spanned<i64>>,
    demote_skew: Option<Spanned<bool>>,
    replay: Option<Spanned<String>>,
    garp_refresh: Option<Spanned<i64>>,
    vmac: Option<Spanned<bool>>,
    vmac_name: Option<Spanned<String>>,
    demote_group: Option<Spanned<String>>,
    startup_demote: Option<Spanned<i64>>,
    startup_demote_for: Option<Spanned<i64>>,
    /// `srcip` came from `[defaults]`: only its addresses of the families
    /// this virtual host has apply (an IPv4 default must not break an
    /// IPv6-only virtual host).
    #[serde(skip)]
    srcip_inherited: bool,
    /// `mcast` / `nomcast` came from `[defaults]`: a virtual host with its
    /// own `peers` does not use them, rather than being refused.
    #[serde(skip)]
    group_inherited: bool,
    /// `peers` came from `[defaults]`: only those of the families this
    /// virtual host has apply.
    #[serde(skip)]
    peers_inherited: bool,
}

/// One `track-scripts` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTrackScript {
    command: String,
    interval: Option<i64>,
    timeout: Option<i64>,
    rise: Option<i64>,
    fall: Option<i64>,
    weight: Option<i64>,
}

/// A key that takes one value or a list (one per address family).
#[derive(Debug, Clone)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl<'de> Deserialize<'de> for OneOrMany {
    /// By hand rather than `#[serde(untagged)]`, whose error ("did not
    /// match any variant") does not say what is expected.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = OneOrMany;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string or an array of strings")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<OneOrMany, E> {
                Ok(OneOrMany::One(v.to_string()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<OneOrMany, A::Error> {
                let mut values = Vec::new();
                while let Some(value) = seq.next_element::<String>()? {
                    values.push(value);
                }
                Ok(OneOrMany::Many(values))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

impl OneOrMany {
    fn values(&self) -> Vec<&str> {
        match self {
            OneOrMany::One(one) => vec![one.as_str()],
            OneOrMany::Many(many) => many.iter().map(String::as_str).collect(),
        }
    }
}

impl RawVhost {
    /// This table's keys, and `defaults`' where this one has none.
    fn merged_over(&self, defaults: &RawVhost) -> RawVhost {
        fn or<T: Clone>(own: &Option<T>, default: &Option<T>) -> Option<T> {
            own.clone().or_else(|| default.clone())
        }
        // A password here overrides a passfile in [defaults] and the
        // other way round: the two are one setting.
        let (password, passfile) = if self.password.is_some() || self.passfile.is_some() {
            (self.password.clone(), self.passfile.clone())
        } else {
            (defaults.password.clone(), defaults.passfile.clone())
        };
        RawVhost {
            interface: or(&self.interface, &defaults.interface),
            srcip: or(&self.srcip, &defaults.srcip),
            srcip_inherited: self.srcip.is_none() && defaults.srcip.is_some(),
            group_inherited: self.mcast.is_none() && self.nomcast.is_none(),
            vhid: or(&self.vhid, &defaults.vhid),
            addresses: or(&self.addresses, &defaults.addresses),
            password,
            passfile,
            advbase: or(&self.advbase, &defaults.advbase),
            advskew: or(&self.advskew, &defaults.advskew),
            deadratio: or(&self.deadratio, &defaults.deadratio),
            preempt: or(&self.preempt, &defaults.preempt),
            neutral: or(&self.neutral, &defaults.neutral),
            ignoreifstate: or(&self.ignoreifstate, &defaults.ignoreifstate),
            mcast: or(&self.mcast, &defaults.mcast),
            nomcast: or(&self.nomcast, &defaults.nomcast),
            upscript: or(&self.upscript, &defaults.upscript),
            downscript: or(&self.downscript, &defaults.downscript),
            xparam: or(&self.xparam, &defaults.xparam),
            script_timeout: or(&self.script_timeout, &defaults.script_timeout),
            peers: or(&self.peers, &defaults.peers),
            peers_inherited: self.peers.is_none() && defaults.peers.is_some(),
            track_interfaces: or(&self.track_interfaces, &defaults.track_interfaces),
            track_scripts: or(&self.track_scripts, &defaults.track_scripts),
            demote: or(&self.demote, &defaults.demote),
            demote_skew: or(&self.demote_skew, &defaults.demote_skew),
            replay: or(&self.replay, &defaults.replay),
            garp_refresh: or(&self.garp_refresh, &defaults.garp_refresh),
            vmac: or(&self.vmac, &defaults.vmac),
            vmac_name: or(&self.vmac_name, &defaults.vmac_name),
            demote_group: or(&self.demote_group, &defaults.demote_group),
            startup_demote: or(&self.startup_demote, &defaults.startup_demote),
            startup_demote_for: or(&self.startup_demote_for, &defaults.startup_demote_for),
        }
    }
}

/// A problem at a place in the file.
struct Located {
    span: Range<usize>,
    message: String,
}

impl Located {
    fn new(span: Range<usize>, error: UsageError) -> Located {
        Located {
            span,
            message: error.0,
        }
    }
}

/// Checks one virtual host's keys with the command line's checks.
struct Checker<'a> {
    /// The file's directory: relative script and passfile paths start here.
    base: &'a Path,
}

impl Checker<'_> {
    fn vhost(&self, raw: &RawVhost, table: Range<usize>) -> Result<VirtualHostSpec, Located> {
        let missing = |key: &str| Located {
            span: table.clone(),
            message: format!("{key}: missing in this [[vhost]] (and in [defaults])"),
        };
        let interface = raw.interface.as_ref().ok_or_else(|| missing("interface"))?;
        if interface.get_ref().is_empty() {
            return Err(Located {
                span: interface.span(),
                message: "interface: empty".into(),
            });
        }
        let vhid = number(
            raw.vhid.as_ref().ok_or_else(|| missing("vhid"))?,
            "vhid",
            1..=255,
        )? as u8;
        let addresses = self.addresses(raw, &missing)?;
        let sources = match &raw.srcip {
            Some(srcip) => {
                let mut sources = located(srcip, |v| {
                    v.values()
                        .into_iter()
                        .map(|v| options::unicast_ip(v, "srcip"))
                        .collect::<Result<Vec<IpAddr>, _>>()
                })?;
                if raw.srcip_inherited {
                    sources.retain(|s| addresses.iter().any(|a| a.addr.is_ipv4() == s.is_ipv4()));
                }
                sources
            }
            None if addresses.iter().any(|a| a.addr.is_ipv4()) => {
                return Err(missing("srcip"));
            }
            None => Vec::new(),
        };
        let password = self.password(raw, &missing)?;
        let mut spec =
            VirtualHostSpec::new(interface.get_ref(), vhid, password, sources, addresses);
        if let Err(e) = spec.check_sources() {
            let span = raw.srcip.as_ref().map_or(table.clone(), Spanned::span);
            return Err(Located {
                span,
                message: format!("srcip: {e}"),
            });
        }
        if let Some(v) = &raw.advbase {
            spec.advbase = number(v, "advbase", 0..=255)? as u8;
        }
        if let Some(v) = &raw.advskew {
            spec.advskew = number(v, "advskew", 0..=255)? as u8;
        }
        if let Some(v) = &raw.deadratio {
            spec.deadratio = number(v, "deadratio", 1..=i64::from(u16::MAX))? as u32;
        }
        let interval_span = raw
            .advbase
            .as_ref()
            .or(raw.advskew.as_ref())
            .map_or(table.clone(), Spanned::span);
        options::check_interval(spec.advbase, spec.advskew, "advbase", "advskew")
            .map_err(|e| Located::new(interval_span, e))?;
        let flag = |v: &Option<Spanned<bool>>| v.as_ref().is_some_and(|b| *b.get_ref());
        spec.preempt = flag(&raw.preempt);
        spec.neutral = flag(&raw.neutral);
        spec.ignore_link_state = flag(&raw.ignoreifstate);
        spec.broadcast = flag(&raw.nomcast);
        if let Some(groups) = &raw.mcast {
            let mut given = Vec::new();
            let broadcast = spec.broadcast.then_some("nomcast");
            for value in groups.get_ref().values() {
                located(groups, |_| {
                    options::set_group(&mut spec, &mut given, value, "mcast", broadcast)
                })?;
            }
        }
        if let Some(peers) = &raw.peers {
            for given in peers.get_ref() {
                let peer = located(given, |v| options::unicast_ip(v, "peers"))?;
                let has_family = spec
                    .addresses
                    .iter()
                    .any(|a| a.addr.is_ipv4() == peer.is_ipv4());
                if raw.peers_inherited && !has_family {
                    continue;
                }
                if spec.peers.contains(&peer) {
                    return Err(Located {
                        span: given.span(),
                        message: format!("peers: {peer} is given twice"),
                    });
                }
                spec.peers.push(peer);
            }
            let mcast = raw.mcast.as_ref().map(|_| "mcast");
            spec.peers.sort();
            let mcast = if raw.group_inherited && !spec.peers.is_empty() {
                spec.broadcast = false;
                spec.group = carp_proto::DEFAULT_GROUP;
                spec.group6 = carp_proto::DEFAULT_GROUP6;
                None
            } else {
                mcast
            };
            located(peers, |_| {
                options::check_peers(&spec, "peers", mcast, "nomcast")
            })?;
        }
        if let Some(v) = &raw.demote {
            spec.demote = number(v, "demote", 0..=255)? as u8;
        }
        if let Some(v) = &raw.demote_skew {
            spec.demote_skew = *v.get_ref();
        }
        if let Some(v) = &raw.garp_refresh {
            spec.garp_refresh = Some(Duration::from_secs(
                number(v, "garp-refresh", 1..=86400)? as u64
            ));
        }
        if let Some(v) = &raw.replay {
            spec.replay = options::replay_mode(v.get_ref(), "replay")
                .map_err(|e| Located::new(v.span(), e))?;
        }
        spec.vmac = vmac(raw, &spec)?;
        if let Some(group) = &raw.demote_group {
            if group.get_ref().is_empty() {
                return Err(Located {
                    span: group.span(),
                    message: "demote-group: empty".into(),
                });
            }
            spec.demote_group = Some(group.get_ref().clone());
        }
        match (&raw.startup_demote, &raw.startup_demote_for) {
            (Some(demote), Some(seconds)) => {
                spec.startup_demote = (
                    number(demote, "startup-demote", 1..=255)? as u8,
                    Duration::from_secs(number(seconds, "startup-demote-for", 1..=86400)? as u64),
                );
            }
            (None, None) => {}
            (Some(given), None) | (None, Some(given)) => {
                return Err(Located {
                    span: given.span(),
                    message: "startup-demote and startup-demote-for go together".into(),
                })
            }
        }
        for given in raw.track_scripts.iter().flat_map(|t| t.get_ref()) {
            let script = located(given, |raw: &RawTrackScript| {
                let text = |v: Option<i64>| v.map(|n| n.to_string());
                let values = [
                    text(raw.interval),
                    text(raw.timeout),
                    text(raw.rise),
                    text(raw.fall),
                    text(raw.weight),
                ];
                let names = [
                    "track-scripts: interval",
                    "track-scripts: timeout",
                    "track-scripts: rise",
                    "track-scripts: fall",
                    "track-scripts: weight",
                ];
                let pairs: [(Option<&str>, &str); 5] =
                    std::array::from_fn(|i| (values[i].as_deref(), names[i]));
                options::track_script(&raw.command, pairs)
            })?;
            spec.track_scripts.push(script);
        }
        for given in raw.track_interfaces.iter().flat_map(|t| t.get_ref()) {
            let tracked = located(given, |v| options::tracked_interface(v, "track-interfaces"))?;
            if spec.track_interfaces.iter().any(|t| t.name == tracked.name) {
                return Err(Located {
                    span: given.span(),
                    message: format!("track-interfaces: {} is given twice", tracked.name),
                });
            }
            spec.track_interfaces.push(tracked);
        }
        spec.scripts = ScriptSpec {
            up: self.script(&raw.upscript, "upscript")?,
            down: self.script(&raw.downscript, "downscript")?,
            xparam: raw.xparam.as_ref().map(|x| x.get_ref().clone()),
            timeout: match &raw.script_timeout {
                Some(v) => Duration::from_secs(number(v, "script-timeout", 1..=3600)? as u64),
                None => ScriptSpec::default().timeout,
            },
        };
        Ok(spec)
    }

    fn addresses(
        &self,
        raw: &RawVhost,
        missing: &dyn Fn(&str) -> Located,
    ) -> Result<Vec<VirtualAddress>, Located> {
        let list = raw.addresses.as_ref().ok_or_else(|| missing("addresses"))?;
        if list.get_ref().is_empty() {
            return Err(Located {
                span: list.span(),
                message: "addresses: empty; give at least one virtual address".into(),
            });
        }
        let mut addresses: Vec<VirtualAddress> = Vec::new();
        for given in list.get_ref() {
            let address = located(given, |v| options::virtual_address(v, "addresses"))?;
            if addresses.iter().any(|a| a.addr == address.addr) {
                return Err(Located {
                    span: given.span(),
                    message: format!("addresses: {} is given twice", address.addr),
                });
            }
            addresses.push(address);
        }
        Ok(addresses)
    }

    fn password(
        &self,
        raw: &RawVhost,
        missing: &dyn Fn(&str) -> Located,
    ) -> Result<Password, Located> {
        match (&raw.password, &raw.passfile) {
            (Some(_), Some(file)) => Err(Located {
                span: file.span(),
                message: "passfile: give either password or passfile, not both".into(),
            }),
            (Some(pass), None) => located(pass, |v| {
                Password::new(v.as_bytes()).map_err(|e| UsageError(format!("password: {e}")))
            }),
            (None, Some(file)) => {
                let path = self.path(file.get_ref());
                located(file, |_| options::read_passfile(&path, "passfile"))
            }
            (None, None) => Err(missing("password (or passfile)")),
        }
    }

    fn script(
        &self,
        value: &Option<Spanned<String>>,
        key: &str,
    ) -> Result<Option<PathBuf>, Located> {
        let Some(value) = value else { return Ok(None) };
        let path = self.path(value.get_ref());
        located(value, |_| options::check_script(&Some(path.clone()), key))?;
        Ok(Some(path))
    }

    /// Relative paths start at the file's directory.
    fn path(&self, value: &str) -> PathBuf {
        self.base.join(value)
    }
}

/// Runs a command-line check on a value, placing its error at the value.
fn located<T, R>(
    value: &Spanned<T>,
    check: impl FnOnce(&T) -> Result<R, UsageError>,
) -> Result<R, Located> {
    check(value.get_ref()).map_err(|e| Located::new(value.span(), e))
}

/// An integer in `range`, worded as the command line words it.
fn number(
    value: &Spanned<i64>,
    key: &str,
    range: std::ops::RangeInclusive<i64>,
) -> Result<i64, Located> {
    let v = *value.get_ref();
    if range.contains(&v) {
        Ok(v)
    } else {
        Err(Located {
            span: value.span(),
            message: format!(
                "{key}: {v} is out of range {}..={}",
                range.start(),
                range.end()
            ),
        })
    }
}

/// Every key the file format knows, per table: taken from the parser's own
/// refusal of an unknown key, so the documentation test cannot go stale.
#[cfg(test)]
pub fn known_keys(table: &str) -> Vec<String> {
    let text = match table {
        "" => "bogus = 1\n".to_string(),
        "vhost" => "[[vhost]]\nbogus = 1\n".to_string(),
        other => format!("[{other}]\nbogus = 1\n"),
    };
    let error = toml::from_str::<RawFile>(&text).unwrap_err();
    let message = error.message();
    let list = message.split("expected").nth(1).unwrap_or("");
    list.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory with a password file and two executable scripts.
    fn files(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ucarp-config-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("password"), "s3cret\n").unwrap();
        for script in ["vip-up.sh", "vip-down.sh"] {
            let path = dir.join(script);
            std::fs::write(&path, "#!/bin/sh\n").unwrap();
            let mode = std::os::unix::fs::PermissionsExt::from_mode(0o755);
            std::fs::set_permissions(&path, mode).unwrap();
        }
        dir
    }

    fn check(text: &str) -> Result<ConfigFile, ConfigError> {
        parse(Path::new("/etc/ucarp/test.toml"), text)
    }

    /// The error's `file:line:column: message`.
    fn refusal(text: &str) -> String {
        check(text).unwrap_err().to_string()
    }

    const ONE: &str = "[[vhost]]\ninterface = \"eth0\"\nsrcip = \"10.0.0.1\"\nvhid = 1\n\
                       password = \"pw\"\naddresses = [\"10.0.0.100\"]\n";

    #[test]
    fn the_shipped_example_is_accepted() {
        let dir = files("example");
        let text = include_str!("../../docs/ucarp.toml")
            .replace("/etc/ucarp/", &format!("{}/", dir.display()));
        let file = check(&text).unwrap();
        assert_eq!(file.vhosts.len(), 6);
        assert!(file.shutdown);
        let first = &file.vhosts[0];
        assert_eq!((first.interface.as_str(), first.vhid), ("eth0", 1));
        assert_eq!(first.addresses.len(), 2);
        assert_eq!(first.password, Password::new(b"s3cret").unwrap());
        assert!(first.preempt);
        assert_eq!(first.scripts.up, Some(dir.join("vip-up.sh")));
        assert_eq!(file.vhosts[1].advskew, 100);
        assert_eq!(file.vhosts[2].vmac.as_deref(), Some("vip-web"));
        assert_eq!(file.vhosts[3].interface, "eth1");
        let dual = &file.vhosts[4];
        assert_eq!(dual.addresses.len(), 2);
        assert_eq!(dual.sources, ["192.168.1.1".parse::<IpAddr>().unwrap()]);
        assert!(dual.needs_link_local());
        assert_eq!(dual.group6, carp_proto::DEFAULT_GROUP6);
        assert_eq!(
            file.vhosts[5].peers,
            ["192.168.1.2".parse::<IpAddr>().unwrap()]
        );
    }

    #[test]
    fn a_virtual_mac_needs_owned_addresses_and_a_device_of_its_own() {
        let owned = ONE.replace("10.0.0.100\"", "10.0.0.100/24\"");
        let file = check(&format!("{owned}vmac = true\n")).unwrap();
        assert_eq!(file.vhosts[0].vmac.as_deref(), Some("ucarp1"));
        assert!(refusal(&format!("{ONE}vmac = true\n"))
            .starts_with("/etc/ucarp/test.toml:7:8: vmac: the virtual MAC carries addresses"));
        assert_eq!(
            refusal(&format!("{owned}vmac-name = \"vip\"\n")),
            "/etc/ucarp/test.toml:7:13: vmac-name: without vmac = true"
        );
        assert!(
            refusal(&format!("{owned}vmac = true\nvmac-name = \"a:b\"\n"))
                .starts_with("/etc/ucarp/test.toml:8:13: vmac-name: \"a:b\" cannot name"),
        );
        let second = owned.replace("vhid = 1", "vhid = 2");
        let shared = format!(
            "{owned}vmac = true\nvmac-name = \"vip\"\n{second}vmac = true\nvmac-name = \"vip\"\n"
        );
        assert_eq!(
            refusal(&shared),
            "/etc/ucarp/test.toml:16:13: vmac: device vip is already used by the virtual host \
             at line 1; give each its own vmac-name"
        );
    }

    #[test]
    fn unicast_peers() {
        let text = format!("{ONE}peers = [\"10.0.0.2\", \"10.0.0.3\"]\n");
        assert_eq!(check(&text).unwrap().vhosts[0].peers.len(), 2);
        assert_eq!(
            refusal(&format!("{ONE}peers = [\"10.0.0.2\"]\nnomcast = true\n")),
            "/etc/ucarp/test.toml:7:9: peers: unicast peers and nomcast exclude each other \
             (adverts go to the peers)"
        );
        assert_eq!(
            refusal(&format!("{ONE}peers = [\"10.0.0.2\", \"10.0.0.2\"]\n")),
            "/etc/ucarp/test.toml:7:22: peers: 10.0.0.2 is given twice"
        );
        assert_eq!(
            refusal(&format!("{ONE}peers = [\"2001:db8::2\"]\n")),
            "/etc/ucarp/test.toml:7:9: peers: peer 2001:db8::2 is of a family none of the \
             virtual addresses has"
        );
        assert_eq!(
            refusal(&format!("{ONE}peers = [\"10.0.0.1\"]\n")),
            "/etc/ucarp/test.toml:7:9: peers: 10.0.0.1 is our own source address"
        );
    }

    #[test]
    fn an_ipv4_default_source_does_not_break_an_ipv6_only_virtual_host() {
        let text = "[defaults]\nsrcip = \"10.0.0.1\"\ninterface = \"eth0\"\npassword = \"pw\"\n\
                    [[vhost]]\nvhid = 1\naddresses = [\"10.0.0.9\"]\n\
                    [[vhost]]\nvhid = 2\naddresses = [\"2001:db8::9\"]\n";
        let file = check(text).unwrap();
        assert_eq!(file.vhosts[0].sources.len(), 1);
        assert!(file.vhosts[1].sources.is_empty());
        // Given in the table itself, it is an error.
        let own = format!("{text}srcip = \"10.0.0.1\"\n");
        assert!(refusal(&own).contains("10.0.0.1 is of a family none"));
        assert_eq!(
            refusal(&format!("{text}mcast = 5\n")),
            "/etc/ucarp/test.toml:11:9: invalid type: integer `5`, expected a string or an \
             array of strings"
        );
    }

    #[test]
    fn ipv6_virtual_hosts() {
        let v6 = "[[vhost]]\ninterface = \"eth0\"\nvhid = 3\npassword = \"pw\"\n\
                  addresses = [\"2001:db8::3\"]\n";
        let file = check(v6).unwrap();
        assert!(file.vhosts[0].sources.is_empty());
        let chosen = format!("{v6}srcip = \"2001:db8::1\"\nmcast = \"ff05::12\"\n");
        let file = check(&chosen).unwrap();
        assert_eq!(
            file.vhosts[0].sources,
            ["2001:db8::1".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(
            file.vhosts[0].group6,
            "ff05::12".parse::<std::net::Ipv6Addr>().unwrap()
        );
        let dual = "[[vhost]]\ninterface = \"eth0\"\nvhid = 3\npassword = \"pw\"\n\
                    addresses = [\"2001:db8::3\", \"10.0.0.3\"]\n\
                    srcip = [\"10.0.0.1\", \"fe80::1\"]\n";
        assert_eq!(check(dual).unwrap().vhosts[0].sources.len(), 2);
        assert_eq!(
            refusal(&format!("{v6}srcip = \"10.0.0.1\"\n")),
            "/etc/ucarp/test.toml:6:9: srcip: source address 10.0.0.1 is of a family none of the \
             virtual addresses has"
        );
        assert_eq!(
            refusal(&format!("{v6}mcast = [\"ff02::12\", \"ff05::12\"]\n")),
            "/etc/ucarp/test.toml:6:9: mcast: two groups of one family (ff02::12 and ff05::12); \
             give one per family"
        );
        assert_eq!(
            refusal(
                &dual
                    .replace("[\"2001:db8::3\", \"10.0.0.3\"]", "[\"10.0.0.3\"]")
                    .replace(", \"fe80::1\"", "")
                    .replace("srcip = [\"10.0.0.1\"]\n", "")
            ),
            "/etc/ucarp/test.toml:1:1: srcip: missing in this [[vhost]] (and in [defaults])"
        );
    }

    #[test]
    fn every_key_is_documented_and_in_the_example() {
        let man = include_str!("../../docs/ucarp.toml.5");
        let example = include_str!("../../docs/ucarp.toml");
        let tables = known_keys("");
        assert_eq!(tables, ["daemon", "defaults", "vhost"]);
        for table in ["daemon", "vhost"] {
            let keys = known_keys(table);
            assert!(keys.len() >= 3, "{table}: {keys:?}");
            for key in keys {
                let escaped = key.replace('-', "\\-");
                assert!(
                    man.contains(&format!(".B {escaped}")),
                    "ucarp.toml.5 does not document [{table}] {key}"
                );
                assert!(
                    example.contains(&format!("{key} =")),
                    "the example does not show [{table}] {key}"
                );
            }
        }
        for table in tables {
            assert!(man.contains(&format!("[{table}]")) || man.contains(&format!("[[{table}]]")));
        }
    }

    #[test]
    fn one_virtual_host_with_defaults_and_paths_relative_to_the_file() {
        let dir = files("relative");
        let text = "[defaults]\ninterface = \"eth0\"\nsrcip = \"10.0.0.1\"\npassfile = \"password\"\n\
                    upscript = \"vip-up.sh\"\n[[vhost]]\nvhid = 9\naddresses = [\"10.0.0.9\", \"10.0.0.8\"]\n";
        let file = parse(&dir.join("ucarp.toml"), text).unwrap();
        let v = &file.vhosts[0];
        assert_eq!(v.scripts.up, Some(dir.join("vip-up.sh")));
        assert_eq!(v.password, Password::new(b"s3cret").unwrap());
        let given: Vec<&str> = v.addresses.iter().map(|a| a.as_given.as_str()).collect();
        assert_eq!(given, ["10.0.0.9", "10.0.0.8"]);
        assert!(!file.inline_password);
        assert_eq!((v.advbase, v.advskew, v.deadratio), (1, 0, 3));
    }

    #[test]
    fn relative_paths_in_a_file_named_without_a_directory_start_in_the_current_one() {
        let text = ONE.replace("password = \"pw\"", "passfile = \"no-such-passfile\"");
        let e = parse(Path::new("ucarp.toml"), &text)
            .unwrap_err()
            .to_string();
        let cwd = std::env::current_dir().unwrap();
        let expected = format!("passfile: cannot read {}/no-such-passfile:", cwd.display());
        assert!(e.contains(&expected), "{e}");
    }

    #[test]
    fn unknown_keys_are_refused_where_they_are() {
        let text = format!("{ONE}advskw = 5\n");
        let e = refusal(&text);
        assert!(
            e.starts_with("/etc/ucarp/test.toml:7:1: unknown field `advskw`"),
            "{e}"
        );
        let e = refusal("[daemon]\nfacilty = \"daemon\"\n");
        assert!(
            e.starts_with("/etc/ucarp/test.toml:2:1: unknown field `facilty`"),
            "{e}"
        );
        let e = refusal("[deamon]\n");
        assert!(e.contains("unknown field `deamon`"), "{e}");
    }

    #[test]
    fn bad_values_are_refused_naming_the_key_and_place() {
        let cases = [
            (
                "vhid = 1",
                "vhid = 0",
                "4:8: vhid: 0 is out of range 1..=255",
            ),
            (
                "vhid = 1",
                "vhid = \"one\"",
                "4:8: invalid type: string \"one\", expected i64",
            ),
            (
                "srcip = \"10.0.0.1\"",
                "srcip = \"224.0.0.1\"",
                "3:9: srcip: 224.0.0.1 is a multicast address",
            ),
            (
                "[\"10.0.0.100\"]",
                "[\"10.0.0.100\", \"10.0.0.100\"]",
                "6:28: addresses: 10.0.0.100 is given twice",
            ),
            ("[\"10.0.0.100\"]", "[]", "6:13: addresses: empty"),
            (
                "password = \"pw\"",
                "password = \"01234567890123456789x\"",
                "5:12: password:",
            ),
        ];
        for (from, to, expected) in cases {
            let text = ONE.replace(from, to);
            let e = refusal(&text);
            assert!(
                e.starts_with(&format!("/etc/ucarp/test.toml:{expected}")),
                "{to}: {e}"
            );
        }
        let e = refusal(&format!("{ONE}advbase = 0\nadvskew = 0\n"));
        assert!(e.contains(":7:11: advbase 0 needs advskew above 0"), "{e}");
        let e = refusal(&format!("{ONE}advbase = 256\n"));
        assert!(
            e.contains(":7:11: advbase: 256 is out of range 0..=255"),
            "{e}"
        );
        let e = refusal(&format!("{ONE}mcast = \"10.0.0.1\"\n"));
        assert!(
            e.contains(":7:9: mcast: 10.0.0.1 is not a multicast address"),
            "{e}"
        );
        let e = refusal(&format!("{ONE}script-timeout = 0\n"));
        assert!(
            e.contains(":7:18: script-timeout: 0 is out of range 1..=3600"),
            "{e}"
        );
        let e = refusal(&format!("{ONE}upscript = \"/nonexistent/up.sh\"\n"));
        assert!(
            e.contains(":7:12: upscript: /nonexistent/up.sh: No such file"),
            "{e}"
        );
    }

    #[test]
    fn missing_duplicate_and_conflicting_settings_are_refused() {
        let e = refusal(&ONE.replace("vhid = 1\n", ""));
        assert!(
            e.contains("test.toml:1:1: vhid: missing in this [[vhost]]"),
            "{e}"
        );
        let e = refusal(&format!("{ONE}{ONE}"));
        assert!(
            e.contains("test.toml:10:8: vhid: vhid 1 on eth0 is already configured at line 1"),
            "{e}"
        );
        // The same vhid on another interface is another virtual host.
        assert_eq!(
            check(&format!("{ONE}{}", ONE.replace("eth0", "eth1")))
                .unwrap()
                .vhosts
                .len(),
            2
        );
        let e = refusal(&format!("{ONE}passfile = \"/etc/ucarp/password\"\n"));
        assert!(
            e.contains(":7:12: passfile: give either password or passfile, not both"),
            "{e}"
        );
        let e = refusal(&ONE.replace("password = \"pw\"", "passfile = \"/nonexistent/pw\""));
        assert!(
            e.contains(":5:12: passfile: cannot read /nonexistent/pw: No such file"),
            "{e}"
        );
        let e = refusal("[daemon]\nfacility = \"local9\"\n[[vhost]]\n");
        assert!(
            e.contains(":2:12: facility: unknown facility \"local9\""),
            "{e}"
        );
        let e = refusal("[daemon]\nshutdown = true\n");
        assert_eq!(e, "/etc/ucarp/test.toml: no [[vhost]]: nothing to run");
        let e = refusal("[[vhost]\n");
        assert!(e.starts_with("/etc/ucarp/test.toml:1:"), "{e}");
    }

    #[test]
    fn a_file_that_is_not_a_regular_file_is_refused_without_hanging() {
        let dir = files("fifo");
        let fifo = dir.join("fifo.toml");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let e = load(&fifo).unwrap_err().to_string();
        assert!(e.ends_with("fifo.toml: not a regular file"), "{e}");
        let e = load(&dir.join("missing.toml")).unwrap_err().to_string();
        assert!(
            e.contains("missing.toml: cannot read it: No such file"),
            "{e}"
        );
    }

    #[test]
    fn inline_passwords_in_a_readable_file_are_warned_about() {
        let dir = files("mode");
        let path = dir.join("ucarp.toml");
        std::fs::write(&path, ONE).unwrap();
        let set = |mode| {
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(mode))
                .unwrap()
        };
        set(0o644);
        let warnings = load(&path).unwrap().warnings;
        assert!(
            warnings.iter().any(|w| w.contains("chmod 600")),
            "{warnings:?}"
        );
        set(0o600);
        assert!(load(&path).unwrap().warnings.is_empty());
    }
}
