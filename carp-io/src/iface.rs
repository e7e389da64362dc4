//! What the node needs to know about its interface, read with getifaddrs(3)
//! in the caller's network namespace.

use std::net::Ipv4Addr;

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
            }
        }
        if !found {
            return Err(IoError::NoSuchInterface(name.to_string()));
        }
        if !has_mac {
            return Err(IoError::NoMacAddress(name.to_string()));
        }
        Ok(info)
    }
}

fn is_running(flags: InterfaceFlags) -> bool {
    flags.contains(InterfaceFlags::IFF_UP) && flags.contains(InterfaceFlags::IFF_RUNNING)
}

/// Carrier state of `name`: `Some(true)` up and running, `Some(false)` down
/// or without carrier, `None` if the interface no longer exists.
pub fn link_state(name: &str) -> Option<bool> {
    let entries = getifaddrs().ok()?;
    let mut state = None;
    for entry in entries.filter(|e| e.interface_name == name) {
        state = Some(is_running(entry.flags));
    }
    state
}
