//! One virtual host as an operator describes it: every setting in one
//! place, in the operator's terms. The `ucarp` command line and the
//! configuration file both produce these; [`VirtualHostSpec::build`] is the
//! only place that turns one into the runtime's configuration and its
//! scripts' configuration, so the two forms cannot drift apart.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::Duration;

use carp_engine::Config;
use carp_proto::auth::AuthSetupError;
use carp_proto::{Password, VirtualHostAuth};
use thiserror::Error;

use crate::iface::InterfaceInfo;
use crate::{IoError, ScriptConfig, TrackedInterface, VirtualHostConfig, VirtualHostId};

/// Why a specification cannot be turned into a configuration.
#[derive(Debug, Error)]
pub enum SpecError {
    /// The authenticator refused it (no address).
    #[error("{0}")]
    Auth(#[from] AuthSetupError),
    /// Two sources of one family.
    #[error("two {family} source addresses ({first} and {second}); give one per family")]
    TwoSources {
        /// "IPv4" or "IPv6".
        family: &'static str,
        /// The first one given.
        first: IpAddr,
        /// The second one.
        second: IpAddr,
    },
    /// IPv4 virtual addresses need an IPv4 source (UCARP's `--srcip`).
    #[error("IPv4 virtual addresses need an IPv4 source address (--srcip/srcip)")]
    NoIpv4Source,
    /// A source of a family the virtual host has no address of.
    #[error("source address {0} is of a family none of the virtual addresses has")]
    UselessSource(IpAddr),
    /// A peer of a family the virtual host does not advertise on.
    #[error("peer {0} is of a family none of the virtual addresses has")]
    LonelyPeer(IpAddr),
    /// The IPv6 source was to be the interface's link-local address, which
    /// could not be read.
    #[error("no IPv6 source: {0}")]
    NoLinkLocal(String),
    /// A virtual MAC carries owned addresses; there are none.
    #[error("a virtual MAC (vmac) needs addresses the daemon owns (ADDRESS/PREFIX)")]
    VmacWithoutOwnedAddresses,
}

/// A virtual address: the value, and the text the operator wrote (scripts
/// get it verbatim, as UCARP passes `-a`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualAddress {
    /// The address.
    pub addr: IpAddr,
    /// As written (`10.0.0.9`, or `010.000.000.009` if that is what was
    /// given), without a prefix length.
    pub as_given: String,
    /// Given with a prefix length (`10.1.1.252/24`): the daemon adds the
    /// address on becoming master and removes it on leaving
    /// ([`crate::addrs`]).
    pub prefix: Option<u8>,
}

impl VirtualAddress {
    /// An address written the canonical way.
    pub fn new(addr: IpAddr) -> VirtualAddress {
        VirtualAddress {
            addr,
            as_given: addr.to_string(),
            prefix: None,
        }
    }

    /// The managed address, if the daemon owns it.
    pub fn managed(&self) -> Option<crate::addrs::ManagedAddress> {
        self.prefix.map(|prefix| crate::addrs::ManagedAddress {
            addr: self.addr,
            prefix,
        })
    }
}

/// The scripts of a virtual host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptSpec {
    /// Run on becoming master (`-u`).
    pub up: Option<PathBuf>,
    /// Run on leaving master (`-d`).
    pub down: Option<PathBuf>,
    /// Extra third argument (`-x`).
    pub xparam: Option<String>,
    /// How long a script may run before its process group is killed.
    pub timeout: Duration,
}

impl Default for ScriptSpec {
    fn default() -> ScriptSpec {
        ScriptSpec {
            up: None,
            down: None,
            xparam: None,
            timeout: Duration::from_secs(60),
        }
    }
}

/// Every setting of one virtual host. Two specs that compare equal run
/// identically, which is what a reload uses to leave a virtual host alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualHostSpec {
    /// The interface (`-i`).
    pub interface: String,
    /// The vhid (`-v`).
    pub vhid: u8,
    /// The shared password (`-p`/`-o`).
    pub password: Password,
    /// Our real addresses, the adverts' sources (`-s`): at most one per
    /// family. IPv4 virtual addresses need an IPv4 one; IPv6 virtual
    /// addresses without an IPv6 one are advertised from the interface's
    /// link-local address, as the BSDs do.
    pub sources: Vec<IpAddr>,
    /// The virtual addresses (`-a`), in the order given.
    pub addresses: Vec<VirtualAddress>,
    /// Advertisement base interval in seconds (`-b`).
    pub advbase: u8,
    /// Skew in 1/256 s (`-k`).
    pub advskew: u8,
    /// Adverts missed before the master is declared down (`-r`).
    pub deadratio: u32,
    /// Take over from a slower master (`-P`).
    pub preempt: bool,
    /// No down script at start-up (`-n`).
    pub neutral: bool,
    /// Ignore carrier (`-S`).
    pub ignore_link_state: bool,
    /// The IPv4 CARP group (`-m` with an IPv4 address).
    pub group: Ipv4Addr,
    /// The IPv6 CARP group (`-m` with an IPv6 address).
    pub group6: Ipv6Addr,
    /// Ethernet broadcast frames (`-M`).
    pub broadcast: bool,
    /// Unicast peers (`--peer`): adverts go to each instead of the group.
    pub peers: Vec<IpAddr>,
    /// Interfaces whose loss of carrier demotes us (`--track-interface`).
    pub track_interfaces: Vec<TrackedInterface>,
    /// Health checks whose failure demotes us (`--track-script`).
    pub track_scripts: Vec<crate::TrackScript>,
    /// The operator's demotion (config `demote`), changed live on reload.
    pub demote: u8,
    /// Also add the demotion to the advertised skew for UCARP peers
    /// (config `demote-skew`, default true).
    pub demote_skew: bool,
    /// Which replays are refused (`--replay`, config `replay`).
    pub replay: carp_engine::ReplayMode,
    /// Re-announce the addresses this often while master
    /// (`--garp-refresh`, config `garp-refresh`).
    pub garp_refresh: Option<Duration>,
    /// The owned addresses live on a virtual MAC device of this name
    /// (`--vmac`, config `vmac`; [`crate::vmac`]). `None`: on the
    /// interface.
    pub vmac: Option<String>,
    /// Demotion group: members share one demotion (config `demote-group`).
    pub demote_group: Option<String>,
    /// Demotion for a while after start: how much and how long (config
    /// `startup-demote`, `startup-demote-for`).
    pub startup_demote: (u8, Duration),
    /// Up and down scripts.
    pub scripts: ScriptSpec,
}

/// The interface's link-local address, the default IPv6 source.
fn link_local_of(info: &InterfaceInfo) -> Result<Ipv6Addr, SpecError> {
    info.link_local().ok_or_else(|| {
        SpecError::NoLinkLocal(format!(
            "{} has no IPv6 link-local address; bring it up with IPv6 enabled, \
             or give an IPv6 source address",
            info.name
        ))
    })
}

impl VirtualHostSpec {
    /// UCARP's defaults for everything but what identifies the virtual
    /// host: advbase 1, advskew 0, deadratio 3, group 224.0.0.18.
    pub fn new(
        interface: &str,
        vhid: u8,
        password: Password,
        mut sources: Vec<IpAddr>,
        addresses: Vec<VirtualAddress>,
    ) -> VirtualHostSpec {
        // IPv4 first, whatever the order given: the order means nothing,
        // and two specs that differ only in it must compare equal (a
        // reload leaves such a virtual host alone).
        sources.sort_by_key(IpAddr::is_ipv6);
        VirtualHostSpec {
            interface: interface.to_string(),
            vhid,
            password,
            sources,
            addresses,
            advbase: 1,
            advskew: 0,
            deadratio: 3,
            preempt: false,
            neutral: false,
            ignore_link_state: false,
            group: carp_proto::DEFAULT_GROUP,
            group6: carp_proto::DEFAULT_GROUP6,
            broadcast: false,
            peers: Vec::new(),
            track_interfaces: Vec::new(),
            track_scripts: Vec::new(),
            demote: 0,
            demote_skew: true,
            replay: carp_engine::ReplayMode::default(),
            garp_refresh: None,
            vmac: None,
            demote_group: None,
            startup_demote: (0, Duration::ZERO),
            scripts: ScriptSpec::default(),
        }
    }

    /// Its identity in the runtime.
    pub fn id(&self) -> VirtualHostId {
        VirtualHostId {
            interface: self.interface.clone(),
            vhid: self.vhid,
        }
    }

    /// Whether the IPv6 source is to be the interface's link-local address.
    pub fn needs_link_local(&self) -> bool {
        self.addresses.iter().any(|a| a.addr.is_ipv6()) && !self.sources.iter().any(IpAddr::is_ipv6)
    }

    /// The engine's sources: the IPv4 one (if any IPv4 address), then the
    /// IPv6 one (if any IPv6 address), given or the interface's link-local.
    fn resolve_sources(
        &self,
        link_local: impl FnOnce() -> Result<Ipv6Addr, SpecError>,
    ) -> Result<(IpAddr, Option<Ipv6Addr>), SpecError> {
        let mut v4 = None;
        let mut v6 = None;
        for &source in &self.sources {
            let (slot, family) = match source {
                IpAddr::V4(_) => (&mut v4, "IPv4"),
                IpAddr::V6(_) => (&mut v6, "IPv6"),
            };
            if let Some(first) = *slot {
                return Err(SpecError::TwoSources {
                    family,
                    first,
                    second: source,
                });
            }
            *slot = Some(source);
        }
        let has_v4 = self.addresses.iter().any(|a| a.addr.is_ipv4());
        let has_v6 = self.addresses.iter().any(|a| a.addr.is_ipv6());
        if let Some(peer) = self
            .peers
            .iter()
            .find(|p| if p.is_ipv4() { !has_v4 } else { !has_v6 })
        {
            return Err(SpecError::LonelyPeer(*peer));
        }
        for (source, has) in [(v4, has_v4), (v6, has_v6)] {
            if let Some(source) = source.filter(|_| !has) {
                return Err(SpecError::UselessSource(source));
            }
        }
        let v6 = match v6 {
            Some(IpAddr::V6(v6)) => Some(v6),
            _ if has_v6 => Some(link_local()?),
            _ => None,
        };
        match (v4, v6) {
            (Some(v4), v6) => Ok((v4, v6)),
            (None, _) if has_v4 => Err(SpecError::NoIpv4Source),
            (None, Some(v6)) => Ok((IpAddr::V6(v6), None)),
            (None, None) => Err(SpecError::Auth(AuthSetupError::NoAddress)),
        }
    }

    /// The checks on sources that need no interface: one per family, each
    /// of a family some virtual address has, IPv4 addresses with an IPv4
    /// source.
    pub fn check_sources(&self) -> Result<(), SpecError> {
        self.resolve_sources(|| Ok(Ipv6Addr::LOCALHOST)).map(|_| ())
    }

    /// The runtime's configuration and the scripts' configuration.
    /// `initial_counter` seeds the replay counter (use
    /// [`crate::initial_counter`]). Range checks are the engine's
    /// ([`carp_engine::Config::validate`], run when the virtual host is
    /// added). An IPv6 virtual host without an IPv6 source reads the
    /// interface's link-local address here, so the interface must exist.
    pub fn build(
        &self,
        initial_counter: u64,
    ) -> Result<(VirtualHostConfig, ScriptConfig), SpecError> {
        self.build_with(initial_counter, || {
            let info = InterfaceInfo::lookup(&self.interface)
                .map_err(|e: IoError| SpecError::NoLinkLocal(e.to_string()))?;
            link_local_of(&info)
        })
    }

    /// [`VirtualHostSpec::build`] for a caller that has just read the
    /// interface (`info`), so it is not read again.
    pub fn build_on(
        &self,
        initial_counter: u64,
        info: &InterfaceInfo,
    ) -> Result<(VirtualHostConfig, ScriptConfig), SpecError> {
        self.build_with(initial_counter, || link_local_of(info))
    }

    /// [`VirtualHostSpec::build`] with the link-local address supplied.
    pub fn build_with(
        &self,
        initial_counter: u64,
        link_local: impl FnOnce() -> Result<Ipv6Addr, SpecError>,
    ) -> Result<(VirtualHostConfig, ScriptConfig), SpecError> {
        let addresses: Vec<IpAddr> = self.addresses.iter().map(|a| a.addr).collect();
        let auth = VirtualHostAuth::new(&self.password, self.vhid, &addresses)?;
        let (source, source_v6) = self.resolve_sources(link_local)?;
        let mut engine = Config::new(auth, source, initial_counter)
            .with_interval(self.advbase, self.advskew)
            .with_deadratio(self.deadratio)
            .with_preempt(self.preempt);
        engine.src_addr_v6 = source_v6;
        engine.neutral = self.neutral;
        engine.ignore_link_state = self.ignore_link_state;
        let scripts = ScriptConfig {
            up: self.scripts.up.clone(),
            down: self.scripts.down.clone(),
            interface: self.interface.clone(),
            addresses: self.addresses.iter().map(|a| a.as_given.clone()).collect(),
            xparam: self.scripts.xparam.clone(),
            timeout: self.scripts.timeout,
            vhid: self.vhid,
            managed: self
                .addresses
                .iter()
                .filter_map(VirtualAddress::managed)
                .collect(),
            vmac: self
                .vmac
                .as_deref()
                .map(|name| crate::vmac::VirtualMac::new(self.vhid, Some(name))),
        };
        if scripts.vmac.is_some() && scripts.managed.is_empty() {
            return Err(SpecError::VmacWithoutOwnedAddresses);
        }
        let mut config = VirtualHostConfig::new(&self.interface, engine);
        config.group = self.group;
        config.group6 = self.group6;
        config.broadcast = self.broadcast;
        config.peers = self.peers.clone();
        config.track_interfaces = self.track_interfaces.clone();
        config.track_scripts = self.track_scripts.clone();
        config.demote_group = self.demote_group.clone();
        config.startup_demote = self.startup_demote;
        config.engine.demote = self.demote;
        config.engine.demote_skew = self.demote_skew;
        config.engine.replay = self.replay;
        config.garp_refresh = self.garp_refresh;
        config.vmac = scripts.vmac.as_ref().map(|v| v.mac);
        config.hook_wait = scripts.longest_wait();
        config.managed = scripts.managed.iter().map(|m| m.addr).collect();
        Ok((config, scripts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> VirtualHostSpec {
        let mut spec = VirtualHostSpec::new(
            "eth0",
            7,
            Password::new(b"secret").unwrap(),
            vec![IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))],
            vec![
                VirtualAddress {
                    addr: "10.0.0.20".parse().unwrap(),
                    as_given: "10.0.0.020".into(),
                    prefix: None,
                },
                VirtualAddress::new("10.0.0.10".parse().unwrap()),
            ],
        );
        spec.advbase = 2;
        spec.advskew = 9;
        spec.deadratio = 4;
        spec.preempt = true;
        spec.neutral = true;
        spec.ignore_link_state = true;
        spec.group = Ipv4Addr::new(239, 1, 1, 1);
        spec.broadcast = true;
        spec.scripts.up = Some("/up".into());
        spec.scripts.timeout = Duration::from_secs(5);
        spec
    }

    #[test]
    fn every_setting_reaches_the_runtime_and_the_scripts() {
        let (config, scripts) = spec().build(42).unwrap();
        let e = &config.engine;
        assert_eq!((e.advbase, e.advskew, e.deadratio), (2, 9, 4));
        assert!(e.preempt && e.neutral && e.ignore_link_state);
        assert_eq!(e.initial_counter, 42);
        assert_eq!(e.vhid(), 7);
        assert_eq!(config.id(), spec().id());
        assert_eq!(
            (config.group, config.broadcast),
            (Ipv4Addr::new(239, 1, 1, 1), true)
        );
        // The digest's order is ascending; the scripts' is the operator's.
        assert_eq!(
            e.auth.addresses(),
            &[
                "10.0.0.10".parse::<IpAddr>().unwrap(),
                "10.0.0.20".parse().unwrap()
            ]
        );
        assert_eq!(scripts.addresses, ["10.0.0.020", "10.0.0.10"]);
        assert_eq!(scripts.up, Some("/up".into()));
        assert_eq!(config.hook_wait, scripts.longest_wait());
    }

    #[test]
    fn equal_specs_are_unchanged_and_any_difference_is_a_change() {
        assert_eq!(spec(), spec());
        let mut other = spec();
        other.scripts.xparam = Some("x".into());
        assert_ne!(spec(), other);
        let mut other = spec();
        other.password = Password::new(b"secreT").unwrap();
        assert_ne!(spec(), other);
    }

    fn link_local() -> Result<Ipv6Addr, SpecError> {
        Ok("fe80::1".parse().unwrap())
    }

    fn with(sources: &[&str], addresses: &[&str]) -> VirtualHostSpec {
        let mut spec = spec();
        spec.sources = sources.iter().map(|s| s.parse().unwrap()).collect();
        spec.addresses = addresses
            .iter()
            .map(|a| VirtualAddress::new(a.parse().unwrap()))
            .collect();
        spec
    }

    #[test]
    fn sources_follow_the_families_of_the_addresses() {
        let engine = |spec: VirtualHostSpec| spec.build_with(1, link_local).map(|(c, _)| c);
        // IPv6 only: the link-local address unless one is given.
        let c = engine(with(&[], &["2001:db8::9"])).unwrap();
        assert_eq!(c.sources(), ["fe80::1".parse::<IpAddr>().unwrap()]);
        assert_eq!(c.groups(), [IpAddr::V6(carp_proto::DEFAULT_GROUP6)]);
        let c = engine(with(&["2001:db8::2"], &["2001:db8::9"])).unwrap();
        assert_eq!(c.engine.src_addr, "2001:db8::2".parse::<IpAddr>().unwrap());
        // Dual stack: IPv4 first (it breaks ties), IPv6 second.
        let c = engine(with(&["10.0.0.1"], &["2001:db8::9", "10.0.0.9"])).unwrap();
        assert_eq!(c.engine.src_addr, "10.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(c.engine.src_addr_v6, Some("fe80::1".parse().unwrap()));
        assert_eq!(c.groups().len(), 2);
        c.check_families().unwrap();
        // What cannot work is refused with its reason.
        let refused = |sources: &[&str], addresses: &[&str]| {
            engine(with(sources, addresses)).unwrap_err().to_string()
        };
        assert!(refused(&[], &["10.0.0.9"]).contains("need an IPv4 source"));
        assert!(refused(&["fe80::2"], &["10.0.0.9"]).contains("fe80::2 is of a family"));
        assert!(refused(&["10.0.0.1", "10.0.0.2"], &["10.0.0.9"]).contains("two IPv4"));
        let no_link_local = with(&[], &["2001:db8::9"])
            .build_with(1, || Err(SpecError::NoLinkLocal("eth0 has none".into())))
            .unwrap_err();
        assert_eq!(no_link_local.to_string(), "no IPv6 source: eth0 has none");
    }
}
