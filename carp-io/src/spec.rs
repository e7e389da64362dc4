//! One virtual host as an operator describes it: every setting in one
//! place, in the operator's terms. The `ucarp` command line and the
//! configuration file both produce these; [`VirtualHostSpec::build`] is the
//! only place that turns one into the runtime's configuration and its
//! scripts' configuration, so the two forms cannot drift apart.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use carp_engine::Config;
use carp_proto::auth::AuthSetupError;
use carp_proto::{Password, VirtualHostAuth};

use crate::{ScriptConfig, VirtualHostConfig, VirtualHostId};

/// A virtual address: the value, and the text the operator wrote (scripts
/// get it verbatim, as UCARP passes `-a`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualAddress {
    /// The address.
    pub addr: IpAddr,
    /// As written (`10.0.0.9`, or `010.000.000.009` if that is what was
    /// given).
    pub as_given: String,
}

impl VirtualAddress {
    /// An address written the canonical way.
    pub fn new(addr: IpAddr) -> VirtualAddress {
        VirtualAddress {
            addr,
            as_given: addr.to_string(),
        }
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
    /// Our real address, the adverts' source (`-s`).
    pub source: IpAddr,
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
    /// The CARP group (`-m`).
    pub group: Ipv4Addr,
    /// Ethernet broadcast frames (`-M`).
    pub broadcast: bool,
    /// Up and down scripts.
    pub scripts: ScriptSpec,
}

impl VirtualHostSpec {
    /// UCARP's defaults for everything but what identifies the virtual
    /// host: advbase 1, advskew 0, deadratio 3, group 224.0.0.18.
    pub fn new(
        interface: &str,
        vhid: u8,
        password: Password,
        source: IpAddr,
        addresses: Vec<VirtualAddress>,
    ) -> VirtualHostSpec {
        VirtualHostSpec {
            interface: interface.to_string(),
            vhid,
            password,
            source,
            addresses,
            advbase: 1,
            advskew: 0,
            deadratio: 3,
            preempt: false,
            neutral: false,
            ignore_link_state: false,
            group: carp_proto::DEFAULT_GROUP,
            broadcast: false,
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

    /// The runtime's configuration and the scripts' configuration.
    /// `initial_counter` seeds the replay counter (use
    /// [`crate::random_u64`]). Range checks are the engine's
    /// ([`carp_engine::Config::validate`], run when the virtual host is
    /// added).
    pub fn build(
        &self,
        initial_counter: u64,
    ) -> Result<(VirtualHostConfig, ScriptConfig), AuthSetupError> {
        let addresses: Vec<IpAddr> = self.addresses.iter().map(|a| a.addr).collect();
        let auth = VirtualHostAuth::new(&self.password, self.vhid, &addresses)?;
        let mut engine = Config::new(auth, self.source, initial_counter)
            .with_interval(self.advbase, self.advskew)
            .with_deadratio(self.deadratio)
            .with_preempt(self.preempt);
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
        };
        let mut config = VirtualHostConfig::new(&self.interface, engine);
        config.group = self.group;
        config.broadcast = self.broadcast;
        config.hook_wait = scripts.longest_wait();
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
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            vec![
                VirtualAddress {
                    addr: "10.0.0.20".parse().unwrap(),
                    as_given: "10.0.0.020".into(),
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
}
