//! What the node needs to know about its interface, read with getifaddrs(3)
//! in the caller's network namespace.

use std::net::{Ipv4Addr, Ipv6Addr};

use carp_proto::ethernet::MacAddr;
use nix::ifaddrs::getifaddrs;
use nix::net::if_::InterfaceFlags;

use crate::IoError;

/// An interface's identity and addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceInfo {
    /// Name, as given.
    pub name: String,
    /// Kernel index.
    pub index: u32,
    /// Its own MAC address.
    pub mac: MacAddr,
    /// IPv4 addresses configured on it.
    pub ipv4: Vec<Ipv4Addr>,
    /// IPv6 addresses configured on it.
    pub ipv6: Vec<Ipv6Addr>,
    /// Whether it forwards IPv6 (`net.ipv6.conf.<name>.forwarding`): then
    /// neighbour advertisements say we are a router.
    pub ipv6_forwarding: bool,
    /// Whether IPv6 is off on it (`net.ipv6.conf.<name>.disable_ipv6`, or
    /// no IPv6 in the kernel): the kernel then drops every IPv6 packet
    /// arriving there, adverts included.
    pub ipv6_disabled: bool,
    /// Administratively up and with carrier (IFF_UP and IFF_RUNNING).
    pub running: bool,
}

impl InterfaceInfo {
    /// Looks the interface up by name.
    pub fn lookup(name: &str) -> Result<InterfaceInfo, IoError> {
        let entries = getifaddrs().map_err(|e| IoError::socket("getifaddrs", name, e.into()))?;
        let mut found = false;
        let mut info = InterfaceInfo {
            name: name.to_string(),
            index: 0,
            mac: MacAddr::default(),
            ipv4: Vec::new(),
            ipv6: Vec::new(),
            ipv6_forwarding: false,
            ipv6_disabled: false,
            running: false,
        };
        let mut has_mac = false;
        for entry in entries.filter(|e| e.interface_name == name) {
            found = true;
            info.running = is_running(entry.flags);
            let Some(address) = entry.address else {
                continue;
            };
            if let Some(link) = address.as_link_addr() {
                info.index = link.ifindex() as u32;
                if let Some(mac) = link.addr() {
                    info.mac = MacAddr(mac);
                    has_mac = mac != [0; 6];
                }
            } else if let Some(inet) = address.as_sockaddr_in() {
                info.ipv4.push(inet.ip());
            } else if let Some(inet6) = address.as_sockaddr_in6() {
                info.ipv6.push(inet6.ip());
            }
        }
        if !found {
            return Err(IoError::NoSuchInterface(name.to_string()));
        }
        if !has_mac {
            return Err(IoError::NoMacAddress(name.to_string()));
        }
        // procfs, read when the interface is opened (never per packet).
        let ipv6_setting = |setting: &str| {
            std::fs::read_to_string(format!("/proc/sys/net/ipv6/conf/{name}/{setting}"))
                .map(|v| v.trim() != "0")
        };
        info.ipv6_forwarding = ipv6_setting("forwarding").unwrap_or(false);
        info.ipv6_disabled = ipv6_setting("disable_ipv6").unwrap_or(true);
        Ok(info)
    }
}

impl InterfaceInfo {
    /// Its IPv6 link-local address: the source of IPv6 adverts and
    /// neighbour advertisements unless one is configured (as the BSDs do).
    /// The lowest, if there are several.
    pub fn link_local(&self) -> Option<Ipv6Addr> {
        self.ipv6
            .iter()
            .filter(|a| carp_proto::ipv6::is_link_local(a))
            .min()
            .copied()
    }
}

fn is_running(flags: InterfaceFlags) -> bool {
    flags.contains(InterfaceFlags::IFF_UP) && flags.contains(InterfaceFlags::IFF_RUNNING)
}

/// What a re-check sees of an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkStatus {
    /// Kernel index: a deleted and re-created interface has a new one.
    pub index: u32,
    /// Up and with carrier.
    pub running: bool,
}

/// The state of `name` now: `Ok(None)` if no such interface exists, `Err`
/// if the kernel could not be asked (a transient failure, not "gone").
pub fn link_status(name: &str) -> std::io::Result<Option<LinkStatus>> {
    let entries = getifaddrs()?;
    let mut status = None;
    for entry in entries.filter(|e| e.interface_name == name) {
        let index = entry
            .address
            .as_ref()
            .and_then(|a| a.as_link_addr())
            .map(|link| link.ifindex() as u32);
        let previous: Option<LinkStatus> = status;
        status = Some(LinkStatus {
            index: index.or(previous.map(|s| s.index)).unwrap_or(0),
            running: is_running(entry.flags),
        });
    }
    Ok(status)
}
