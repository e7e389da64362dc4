//! The command line in two stages, as ripgrep does: clap reads raw flags
//! (every UCARP option, long and short), then [`Options::validate`] turns
//! them into checked values with messages naming the option and the value.

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use carp_io::{ScriptSpec, VirtualAddress, VirtualHostSpec};
use carp_proto::Password;
use clap::{ArgAction, Parser};

/// The flags as given. Values stay strings so that validation, not clap,
/// words the errors.
#[derive(Debug, Parser)]
#[command(
    name = "ucarp",
    disable_help_flag = true,
    disable_version_flag = true,
    // getopt_long accepts unambiguous prefixes (`--inter=eth0`); so do we.
    infer_long_args = true,
    // As with getopt, a repeated option takes its last value.
    args_override_self = true
)]
pub struct RawArgs {
    #[arg(short = 'i', long = "interface")]
    interface: Option<String>,
    /// Repeatable: one source per address family.
    #[arg(short = 's', long = "srcip", action = ArgAction::Append)]
    srcip: Vec<String>,
    /// Repeatable: one group per address family.
    #[arg(short = 'm', long = "mcast", alias = "mcastip", action = ArgAction::Append)]
    mcast: Vec<String>,
    #[arg(short = 'v', long = "vhid")]
    vhid: Option<String>,
    #[arg(short = 'p', long = "pass")]
    pass: Option<String>,
    #[arg(short = 'o', long = "passfile")]
    passfile: Option<PathBuf>,
    #[arg(short = 'P', long = "preempt")]
    preempt: bool,
    #[arg(short = 'n', long = "neutral")]
    neutral: bool,
    /// Repeatable: every address of the virtual host.
    #[arg(short = 'a', long = "addr", action = ArgAction::Append)]
    addr: Vec<String>,
    #[arg(short = 'h', long = "help", action = ArgAction::SetTrue)]
    pub help: bool,
    #[arg(short = 'b', long = "advbase")]
    advbase: Option<String>,
    #[arg(short = 'k', long = "advskew")]
    advskew: Option<String>,
    #[arg(short = 'u', long = "upscript")]
    upscript: Option<PathBuf>,
    #[arg(short = 'd', long = "downscript")]
    downscript: Option<PathBuf>,
    #[arg(short = 'r', long = "deadratio")]
    deadratio: Option<String>,
    #[arg(short = 'D', long = "debug")]
    debug: bool,
    #[arg(short = 'z', long = "shutdown")]
    shutdown: bool,
    #[arg(short = 'f', long = "facility")]
    facility: Option<String>,
    #[arg(short = 'B', long = "daemonize")]
    daemonize: bool,
    #[arg(short = 'S', long = "ignoreifstate")]
    ignoreifstate: bool,
    #[arg(short = 'M', long = "nomcast")]
    nomcast: bool,
    #[arg(short = 'x', long = "xparam")]
    xparam: Option<String>,
    /// Not in UCARP 1.5.2: how long a script may run before it is killed.
    #[arg(long = "script-timeout")]
    script_timeout: Option<String>,
    /// Repeatable: unicast peers instead of the multicast group.
    #[arg(long = "peer", action = ArgAction::Append)]
    peer: Vec<String>,
    /// Repeatable: `IF[:WEIGHT]`, an interface whose carrier loss demotes.
    #[arg(long = "track-interface", action = ArgAction::Append)]
    track_interface: Vec<String>,
    /// Repeatable: a health check command (`/bin/sh -c`); the settings
    /// below apply to every one given on the command line.
    #[arg(long = "track-script", action = ArgAction::Append)]
    track_script: Vec<String>,
    #[arg(long = "track-interval")]
    track_interval: Option<String>,
    #[arg(long = "track-timeout")]
    track_timeout: Option<String>,
    #[arg(long = "track-rise")]
    track_rise: Option<String>,
    #[arg(long = "track-fall")]
    track_fall: Option<String>,
    #[arg(long = "track-weight")]
    track_weight: Option<String>,
    /// `N:SECONDS`: demoted by N for that long after start.
    #[arg(long = "startup-demote")]
    startup_demote: Option<String>,
    /// Do not add the demotion to the advertised skew (UCARP peers then
    /// do not see it).
    #[arg(long = "no-demote-skew")]
    no_demote_skew: bool,
    /// enforce, strict, permissive or off.
    #[arg(long = "replay")]
    replay: Option<String>,
    /// Seconds between re-announcements while master.
    #[arg(long = "garp-refresh")]
    garp_refresh: Option<String>,
    /// The owned addresses on a virtual MAC device.
    #[arg(long = "vmac")]
    vmac: bool,
    /// That device's name (default ucarp<vhid>).
    #[arg(long = "vmac-name")]
    vmac_name: Option<String>,
    /// The control socket's path, or `none`.
    #[arg(long = "control-socket")]
    control_socket: Option<String>,
    /// A group that may use the control socket too.
    #[arg(long = "control-group")]
    control_group: Option<String>,
    /// `ADDR:PORT` to serve Prometheus metrics on.
    #[arg(long = "metrics")]
    metrics: Option<String>,
    /// A FIFO receiving one JSON line per transition.
    #[arg(long = "events")]
    events: Option<String>,
    /// Not in UCARP 1.5.2: every setting from a file (ucarp.toml(5)).
    #[arg(long = "config")]
    config: Option<PathBuf>,
    /// Not in UCARP 1.5.2: check a configuration file and exit.
    #[arg(long = "check-config")]
    check_config: Option<PathBuf>,
}

/// What the command line asks for.
#[derive(Debug, Clone)]
pub enum Mode {
    /// UCARP's form: one virtual host, all on the command line.
    CommandLine(Box<Options>),
    /// `--config FILE`: everything from the file; `-B` and `-D` may be
    /// added on the command line.
    ConfigFile {
        /// The file.
        path: PathBuf,
        /// `-B`
        daemonize: bool,
        /// `-D` (debug also if the file says so)
        debug: bool,
    },
    /// `--check-config FILE`: check it, say so, exit.
    CheckConfig(PathBuf),
}

/// Syslog facility, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Facility {
    /// Log to syslog with this facility code.
    Syslog(u8),
    /// `--facility=none`: no syslog.
    None,
}

/// A validated command line: one virtual host, and how the daemon runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Everything per virtual host (`-i -s -v -p/-o -a -b -k -r -P -n -S
    /// -m -M -u -d -x --script-timeout`).
    pub vhost: VirtualHostSpec,
    /// `-D`
    pub debug: bool,
    /// `-z`
    pub shutdown: bool,
    /// `-f`
    pub facility: Facility,
    /// `-B`
    pub daemonize: bool,
    /// Control socket, metrics, events.
    pub services: Services,
    /// Things worth a warning that do not stop us.
    pub warnings: Vec<String>,
}

/// What the daemon offers besides CARP: the control socket, metrics and
/// the event FIFO (`--control-socket --control-group --metrics --events`,
/// or `[daemon]` keys of the same names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Services {
    pub control_socket: crate::control::SocketSetting,
    pub control_group: Option<String>,
    pub metrics: Option<std::net::SocketAddr>,
    pub events: Option<PathBuf>,
}

impl Default for Services {
    fn default() -> Services {
        Services {
            control_socket: crate::control::SocketSetting::Default,
            control_group: None,
            metrics: None,
            events: None,
        }
    }
}

impl Services {
    /// Checks the values as given; `names` are the option (or key) names
    /// for messages: control-socket, control-group, metrics, events.
    pub fn parse(
        control_socket: Option<&str>,
        control_group: Option<&str>,
        metrics: Option<&str>,
        events: Option<&str>,
        names: [&str; 4],
    ) -> Result<Services, UsageError> {
        let control_socket = control_socket.map_or(
            crate::control::SocketSetting::Default,
            crate::control::SocketSetting::parse,
        );
        if let crate::control::SocketSetting::Path(path) = &control_socket {
            if !path.is_absolute() {
                return fail(format!("{}: {path:?} is not an absolute path", names[0]));
            }
        }
        if let Some(group) = control_group {
            if nix::unistd::Group::from_name(group)
                .ok()
                .flatten()
                .is_none()
            {
                return fail(format!("{}: no group {group:?} (see /etc/group)", names[1]));
            }
        }
        let metrics = match metrics {
            None => None,
            Some(value) => Some(value.parse().or_else(|_| {
                fail(format!(
                    "{}: {value:?} is not ADDRESS:PORT (127.0.0.1:9237, [::1]:9237)",
                    names[2]
                ))
            })?),
        };
        let events = match events {
            None => None,
            Some(value) if Path::new(value).is_absolute() => Some(PathBuf::from(value)),
            Some(value) => return fail(format!("{}: {value:?} is not an absolute path", names[3])),
        };
        Ok(Services {
            control_socket,
            control_group: control_group.map(str::to_string),
            metrics,
            events,
        })
    }
}

/// A command line we refuse, worded for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn fail<T>(message: String) -> Result<T, UsageError> {
    Err(UsageError(message))
}

/// `enforce`, `strict`, `permissive` or `off`.
pub(crate) fn replay_mode(
    value: &str,
    option: &str,
) -> Result<carp_engine::ReplayMode, UsageError> {
    use carp_engine::ReplayMode;
    match value {
        "enforce" => Ok(ReplayMode::Enforce),
        "strict" => Ok(ReplayMode::Strict),
        "permissive" => Ok(ReplayMode::Permissive),
        "off" => Ok(ReplayMode::Off),
        other => fail(format!(
            "{option}: {other:?} is not enforce, strict, permissive or off"
        )),
    }
}

/// A virtual address, optionally with a prefix length (`10.1.1.252/24`,
/// `2001:db8::10/64`): then the daemon owns it.
pub(crate) fn virtual_address(given: &str, option: &str) -> Result<VirtualAddress, UsageError> {
    let (text, prefix) = match given.split_once('/') {
        Some((text, prefix)) => (text, Some(prefix)),
        None => (given, None),
    };
    let addr = unicast_ip(text, option)?;
    let prefix = match prefix {
        None => None,
        Some(p) => {
            let max = if addr.is_ipv4() { 32 } else { 128 };
            match p.parse::<u8>() {
                Ok(n) if n >= 1 && n <= max => Some(n),
                _ => {
                    return fail(format!(
                        "{option}: {given:?}: the prefix length must be 1 to {max}"
                    ))
                }
            }
        }
    };
    Ok(VirtualAddress {
        addr,
        as_given: text.to_string(),
        prefix,
    })
}

fn required<'a>(value: &'a Option<String>, option: &str) -> Result<&'a str, UsageError> {
    match value.as_deref() {
        Some(v) => Ok(v),
        None => fail(format!("{option} is required")),
    }
}

fn ipv4(value: &str, option: &str) -> Result<Ipv4Addr, UsageError> {
    value
        .parse()
        .or_else(|_| fail(format!("{option}: {value:?} is not an IPv4 address")))
}

/// A host's own address or a virtual address, IPv4 or IPv6: one that can
/// be a unicast source. An IPv6 one must not be unspecified, loopback or
/// multicast either.
pub(crate) fn unicast_ip(value: &str, option: &str) -> Result<IpAddr, UsageError> {
    let Ok(v6) = value.parse::<Ipv6Addr>() else {
        if value.parse::<Ipv4Addr>().is_err() {
            return fail(format!(
                "{option}: {value:?} is not an IPv4 or IPv6 address"
            ));
        }
        return unicast(value, option).map(IpAddr::V4);
    };
    let problem = if v6.is_unspecified() {
        "the unspecified address"
    } else if v6.is_loopback() {
        "the loopback address"
    } else if v6.is_multicast() {
        "a multicast address"
    } else if v6.to_ipv4_mapped().is_some() {
        "an IPv4-mapped IPv6 address (give the IPv4 address itself)"
    } else {
        return Ok(IpAddr::V6(v6));
    };
    fail(format!(
        "{option}: {v6} is {problem}; use a unicast address of this host"
    ))
}

/// A host's own address or a virtual address: one that can be a unicast
/// source. 0.0.0.0 would also break the tie-break identity, and a
/// multicast or broadcast source is dropped by every receiver.
pub(crate) fn unicast(value: &str, option: &str) -> Result<Ipv4Addr, UsageError> {
    let addr = ipv4(value, option)?;
    let problem = if addr.is_unspecified() {
        "the unspecified address"
    } else if addr.is_multicast() {
        "a multicast address"
    } else if addr.is_broadcast() {
        "the broadcast address"
    } else if addr.octets()[0] >= 240 {
        "a reserved (class E) address"
    } else {
        return Ok(addr);
    };
    fail(format!(
        "{option}: {addr} is {problem}; use a unicast address of this host"
    ))
}

/// Parses an optional decimal number in `range`; `default` when absent.
/// Callers narrow the result to the option's type, which the range fits.
fn number(
    value: Option<&str>,
    option: &str,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<u64, UsageError> {
    let Some(value) = value else {
        return Ok(default);
    };
    let parsed: u64 = value
        .parse()
        .or_else(|_| fail(format!("{option}: {value:?} is not a number")))?;
    if !range.contains(&parsed) {
        return fail(format!(
            "{option}: {parsed} is out of range {}..={}",
            range.start(),
            range.end()
        ));
    }
    Ok(parsed)
}

const FACILITIES: [(&str, u8); 20] = [
    ("kern", 0),
    ("user", 1),
    ("mail", 2),
    ("daemon", 3),
    ("auth", 4),
    ("syslog", 5),
    ("lpr", 6),
    ("news", 7),
    ("uucp", 8),
    ("cron", 9),
    ("authpriv", 10),
    ("ftp", 11),
    ("local0", 16),
    ("local1", 17),
    ("local2", 18),
    ("local3", 19),
    ("local4", 20),
    ("local5", 21),
    ("local6", 22),
    ("local7", 23),
];

pub(crate) fn facility(value: Option<&str>, option: &str) -> Result<Facility, UsageError> {
    let name = value.unwrap_or("daemon");
    if name.eq_ignore_ascii_case("none") {
        return Ok(Facility::None);
    }
    FACILITIES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|&(_, code)| Facility::Syslog(code))
        .ok_or_else(|| {
            let names: Vec<&str> = FACILITIES.iter().map(|(n, _)| *n).collect();
            UsageError(format!(
                "{option}: unknown facility {name:?}; use one of {} or none",
                names.join(", ")
            ))
        })
}

/// At most this much of a passfile is read: the password is its first
/// line and at most 19 bytes.
const PASSFILE_MAX: u64 = 4096;

pub(crate) fn read_passfile(path: &Path, option: &str) -> Result<Password, UsageError> {
    let cannot =
        |e: std::io::Error| UsageError(format!("{option}: cannot read {}: {e}", path.display()));
    // Non-blocking open: a FIFO must not hang the start-up waiting for a
    // writer; it is refused below like every other non-regular file.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(path)
        .map_err(cannot)?;
    let kind = file.metadata().map_err(cannot)?.file_type();
    if !kind.is_file() {
        let what = if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_char_device() || kind.is_block_device() {
            "a device"
        } else if kind.is_dir() {
            "a directory"
        } else {
            "not a regular file"
        };
        return fail(format!(
            "{option}: {} is {what}; the password must be in a regular file",
            path.display()
        ));
    }
    let mut text = Vec::new();
    file.take(PASSFILE_MAX)
        .read_to_end(&mut text)
        .map_err(cannot)?;
    let first_line = text.split(|&b| b == b'\n').next().unwrap_or_default();
    let first_line = first_line.strip_suffix(b"\r").unwrap_or(first_line);
    Password::new(first_line).or_else(|e| fail(format!("{option}: {}: {e}", path.display())))
}

/// The interval must be neither zero nor the leave advertisement's.
pub(crate) fn check_interval(
    advbase: u8,
    advskew: u8,
    base: &str,
    skew: &str,
) -> Result<(), UsageError> {
    if advbase == 0 && advskew == 0 {
        return fail(format!(
            "{base} 0 needs {skew} above 0: the interval would be zero"
        ));
    }
    if advbase == 255 && advskew == 255 {
        return fail(format!(
            "{base} 255 with {skew} 255 is the leave advertisement: \
             every backup would take over at each advert; lower one of them"
        ));
    }
    Ok(())
}

/// Unicast peers replace the group: a group or broadcast frames given with
/// them would be silently ignored, so they are refused. So is every peer
/// setting that would leave two masters without a word: a peer that is
/// one of our own addresses or loopback, a peer of a family we have no
/// address of, a global IPv6 peer without an IPv6 source (our adverts
/// would come from the link-local address, which the peer does not list),
/// and a dual-stack virtual host with peers of one family only.
pub(crate) fn check_peers(
    spec: &VirtualHostSpec,
    option: &str,
    mcast: Option<&str>,
    nomcast: &str,
) -> Result<(), UsageError> {
    if spec.peers.is_empty() {
        return Ok(());
    }
    if spec.broadcast {
        return fail(format!(
            "{option}: unicast peers and {nomcast} exclude each other (adverts go to the peers)"
        ));
    }
    if let Some(mcast) = mcast {
        return fail(format!(
            "{option}: unicast peers and {mcast} exclude each other (adverts go to the peers)"
        ));
    }
    if let Some(own) = spec.peers.iter().find(|p| spec.sources.contains(p)) {
        return fail(format!("{option}: {own} is our own source address"));
    }
    if let Some(own) = spec
        .peers
        .iter()
        .find(|p| spec.addresses.iter().any(|a| a.addr == **p))
    {
        return fail(format!("{option}: {own} is one of the virtual addresses"));
    }
    if let Some(lo) = spec.peers.iter().find(|p| p.is_loopback()) {
        return fail(format!("{option}: {lo} is a loopback address"));
    }
    spec.check_sources()
        .or_else(|e| fail(format!("{option}: {e}")))?;
    let global_v6 = spec.peers.iter().find(|p| match p {
        IpAddr::V6(v6) => !carp_proto::ipv6::is_link_local(v6),
        IpAddr::V4(_) => false,
    });
    if let Some(peer) = global_v6.filter(|_| !spec.sources.iter().any(IpAddr::is_ipv6)) {
        return fail(format!(
            "{option}: {peer} would see our adverts come from our link-local address; \
             give an IPv6 source address it lists as its peer (or use link-local peers)"
        ));
    }
    let has = |v4: bool| spec.addresses.iter().any(|a| a.addr.is_ipv4() == v4);
    for v4 in [true, false] {
        if has(true) && has(false) && !spec.peers.iter().any(|p| p.is_ipv4() == v4) {
            let family = if v4 { "IPv4" } else { "IPv6" };
            return fail(format!(
                "{option}: no {family} peer for a virtual host with {family} addresses; \
                 its {family} adverts would go nowhere"
            ));
        }
    }
    Ok(())
}

/// A track script and its settings, each `(value, option name)`: interval
/// and timeout in seconds (1 to 3600), rise and fall (1 to 100), weight (1
/// to 255). Absent values take [`carp_io::TrackScript::new`]'s defaults.
pub(crate) fn track_script(
    command: &str,
    [interval, timeout, rise, fall, weight]: [(Option<&str>, &str); 5],
) -> Result<carp_io::TrackScript, UsageError> {
    if command.trim().is_empty() {
        return fail("--track-script: empty command".into());
    }
    let defaults = carp_io::TrackScript::new(command);
    let secs = |(value, option): (Option<&str>, &str), default: Duration| {
        number(value, option, default.as_secs(), 1..=3600).map(Duration::from_secs)
    };
    Ok(carp_io::TrackScript {
        interval: secs(interval, defaults.interval)?,
        timeout: secs(timeout, defaults.timeout)?,
        rise: number(rise.0, rise.1, u64::from(defaults.rise), 1..=100)? as u32,
        fall: number(fall.0, fall.1, u64::from(defaults.fall), 1..=100)? as u32,
        weight: number(weight.0, weight.1, u64::from(defaults.weight), 1..=255)? as u8,
        ..defaults
    })
}

/// `IF[:WEIGHT]`: an interface to track and the demotion while it is down
/// (1 to 255, default 1).
pub(crate) fn tracked_interface(
    value: &str,
    option: &str,
) -> Result<carp_io::TrackedInterface, UsageError> {
    let (name, weight) = match value.rsplit_once(':') {
        Some((name, weight))
            if !weight.is_empty() && weight.bytes().all(|b| b.is_ascii_digit()) =>
        {
            (name, number(Some(weight), option, 1, 1..=255)? as u8)
        }
        _ => (value, 1),
    };
    if name.is_empty() || name.len() > 15 || name.contains(['/', ' ']) {
        return fail(format!(
            "{option}: {value:?} is not an interface name[:weight]"
        ));
    }
    Ok(carp_io::TrackedInterface {
        name: name.to_string(),
        weight,
    })
}

/// A CARP group of either family, at most one per family, onto `spec`.
pub(crate) fn set_group(
    spec: &mut VirtualHostSpec,
    given: &mut Vec<IpAddr>,
    value: &str,
    option: &str,
    broadcast: Option<&str>,
) -> Result<(), UsageError> {
    let group = match value.parse::<Ipv6Addr>() {
        // Scope 0 is reserved and scope 1 (ff01::) never leaves the host:
        // receivers drop both from the wire.
        Ok(v6) if v6.is_multicast() && v6.segments()[0] & 0xf <= 1 => {
            return fail(format!(
                "{option}: {v6} has interface-local or reserved scope; \
                 use a link-local (ff02::) or wider group"
            ))
        }
        Ok(v6) if v6.is_multicast() => IpAddr::V6(v6),
        Ok(v6) => {
            return fail(format!(
                "{option}: {v6} is not an IPv6 multicast address (ff00::/8)"
            ))
        }
        Err(_) if value.parse::<Ipv4Addr>().is_err() => {
            return fail(format!(
                "{option}: {value:?} is not an IPv4 or IPv6 address"
            ))
        }
        Err(_) => IpAddr::V4(group(value, option, broadcast)?),
    };
    if let Some(first) = given.iter().find(|g| g.is_ipv4() == group.is_ipv4()) {
        return fail(format!(
            "{option}: two groups of one family ({first} and {group}); give one per family"
        ));
    }
    given.push(group);
    match group {
        IpAddr::V4(v4) => spec.group = v4,
        IpAddr::V6(v6) => spec.group6 = v6,
    }
    Ok(())
}

/// The CARP group: a multicast address. With broadcast frames (`-M`) the
/// datagrams are still addressed to it, and receivers must have joined it.
/// `broadcast` names the broadcast option when it is set.
pub(crate) fn group(
    value: &str,
    option: &str,
    broadcast: Option<&str>,
) -> Result<Ipv4Addr, UsageError> {
    let group = ipv4(value, option)?;
    if !group.is_multicast() {
        let also = match broadcast {
            Some(flag) => format!(" ({flag} still sends to the group, in broadcast frames)"),
            None => String::new(),
        };
        return fail(format!(
            "{option}: {group} is not a multicast address (224.0.0.0/4){also}"
        ));
    }
    Ok(group)
}

/// A script that cannot run would leave a master without its address:
/// refused at start-up.
pub(crate) fn check_script(path: &Option<PathBuf>, option: &str) -> Result<(), UsageError> {
    let Some(path) = path else { return Ok(()) };
    match std::fs::metadata(path) {
        Err(e) => fail(format!("{option}: {}: {e}", path.display())),
        Ok(meta) if !meta.is_file() => fail(format!(
            "{option}: {} is not a regular file",
            path.display()
        )),
        Ok(_) => match nix::unistd::access(path, nix::unistd::AccessFlags::X_OK) {
            Ok(()) => Ok(()),
            Err(_) => fail(format!(
                "{option}: {} is not executable (chmod +x)",
                path.display()
            )),
        },
    }
}

impl RawArgs {
    /// Which form the command line takes. With a configuration file, the
    /// per-virtual-host options (and `-f`, `-z`, which the file's
    /// `[daemon]` table holds) are refused: one place for each setting.
    pub fn mode(&self) -> Result<Mode, UsageError> {
        let file = match (&self.config, &self.check_config) {
            (None, None) => return self.validate().map(|o| Mode::CommandLine(Box::new(o))),
            (Some(_), Some(_)) => {
                return fail("--config and --check-config: give one of them".into())
            }
            (Some(path), None) => ("--config", path),
            (None, Some(path)) => ("--check-config", path),
        };
        let given = self.file_settings_given();
        if !given.is_empty() {
            return fail(format!(
                "{}: {} belong in the configuration file (ucarp.toml(5)), not on the command line",
                file.0,
                given.join(", ")
            ));
        }
        Ok(match file {
            // Absolute: --daemonize moves to /, and SIGHUP reads it again.
            ("--config", path) => Mode::ConfigFile {
                path: std::path::absolute(path).unwrap_or_else(|_| path.clone()),
                daemonize: self.daemonize,
                debug: self.debug,
            },
            (_, path) => Mode::CheckConfig(path.clone()),
        })
    }

    /// The virtual MAC device's name with `--vmac`: `--vmac-name` or
    /// `ucarp<vhid>`. It carries owned addresses, so it needs some.
    fn vmac_device(&self, vhost: &VirtualHostSpec) -> Result<Option<String>, UsageError> {
        match (self.vmac, &self.vmac_name) {
            (false, None) => Ok(None),
            (false, Some(_)) => fail("--vmac-name: without --vmac".into()),
            (true, _) if !vhost.addresses.iter().any(|a| a.prefix.is_some()) => fail(
                "--vmac: the virtual MAC carries addresses the daemon owns; \
                 give them with a prefix length (-a 10.0.0.100/24)"
                    .into(),
            ),
            (true, None) => Ok(Some(carp_io::vmac::default_name(vhost.vhid))),
            (true, Some(name)) if carp_io::vmac::valid_name(name) => Ok(Some(name.clone())),
            (true, Some(name)) => fail(format!(
                "--vmac-name: {name:?} cannot name a network device \
                 (1 to 15 characters, no '/', ':' or spaces)"
            )),
        }
    }

    /// The options given that a configuration file sets instead.
    fn file_settings_given(&self) -> Vec<&'static str> {
        let values = [
            (self.interface.is_some(), "--interface (-i)"),
            (!self.srcip.is_empty(), "--srcip (-s)"),
            (!self.mcast.is_empty(), "--mcast (-m)"),
            (self.vhid.is_some(), "--vhid (-v)"),
            (self.pass.is_some(), "--pass (-p)"),
            (self.passfile.is_some(), "--passfile (-o)"),
            (self.preempt, "--preempt (-P)"),
            (self.neutral, "--neutral (-n)"),
            (!self.addr.is_empty(), "--addr (-a)"),
            (self.advbase.is_some(), "--advbase (-b)"),
            (self.advskew.is_some(), "--advskew (-k)"),
            (self.upscript.is_some(), "--upscript (-u)"),
            (self.downscript.is_some(), "--downscript (-d)"),
            (self.deadratio.is_some(), "--deadratio (-r)"),
            (self.shutdown, "--shutdown (-z)"),
            (self.facility.is_some(), "--facility (-f)"),
            (self.ignoreifstate, "--ignoreifstate (-S)"),
            (self.nomcast, "--nomcast (-M)"),
            (self.xparam.is_some(), "--xparam (-x)"),
            (self.script_timeout.is_some(), "--script-timeout"),
            (!self.peer.is_empty(), "--peer"),
            (!self.track_interface.is_empty(), "--track-interface"),
            (!self.track_script.is_empty(), "--track-script"),
            (self.startup_demote.is_some(), "--startup-demote"),
            (self.no_demote_skew, "--no-demote-skew"),
            (self.replay.is_some(), "--replay"),
            (self.garp_refresh.is_some(), "--garp-refresh"),
            (self.vmac, "--vmac"),
            (self.vmac_name.is_some(), "--vmac-name"),
            (self.control_socket.is_some(), "--control-socket"),
            (self.control_group.is_some(), "--control-group"),
            (self.metrics.is_some(), "--metrics"),
            (self.events.is_some(), "--events"),
            (self.track_interval.is_some(), "--track-interval"),
            (self.track_timeout.is_some(), "--track-timeout"),
            (self.track_rise.is_some(), "--track-rise"),
            (self.track_fall.is_some(), "--track-fall"),
            (self.track_weight.is_some(), "--track-weight"),
        ];
        values
            .into_iter()
            .filter_map(|(given, name)| given.then_some(name))
            .collect()
    }

    /// Stage two: every check UCARP makes, and those it lacks.
    pub fn validate(&self) -> Result<Options, UsageError> {
        let mut warnings = Vec::new();
        let interface = required(&self.interface, "--interface (-i)")?.to_string();
        let sources = self
            .srcip
            .iter()
            .map(|s| unicast_ip(s, "--srcip (-s)"))
            .collect::<Result<Vec<IpAddr>, _>>()?;
        let vhid = number(
            Some(required(&self.vhid, "--vhid (-v)")?),
            "--vhid (-v)",
            0,
            1..=255,
        )? as u8;
        if self.addr.is_empty() {
            return fail("--addr (-a) is required".into());
        }
        let mut addresses: Vec<VirtualAddress> = Vec::new();
        for given in &self.addr {
            let address = virtual_address(given, "--addr (-a)")?;
            if addresses.iter().any(|a| a.addr == address.addr) {
                return fail(format!("--addr (-a): {} is given twice", address.addr));
            }
            addresses.push(address);
        }
        let password = match (&self.pass, &self.passfile) {
            (_, Some(path)) => read_passfile(path, "--passfile (-o)")?,
            (Some(pass), None) => {
                warnings.push(
                    "--pass (-p) is visible to other local users in the process list; \
                     use --passfile (-o) instead"
                        .to_string(),
                );
                Password::new(pass.as_bytes()).or_else(|e| fail(format!("--pass (-p): {e}")))?
            }
            (None, None) => return fail("--pass (-p) or --passfile (-o) is required".into()),
        };
        let advbase = number(self.advbase.as_deref(), "--advbase (-b)", 1, 0..=255)? as u8;
        let advskew = number(self.advskew.as_deref(), "--advskew (-k)", 0, 0..=255)? as u8;
        check_interval(advbase, advskew, "--advbase (-b)", "--advskew (-k)")?;
        let deadratio = number(
            self.deadratio.as_deref(),
            "--deadratio (-r)",
            3,
            1..=u64::from(u16::MAX),
        )? as u32;
        check_script(&self.upscript, "--upscript (-u)")?;
        check_script(&self.downscript, "--downscript (-d)")?;
        let script_timeout = Duration::from_secs(number(
            self.script_timeout.as_deref(),
            "--script-timeout",
            60,
            1..=3600,
        )?);
        // --daemonize moves to /: a relative script path would stop
        // resolving, so scripts are remembered by absolute path.
        let absolute = |path: &Option<PathBuf>| {
            path.as_ref()
                .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone()))
        };
        if sources.is_empty() && addresses.iter().any(|a| a.addr.is_ipv4()) {
            return fail("--srcip (-s) is required".into());
        }
        let mut vhost = VirtualHostSpec::new(&interface, vhid, password, sources, addresses);
        vhost
            .check_sources()
            .or_else(|e| fail(format!("--srcip (-s): {e}")))?;
        for given in &self.peer {
            let peer = unicast_ip(given, "--peer")?;
            if vhost.peers.contains(&peer) {
                return fail(format!("--peer: {peer} is given twice"));
            }
            vhost.peers.push(peer);
        }
        // The order means nothing: a reload must not see a change in it.
        vhost.peers.sort();
        if self.track_script.is_empty()
            && [
                &self.track_interval,
                &self.track_timeout,
                &self.track_rise,
                &self.track_fall,
                &self.track_weight,
            ]
            .iter()
            .any(|o| o.is_some())
        {
            return fail(
                "--track-interval/-timeout/-rise/-fall/-weight need --track-script".into(),
            );
        }
        for command in &self.track_script {
            vhost.track_scripts.push(track_script(
                command,
                [
                    (self.track_interval.as_deref(), "--track-interval"),
                    (self.track_timeout.as_deref(), "--track-timeout"),
                    (self.track_rise.as_deref(), "--track-rise"),
                    (self.track_fall.as_deref(), "--track-fall"),
                    (self.track_weight.as_deref(), "--track-weight"),
                ],
            )?);
        }
        vhost.demote_skew = !self.no_demote_skew;
        if let Some(mode) = &self.replay {
            vhost.replay = replay_mode(mode, "--replay")?;
        }
        if let Some(seconds) = &self.garp_refresh {
            let seconds = number(Some(seconds), "--garp-refresh", 0, 1..=86400)?;
            vhost.garp_refresh = Some(Duration::from_secs(seconds));
        }
        vhost.vmac = self.vmac_device(&vhost)?;
        if let Some(given) = &self.startup_demote {
            let option = "--startup-demote";
            let Some((demote, seconds)) = given.split_once(':') else {
                return fail(format!("{option}: {given:?} is not <demotion>:<seconds>"));
            };
            vhost.startup_demote = (
                number(Some(demote), option, 1, 1..=255)? as u8,
                Duration::from_secs(number(Some(seconds), option, 1, 1..=86400)?),
            );
        }
        for given in &self.track_interface {
            let tracked = tracked_interface(given, "--track-interface")?;
            if vhost
                .track_interfaces
                .iter()
                .any(|t| t.name == tracked.name)
            {
                return fail(format!(
                    "--track-interface: {} is given twice",
                    tracked.name
                ));
            }
            vhost.track_interfaces.push(tracked);
        }
        let mut groups = Vec::new();
        for value in &self.mcast {
            let broadcast = self.nomcast.then_some("--nomcast (-M)");
            set_group(&mut vhost, &mut groups, value, "--mcast (-m)", broadcast)?;
        }
        vhost.advbase = advbase;
        vhost.advskew = advskew;
        vhost.deadratio = deadratio;
        vhost.preempt = self.preempt;
        vhost.neutral = self.neutral;
        vhost.ignore_link_state = self.ignoreifstate;
        vhost.broadcast = self.nomcast;
        let mcast = (!self.mcast.is_empty()).then_some("--mcast (-m)");
        check_peers(&vhost, "--peer", mcast, "--nomcast (-M)")?;
        vhost.scripts = ScriptSpec {
            up: absolute(&self.upscript),
            down: absolute(&self.downscript),
            xparam: self.xparam.clone(),
            timeout: script_timeout,
        };
        Ok(Options {
            vhost,
            debug: self.debug,
            shutdown: self.shutdown,
            facility: facility(self.facility.as_deref(), "--facility (-f)")?,
            daemonize: self.daemonize,
            services: Services::parse(
                self.control_socket.as_deref(),
                self.control_group.as_deref(),
                self.metrics.as_deref(),
                self.events.as_deref(),
                [
                    "--control-socket",
                    "--control-group",
                    "--metrics",
                    "--events",
                ],
            )?,
            warnings,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Options, UsageError> {
        let mut argv = vec!["ucarp"];
        argv.extend_from_slice(args);
        RawArgs::try_parse_from(argv)
            .expect("clap parse")
            .validate()
    }

    const BASE: [&str; 10] = [
        "-i", "eth0", "-s", "10.0.0.1", "-v", "1", "-p", "pw", "-a", "10.0.0.9",
    ];

    fn with(extra: &[&str]) -> Result<Options, UsageError> {
        let mut args = BASE.to_vec();
        args.extend_from_slice(extra);
        parse(&args)
    }

    fn error(extra: &[&str]) -> String {
        with(extra).unwrap_err().0
    }

    #[test]
    fn a_relative_config_path_is_made_absolute() {
        let raw = RawArgs::try_parse_from(["ucarp", "--config", "conf/ucarp.toml"]).unwrap();
        let Ok(Mode::ConfigFile { path, .. }) = raw.mode() else {
            panic!("not config mode");
        };
        assert_eq!(
            path,
            std::env::current_dir().unwrap().join("conf/ucarp.toml")
        );
    }

    #[test]
    fn defaults_are_ucarps() {
        let o = with(&[]).unwrap();
        assert_eq!(
            (o.vhost.advbase, o.vhost.advskew, o.vhost.deadratio),
            (1, 0, 3)
        );
        assert_eq!(o.vhost.group, Ipv4Addr::new(224, 0, 0, 18));
        assert_eq!(o.facility, Facility::Syslog(3));
        assert!(
            !o.vhost.preempt
                && !o.vhost.neutral
                && !o.shutdown
                && !o.daemonize
                && !o.vhost.broadcast
        );
        assert!(o.warnings.iter().any(|w| w.contains("process list")));
    }

    #[test]
    fn long_options_and_prefixes() {
        let o = parse(&[
            "--interface=eth1",
            "--srcip=10.0.0.2",
            "--vhid=9",
            "--pass=pw",
            "--addr=10.0.0.8",
            "--mcastip=239.1.1.1",
            "--advbase=2",
            "--advskew=7",
            "--deadratio=4",
            "--preempt",
            "--neutral",
            "--shutdown",
            "--ignoreifstate",
            "--nomcast",
            "--debug",
            "--facility=local3",
            "--xparam=extra",
        ])
        .unwrap();
        assert_eq!(o.vhost.interface, "eth1");
        assert_eq!(o.vhost.group, Ipv4Addr::new(239, 1, 1, 1));
        assert_eq!(
            (
                o.vhost.vhid,
                o.vhost.advbase,
                o.vhost.advskew,
                o.vhost.deadratio
            ),
            (9, 2, 7, 4)
        );
        assert!(
            o.vhost.preempt
                && o.vhost.neutral
                && o.shutdown
                && o.vhost.ignore_link_state
                && o.vhost.broadcast
                && o.debug
        );
        assert_eq!(o.facility, Facility::Syslog(19));
        assert_eq!(o.vhost.scripts.xparam.as_deref(), Some("extra"));
        // getopt_long-style unambiguous prefix, and --mcast for --mcastip.
        let o = parse(&[
            "--inter=eth2",
            "-s",
            "10.0.0.1",
            "--vh=3",
            "-p",
            "pw",
            "-a",
            "10.0.0.9",
            "--mcast=239.0.0.1",
        ])
        .unwrap();
        assert_eq!((o.vhost.interface.as_str(), o.vhost.vhid), ("eth2", 3));
        assert_eq!(o.vhost.group, Ipv4Addr::new(239, 0, 0, 1));
        // -m, which UCARP documents but forgets, works here.
        assert_eq!(
            with(&["-m", "239.2.2.2"]).unwrap().vhost.group,
            Ipv4Addr::new(239, 2, 2, 2)
        );
    }

    #[test]
    fn last_value_wins_like_getopt() {
        assert_eq!(with(&["-b", "2", "-b", "3"]).unwrap().vhost.advbase, 3);
    }

    #[test]
    fn out_of_range_values_are_refused_not_truncated() {
        assert_eq!(
            error(&["-b", "256"]),
            "--advbase (-b): 256 is out of range 0..=255"
        );
        assert_eq!(
            error(&["-k", "300"]),
            "--advskew (-k): 300 is out of range 0..=255"
        );
        assert_eq!(
            error(&["-r", "0"]),
            "--deadratio (-r): 0 is out of range 1..=65535"
        );
        assert_eq!(error(&["-b", "x"]), "--advbase (-b): \"x\" is not a number");
        assert!(error(&["-b", "0", "-k", "0"]).contains("interval would be zero"));
        assert!(with(&["-b", "0", "-k", "1"]).is_ok());
        let vhid = |v: &str| {
            let mut args = BASE.to_vec();
            args[5] = v;
            parse(&args)
        };
        assert_eq!(
            vhid("0").unwrap_err().0,
            "--vhid (-v): 0 is out of range 1..=255"
        );
        assert_eq!(
            vhid("256").unwrap_err().0,
            "--vhid (-v): 256 is out of range 1..=255"
        );
    }

    #[test]
    fn malformed_addresses_are_refused() {
        let mut args = BASE.to_vec();
        args[3] = "10.0.0";
        assert_eq!(
            parse(&args).unwrap_err().0,
            "--srcip (-s): \"10.0.0\" is not an IPv4 or IPv6 address"
        );
        args = BASE.to_vec();
        args[9] = "vip";
        assert_eq!(
            parse(&args).unwrap_err().0,
            "--addr (-a): \"vip\" is not an IPv4 or IPv6 address"
        );
        assert!(error(&["-m", "10.0.0.1"]).contains("not a multicast address"));
        // -M sends broadcast frames, but still to the group: a unicast
        // group used to be accepted here and fail when joined at run time.
        assert_eq!(
            error(&["-m", "10.0.0.255", "-M"]),
            "--mcast (-m): 10.0.0.255 is not a multicast address (224.0.0.0/4) \
             (--nomcast (-M) still sends to the group, in broadcast frames)"
        );
        assert!(with(&["-m", "239.1.2.3", "-M"]).is_ok());
    }

    #[test]
    fn non_unicast_source_and_virtual_addresses_are_refused() {
        for (addr, what) in [
            ("0.0.0.0", "the unspecified address"),
            ("224.0.0.18", "a multicast address"),
            ("255.255.255.255", "the broadcast address"),
            ("240.0.0.1", "a reserved (class E) address"),
        ] {
            let mut args = BASE.to_vec();
            args[3] = addr;
            assert_eq!(
                parse(&args).unwrap_err().0,
                format!("--srcip (-s): {addr} is {what}; use a unicast address of this host")
            );
            args = BASE.to_vec();
            args[9] = addr;
            assert!(parse(&args).unwrap_err().0.starts_with("--addr (-a): "));
        }
    }

    #[test]
    fn addresses_may_be_repeated() {
        let o = with(&["-a", "10.0.0.10", "--addr=10.0.0.8"]).unwrap();
        let given: Vec<&str> = o
            .vhost
            .addresses
            .iter()
            .map(|a| a.as_given.as_str())
            .collect();
        assert_eq!(given, ["10.0.0.9", "10.0.0.10", "10.0.0.8"]);
        for a in &o.vhost.addresses {
            assert_eq!(a.addr, a.as_given.parse::<IpAddr>().unwrap());
        }
        assert_eq!(
            error(&["-a", "10.0.0.9"]),
            "--addr (-a): 10.0.0.9 is given twice"
        );
    }

    #[test]
    fn the_leave_interval_is_refused() {
        assert!(error(&["-b", "255", "-k", "255"]).contains("is the leave advertisement"));
        assert!(with(&["-b", "255", "-k", "254"]).is_ok());
    }

    #[test]
    fn script_timeout() {
        assert_eq!(
            with(&[]).unwrap().vhost.scripts.timeout,
            Duration::from_secs(60)
        );
        let o = with(&["--script-timeout", "5"]).unwrap();
        assert_eq!(o.vhost.scripts.timeout, Duration::from_secs(5));
        assert_eq!(
            error(&["--script-timeout=0"]),
            "--script-timeout: 0 is out of range 1..=3600"
        );
    }

    #[test]
    fn ipv6_sources_addresses_and_groups() {
        let v6_only = [
            "-i",
            "eth0",
            "-v",
            "7",
            "-p",
            "pw",
            "-a",
            "2001:db8::25",
            "-a",
            "fe80::25",
        ];
        let o = parse(&v6_only).unwrap();
        assert!(o.vhost.sources.is_empty(), "link-local source by default");
        assert!(o.vhost.needs_link_local());
        let mut given = v6_only.to_vec();
        given.extend(["-s", "2001:db8::2", "-m", "ff02::1:2"]);
        let o = parse(&given).unwrap();
        assert_eq!(o.vhost.sources, ["2001:db8::2".parse::<IpAddr>().unwrap()]);
        assert_eq!(o.vhost.group6, "ff02::1:2".parse::<Ipv6Addr>().unwrap());
        assert_eq!(o.vhost.group, carp_proto::DEFAULT_GROUP);
        // Dual stack: one source and one group per family.
        let dual = [
            "-i",
            "eth0",
            "-s",
            "10.0.0.1",
            "-v",
            "7",
            "-p",
            "pw",
            "-a",
            "10.0.0.9",
            "-a",
            "2001:db8::9",
            "-m",
            "239.1.1.1",
            "-m",
            "ff05::12",
        ];
        let o = parse(&dual).unwrap();
        assert_eq!(o.vhost.sources.len(), 1);
        assert_eq!(o.vhost.group, Ipv4Addr::new(239, 1, 1, 1));
        assert_eq!(o.vhost.group6, "ff05::12".parse::<Ipv6Addr>().unwrap());
        let refused = |extra: &[&str], base: &[&str]| {
            let mut args = base.to_vec();
            args.extend(extra);
            parse(&args).unwrap_err().0
        };
        assert_eq!(
            refused(&["-m", "ff02::13"], &dual),
            "--mcast (-m): two groups of one family (ff05::12 and ff02::13); give one per family"
        );
        assert_eq!(
            refused(&["-m", "2001:db8::1"], &v6_only),
            "--mcast (-m): 2001:db8::1 is not an IPv6 multicast address (ff00::/8)"
        );
        assert_eq!(
            refused(&["-s", "10.0.0.1"], &v6_only),
            "--srcip (-s): source address 10.0.0.1 is of a family none of the virtual \
             addresses has"
        );
        assert_eq!(
            refused(&["-s", "fe80::1", "-s", "fe80::2"], &v6_only),
            "--srcip (-s): two IPv6 source addresses (fe80::1 and fe80::2); give one per family"
        );
        assert_eq!(
            refused(&["-a", "ff02::1"], &v6_only),
            "--addr (-a): ff02::1 is a multicast address; use a unicast address of this host"
        );
        assert_eq!(
            refused(&["-m", "ff01::12"], &v6_only),
            "--mcast (-m): ff01::12 has interface-local or reserved scope; use a link-local \
             (ff02::) or wider group"
        );
        assert_eq!(
            refused(&["-a", "::ffff:10.0.0.1"], &v6_only),
            "--addr (-a): ::ffff:10.0.0.1 is an IPv4-mapped IPv6 address (give the IPv4 \
             address itself); use a unicast address of this host"
        );
        assert_eq!(
            refused(&["-s", "::"], &v6_only),
            "--srcip (-s): :: is the unspecified address; use a unicast address of this host"
        );
    }

    #[test]
    fn track_scripts() {
        let mut args = BASE.to_vec();
        args.extend([
            "--track-script",
            "pg_isready",
            "--track-fall=3",
            "--track-weight",
            "10",
        ]);
        let scripts = parse(&args).unwrap().vhost.track_scripts;
        assert_eq!(scripts.len(), 1);
        assert_eq!(
            (scripts[0].fall, scripts[0].weight, scripts[0].rise),
            (3, 10, 1)
        );
        assert_eq!(scripts[0].interval, Duration::from_secs(2));
        let mut args = BASE.to_vec();
        args.extend(["--track-fall=3"]);
        assert_eq!(
            parse(&args).unwrap_err().0,
            "--track-interval/-timeout/-rise/-fall/-weight need --track-script"
        );
        let mut args = BASE.to_vec();
        args.extend(["--track-script", "true", "--track-weight=0"]);
        assert_eq!(
            parse(&args).unwrap_err().0,
            "--track-weight: 0 is out of range 1..=255"
        );
    }

    #[test]
    fn tracking_flags_belong_in_the_file_with_config() {
        let raw = RawArgs::try_parse_from(["ucarp", "--config", "/etc/u.toml", "--track-fall=3"])
            .unwrap();
        let Err(error) = raw.mode() else {
            panic!("accepted");
        };
        assert!(error.0.contains("--track-fall"), "{}", error.0);
    }

    #[test]
    fn an_address_with_a_prefix_is_owned() {
        let owned = virtual_address("10.1.1.252/24", "-a").unwrap();
        assert_eq!(
            (owned.as_given.as_str(), owned.prefix),
            ("10.1.1.252", Some(24))
        );
        let v6 = virtual_address("2001:db8::10/64", "-a").unwrap();
        assert_eq!(v6.prefix, Some(64));
        assert_eq!(virtual_address("10.1.1.252", "-a").unwrap().prefix, None);
        for bad in [
            "10.1.1.252/33",
            "10.1.1.252/0",
            "10.1.1.252/x",
            "2001:db8::10/129",
        ] {
            let error = virtual_address(bad, "-a").unwrap_err();
            assert!(error.0.contains("prefix length"), "{bad}: {}", error.0);
        }
    }

    #[test]
    fn a_virtual_mac_needs_owned_addresses() {
        let owned = ["-a", "10.0.0.10/24", "--vmac"];
        assert_eq!(with(&owned).unwrap().vhost.vmac.as_deref(), Some("ucarp1"));
        let named = with(&["-a", "10.0.0.10/24", "--vmac", "--vmac-name", "vip0"]);
        assert_eq!(named.unwrap().vhost.vmac.as_deref(), Some("vip0"));
        assert!(with(&[]).unwrap().vhost.vmac.is_none());
        assert!(error(&["--vmac"]).starts_with("--vmac: the virtual MAC carries addresses"));
        assert_eq!(
            error(&["--vmac-name", "vip0"]),
            "--vmac-name: without --vmac"
        );
        assert!(
            error(&["-a", "10.0.0.10/24", "--vmac", "--vmac-name", "a b"])
                .starts_with("--vmac-name: \"a b\" cannot name a network device")
        );
    }

    #[test]
    fn replay_modes() {
        assert_eq!(
            parse(&BASE).unwrap().vhost.replay,
            carp_engine::ReplayMode::Enforce
        );
        for (given, mode) in [
            ("strict", carp_engine::ReplayMode::Strict),
            ("permissive", carp_engine::ReplayMode::Permissive),
            ("off", carp_engine::ReplayMode::Off),
        ] {
            let mut args = BASE.to_vec();
            args.extend(["--replay", given]);
            assert_eq!(parse(&args).unwrap().vhost.replay, mode);
        }
        let mut args = BASE.to_vec();
        args.extend(["--replay", "sometimes"]);
        let Err(error) = parse(&args) else {
            panic!("accepted")
        };
        assert_eq!(
            error.0,
            "--replay: \"sometimes\" is not enforce, strict, permissive or off"
        );
    }

    #[test]
    fn demote_skew_is_on_unless_turned_off() {
        assert!(parse(&BASE).unwrap().vhost.demote_skew);
        let mut args = BASE.to_vec();
        args.push("--no-demote-skew");
        assert!(!parse(&args).unwrap().vhost.demote_skew);
    }

    #[test]
    fn service_options_are_checked() {
        let mut args = BASE.to_vec();
        args.extend(["--metrics", "127.0.0.1:9237", "--control-socket", "none"]);
        let services = parse(&args).unwrap().services;
        assert_eq!(services.metrics, Some("127.0.0.1:9237".parse().unwrap()));
        assert_eq!(services.control_socket, crate::control::SocketSetting::Off);
        for (option, value, says) in [
            ("--metrics", "9237", "not ADDRESS:PORT"),
            ("--control-socket", "relative.sock", "not an absolute path"),
            ("--events", "fifo", "not an absolute path"),
            ("--control-group", "no-such-group-here", "no group"),
        ] {
            let mut args = BASE.to_vec();
            args.extend([option, value]);
            let Err(error) = parse(&args) else {
                panic!("{option} {value} accepted");
            };
            assert!(error.0.starts_with(option), "{}", error.0);
            assert!(error.0.contains(says), "{}", error.0);
        }
    }

    #[test]
    fn startup_demotion() {
        let mut args = BASE.to_vec();
        args.push("--startup-demote=128:120");
        let vhost = parse(&args).unwrap().vhost;
        assert_eq!(vhost.startup_demote, (128, Duration::from_secs(120)));
        let mut args = BASE.to_vec();
        args.push("--startup-demote=128");
        assert_eq!(
            parse(&args).unwrap_err().0,
            "--startup-demote: \"128\" is not <demotion>:<seconds>"
        );
    }

    #[test]
    fn tracked_interfaces() {
        let mut args = BASE.to_vec();
        args.extend(["--track-interface", "eth1", "--track-interface=bond0:20"]);
        let tracked = parse(&args).unwrap().vhost.track_interfaces;
        assert_eq!(
            tracked
                .iter()
                .map(|t| (t.name.as_str(), t.weight))
                .collect::<Vec<_>>(),
            [("eth1", 1), ("bond0", 20)]
        );
        for (bad, message) in [
            ("eth1:0", "--track-interface: 0 is out of range 1..=255"),
            ("eth1:256", "--track-interface: 256 is out of range 1..=255"),
            (
                ":3",
                "--track-interface: \":3\" is not an interface name[:weight]",
            ),
        ] {
            let mut args = BASE.to_vec();
            args.extend(["--track-interface", bad]);
            assert_eq!(parse(&args).unwrap_err().0, message);
        }
    }

    #[test]
    fn unicast_peers() {
        let with = |extra: &[&str]| {
            let mut args = BASE.to_vec();
            args.extend(extra);
            parse(&args)
        };
        let o = with(&["--peer", "10.0.0.3", "--peer=10.0.0.4"]).unwrap();
        assert_eq!(o.vhost.peers.len(), 2);
        let refused = |extra: &[&str]| with(extra).unwrap_err().0;
        assert_eq!(
            refused(&["--peer", "10.0.0.3", "-M"]),
            "--peer: unicast peers and --nomcast (-M) exclude each other (adverts go to the peers)"
        );
        assert_eq!(
            refused(&["--peer", "10.0.0.3", "-m", "239.0.0.1"]),
            "--peer: unicast peers and --mcast (-m) exclude each other (adverts go to the peers)"
        );
        assert_eq!(
            refused(&["--peer", "10.0.0.3", "--peer", "10.0.0.3"]),
            "--peer: 10.0.0.3 is given twice"
        );
        assert_eq!(
            refused(&["--peer", "2001:db8::3"]),
            "--peer: peer 2001:db8::3 is of a family none of the virtual addresses has"
        );
        assert_eq!(
            refused(&["--peer", "10.0.0.9"]),
            "--peer: 10.0.0.9 is one of the virtual addresses"
        );
        assert_eq!(
            refused(&["--peer", "127.0.0.1"]),
            "--peer: 127.0.0.1 is a loopback address"
        );
        let v6 = [
            "-i", "eth0", "-v", "1", "-p", "pw", "-a", "fd00::9", "--peer", "fd00::2",
        ];
        assert_eq!(
            parse(&v6).unwrap_err().0,
            "--peer: fd00::2 would see our adverts come from our link-local address; give an \
             IPv6 source address it lists as its peer (or use link-local peers)"
        );
        let mut given = v6.to_vec();
        given.extend(["-s", "fd00::1"]);
        assert_eq!(parse(&given).unwrap().vhost.peers.len(), 1);
        let dual = [
            "-i", "eth0", "-s", "10.0.0.1", "-v", "1", "-p", "pw", "-a", "10.0.0.9", "-a",
            "fe80::9", "--peer", "10.0.0.2",
        ];
        assert_eq!(
            parse(&dual).unwrap_err().0,
            "--peer: no IPv6 peer for a virtual host with IPv6 addresses; its IPv6 adverts \
             would go nowhere"
        );
        let o = with(&["--peer", "10.0.0.4", "--peer", "10.0.0.3"]).unwrap();
        let o2 = with(&["--peer", "10.0.0.3", "--peer", "10.0.0.4"]).unwrap();
        assert_eq!(o.vhost, o2.vhost, "peer order is not a difference");
        assert_eq!(
            refused(&["--peer", "224.0.0.18"]),
            "--peer: 224.0.0.18 is a multicast address; use a unicast address of this host"
        );
    }

    #[test]
    fn required_options() {
        for (i, option) in [
            (0, "--interface (-i)"),
            (2, "--srcip (-s)"),
            (4, "--vhid (-v)"),
            (8, "--addr (-a)"),
        ] {
            let mut args = BASE.to_vec();
            args.drain(i..i + 2);
            assert_eq!(parse(&args).unwrap_err().0, format!("{option} is required"));
        }
        let mut args = BASE.to_vec();
        args.drain(6..8);
        assert_eq!(
            parse(&args).unwrap_err().0,
            "--pass (-p) or --passfile (-o) is required"
        );
    }

    #[test]
    fn passwords() {
        assert!(error(&["-p", "twenty-chars-password"]).contains("at most 19"));
        let dir = std::env::temp_dir().join(format!("ucarp-cli-pass-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("pass");
        std::fs::write(&file, "s3cret\nignored second line\n").unwrap();
        let o = with(&["-o", file.to_str().unwrap()]).unwrap();
        assert_eq!(o.vhost.password.as_bytes(), b"s3cret");
        std::fs::write(&file, "\n").unwrap();
        assert!(error(&["-o", file.to_str().unwrap()]).contains("password is empty"));
        std::fs::write(&file, "twenty-chars-password\n").unwrap();
        assert!(error(&["-o", file.to_str().unwrap()]).contains("at most 19"));
        assert!(error(&["-o", "/nonexistent/pass"])
            .starts_with("--passfile (-o): cannot read /nonexistent/pass"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn facilities() {
        assert_eq!(with(&["-f", "none"]).unwrap().facility, Facility::None);
        assert_eq!(
            with(&["-f", "LOCAL7"]).unwrap().facility,
            Facility::Syslog(23)
        );
        assert!(error(&["-f", "bogus"]).contains("unknown facility \"bogus\""));
    }

    #[test]
    fn relative_script_paths_survive_daemonizing() {
        // Tests run in the crate's directory; scripts must exist now.
        let o = with(&["-u", "../scripts/demo.sh", "-d", "/bin/true"]).unwrap();
        let up = o.vhost.scripts.up.unwrap();
        assert!(up.is_absolute(), "{}", up.display());
        assert!(up.ends_with("scripts/demo.sh"));
        assert_eq!(o.vhost.scripts.down.unwrap(), PathBuf::from("/bin/true"));
    }

    #[test]
    fn scripts_that_cannot_run_are_refused() {
        assert_eq!(
            error(&["-u", "/nonexistent/up"]),
            "--upscript (-u): /nonexistent/up: No such file or directory (os error 2)"
        );
        let plain = std::env::temp_dir().join(format!("ucarp-cli-plain-{}", std::process::id()));
        std::fs::write(&plain, "not a script").unwrap();
        let plain_path = plain.to_str().unwrap();
        assert_eq!(
            error(&["-d", plain_path]),
            format!("--downscript (-d): {plain_path} is not executable (chmod +x)")
        );
        assert_eq!(
            error(&["-d", "/tmp"]),
            "--downscript (-d): /tmp is not a regular file"
        );
        let _ = std::fs::remove_file(&plain);
        assert!(with(&["-u", "/bin/true", "-d", "/bin/true"]).is_ok());
    }

    /// Validation on another thread, so that a passfile that blocks fails
    /// the test instead of hanging it.
    fn error_within(args: Vec<String>, limit: std::time::Duration) -> String {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let _ = tx.send(with(&args).map(|_| ()).unwrap_err().0);
        });
        rx.recv_timeout(limit)
            .expect("validating the passfile blocked or panicked")
    }

    #[test]
    fn passfiles_that_are_not_regular_files_are_refused_without_reading_them() {
        let limit = Duration::from_secs(5);
        let args = |path: &str| vec!["-o".to_string(), path.to_string()];
        // /dev/zero was read until memory ran out.
        assert_eq!(
            error_within(args("/dev/zero"), limit),
            "--passfile (-o): /dev/zero is a device; the password must be in a regular file"
        );
        // A FIFO blocked start-up forever waiting for a writer.
        let dir = std::env::temp_dir().join(format!("ucarp-cli-fifo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("pass");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let fifo = fifo.to_str().unwrap();
        assert_eq!(
            error_within(args(fifo), limit),
            format!("--passfile (-o): {fifo} is a FIFO; the password must be in a regular file")
        );
        assert!(error_within(args("/tmp"), limit).contains("is a directory"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_huge_passfile_is_read_only_up_to_its_first_kilobytes() {
        let dir = std::env::temp_dir().join(format!("ucarp-cli-big-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("pass");
        let mut text = b"s3cret\n".to_vec();
        text.resize(8 << 20, b'x');
        std::fs::write(&file, &text).unwrap();
        let o = with(&["-o", file.to_str().unwrap()]).unwrap();
        assert_eq!(o.vhost.password.as_bytes(), b"s3cret");
        // One long line: only the first 4 KiB are read, and it is too long.
        std::fs::write(&file, vec![b'y'; 8 << 20]).unwrap();
        assert!(error(&["-o", file.to_str().unwrap()]).contains("at most 19"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
