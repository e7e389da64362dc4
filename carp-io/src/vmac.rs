//! The optional virtual MAC (`--vmac`): a macvlan device on the CARP
//! interface with MAC 00:00:5e:00:01:vhid (OpenBSD carp's and VRRP's) that
//! carries the owned addresses. Every master answers for them with the same
//! MAC, so a takeover changes no client's neighbour entry; the gratuitous
//! ARP after it only moves the MAC in the switches.
//!
//! The device exists while the daemon runs: created at start, down and
//! without addresses while backup (a down macvlan receives nothing, so
//! frames for the virtual MAC are dropped on backups), brought up before
//! the addresses are added on becoming master, and taken down after they
//! are removed on leaving it. Deleted when the last virtual host using it
//! stops. Hand-made rtnetlink like [`crate::addrs`], for the same reasons;
//! all of it runs off the protocol thread (start-up, reload, the script
//! supervisor).
//!
//! Linux answers ARP for any local address on any interface and announces
//! the packet's source address in its own requests, which would teach
//! clients the host's real MAC for a virtual address. So the parent gets
//! `arp_ignore=1` (answer only for its own addresses) and `arp_announce=2`
//! (announce its own address), raised if lower and left so at exit; the
//! device gets the same, and `rp_filter=2` (replies to clients leave by
//! the parent, so a strict reverse-path check would drop their packets).

use std::collections::HashMap;
use std::io;
use std::sync::Mutex;

use carp_proto::ethernet::MacAddr;
use log::{info, warn};

use crate::addrs::{attribute, exchange, message, NLM_F_CREATE, NLM_F_EXCL};
use crate::iface::InterfaceInfo;

const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_LINK: u16 = 5;
const IFLA_LINKINFO: u16 = 18;
const IFLA_AF_SPEC: u16 = 26;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const IFLA_MACVLAN_MODE: u16 = 1;
/// No traffic between macvlans of one parent (keepalived's choice too).
const MACVLAN_MODE_PRIVATE: u32 = 1;
const IFLA_INET6_ADDR_GEN_MODE: u16 = 8;
/// No link-local address: an up device would otherwise send duplicate
/// address detection and router solicitations from the virtual MAC.
const IN6_ADDR_GEN_MODE_NONE: u8 = 1;
const IFF_UP: u32 = 1;

/// A virtual host's virtual MAC device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualMac {
    /// The macvlan device's name (`ucarp7` unless configured).
    pub name: String,
    /// 00:00:5e:00:01:vhid.
    pub mac: MacAddr,
}

impl VirtualMac {
    /// The virtual MAC of `vhid`, on a device called `name` (default
    /// `ucarp<vhid>`).
    pub fn new(vhid: u8, name: Option<&str>) -> VirtualMac {
        VirtualMac {
            name: name.map_or_else(|| default_name(vhid), str::to_string),
            mac: virtual_mac(vhid),
        }
    }
}

/// 00:00:5e:00:01:vhid, the IANA range VRRP and OpenBSD carp use.
pub fn virtual_mac(vhid: u8) -> MacAddr {
    MacAddr([0x00, 0x00, 0x5e, 0x00, 0x01, vhid])
}

/// The device name when none is configured.
pub fn default_name(vhid: u8) -> String {
    format!("ucarp{vhid}")
}

/// Whether `name` can name a network device: 1 to 15 bytes, none of them
/// `/`, `:`, whitespace or NUL, and not `.` or `..`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && !name
            .bytes()
            .any(|b| b == b'/' || b == b':' || b == 0 || b.is_ascii_whitespace())
}

/// How many of this process's virtual hosts use each device: a reload
/// that restarts a virtual host creates its new hooks before the old ones
/// finish, and the device must outlive both.
static USERS: Mutex<Option<HashMap<String, usize>>> = Mutex::new(None);

/// One virtual host's use of its device; the last one dropped deletes it.
#[derive(Debug)]
pub struct Lease {
    vmac: VirtualMac,
}

impl Lease {
    /// Makes sure the device exists on `parent` with the virtual MAC, down
    /// and without addresses if this process did not have it yet (a device
    /// of ours left by an earlier run is deleted and made again, in case
    /// its parent changed), and sets the ARP behaviour described above.
    pub fn acquire(parent: &str, vmac: &VirtualMac) -> io::Result<Lease> {
        let mut users = USERS.lock().unwrap_or_else(|e| e.into_inner());
        let count = users
            .get_or_insert_with(HashMap::new)
            .entry(vmac.name.clone())
            .or_default();
        if *count == 0 {
            create(parent, vmac)?;
        }
        *count += 1;
        Ok(Lease { vmac: vmac.clone() })
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut users = USERS.lock().unwrap_or_else(|e| e.into_inner());
        let Some(count) = users.as_mut().and_then(|u| u.get_mut(&self.vmac.name)) else {
            return;
        };
        *count -= 1;
        if *count > 0 {
            return;
        }
        match delete(&self.vmac) {
            Ok(()) => info!("deleted virtual MAC device {}", self.vmac.name),
            Err(e) => warn!("cannot delete virtual MAC device {}: {e}", self.vmac.name),
        }
    }
}

/// Creates the device, first deleting one of ours of the same name.
fn create(parent: &str, vmac: &VirtualMac) -> io::Result<()> {
    let parent_index = nix::net::if_::if_nametoindex(parent)
        .map_err(|e| io::Error::other(format!("interface {parent}: {e}")))?;
    if let Ok(existing) = InterfaceInfo::lookup(&vmac.name) {
        if existing.mac != vmac.mac {
            return Err(io::Error::other(format!(
                "a device named {} exists and is not a virtual MAC device \
                 (its MAC is {}); name ours with --vmac-name",
                vmac.name, existing.mac
            )));
        }
        info!(
            "virtual MAC device {} left by an earlier run: made again",
            vmac.name
        );
        exchange(&link_request(RTM_DELLINK, 0, existing.index, None, &[]))?;
    }
    let mut body = Vec::new();
    let mut name = vmac.name.as_bytes().to_vec();
    name.push(0);
    attribute(&mut body, IFLA_IFNAME, &name);
    attribute(&mut body, IFLA_LINK, &parent_index.to_ne_bytes());
    attribute(&mut body, IFLA_ADDRESS, &vmac.mac.0);
    let mut data = Vec::new();
    attribute(
        &mut data,
        IFLA_MACVLAN_MODE,
        &MACVLAN_MODE_PRIVATE.to_ne_bytes(),
    );
    let mut info = Vec::new();
    attribute(&mut info, IFLA_INFO_KIND, b"macvlan");
    attribute(&mut info, IFLA_INFO_DATA, &data);
    attribute(&mut body, IFLA_LINKINFO, &info);
    exchange(&link_request(
        RTM_NEWLINK,
        NLM_F_CREATE | NLM_F_EXCL,
        0,
        None,
        &body,
    ))
    .map_err(|e| io::Error::new(e.kind(), format!("creating macvlan {}: {e}", vmac.name)))?;
    let index = nix::net::if_::if_nametoindex(vmac.name.as_str())?;
    no_link_local(index, &vmac.name);
    for (key, value) in [("arp_ignore", 1), ("arp_announce", 2), ("rp_filter", 2)] {
        raise_sysctl(&vmac.name, key, value);
    }
    for (key, value) in [("arp_ignore", 1), ("arp_announce", 2)] {
        raise_sysctl(parent, key, value);
    }
    info!(
        "virtual MAC device {} ({}) created on {parent}",
        vmac.name, vmac.mac
    );
    Ok(())
}

/// Asks for no IPv6 link-local address on the device (the kernel takes
/// this only once the device exists). Without IPv6 there is nothing to do.
fn no_link_local(index: u32, name: &str) {
    let mut mode = Vec::new();
    attribute(
        &mut mode,
        IFLA_INET6_ADDR_GEN_MODE,
        &[IN6_ADDR_GEN_MODE_NONE],
    );
    let mut inet6 = Vec::new();
    attribute(&mut inet6, nix::libc::AF_INET6 as u16, &mode);
    let mut body = Vec::new();
    attribute(&mut body, IFLA_AF_SPEC, &inet6);
    if let Err(e) = exchange(&link_request(RTM_NEWLINK, 0, index, None, &body)) {
        if e.raw_os_error() != Some(nix::libc::EAFNOSUPPORT) {
            warn!("{name}: cannot turn off its IPv6 link-local address: {e}");
        }
    }
}

/// Sets `net.ipv4.conf.<device>.<key>` to `value` if it is lower. A
/// failure (a read-only /proc/sys, as under systemd's
/// ProtectKernelTunables) is logged with what to set instead.
fn raise_sysctl(device: &str, key: &str, value: u32) {
    let path = format!("/proc/sys/net/ipv4/conf/{device}/{key}");
    let current = std::fs::read_to_string(&path)
        .ok()
        .and_then(|text| text.trim().parse::<u32>().ok());
    if current.is_some_and(|current| current >= value) {
        return;
    }
    match std::fs::write(&path, format!("{value}\n")) {
        Ok(()) => info!(
            "set net.ipv4.conf.{device}.{key} = {value} (virtual MAC: {})",
            why(key)
        ),
        Err(e) => warn!(
            "cannot set net.ipv4.conf.{device}.{key} = {value} ({e}): {}; \
             set net.ipv4.conf.all.{key} = {value} in /etc/sysctl.d",
            why(key)
        ),
    }
}

fn why(key: &str) -> &'static str {
    match key {
        "arp_ignore" => {
            "otherwise the interface answers ARP for the virtual address with its own MAC"
        }
        "arp_announce" => {
            "otherwise ARP requests announce the virtual address with the interface's own MAC"
        }
        _ => "otherwise a strict reverse-path check drops clients' packets to the virtual address",
    }
}

/// Brings the device up (before the addresses are added) or down (after
/// they are removed). A device deleted under us is made again first.
pub fn set_up(parent: &str, vmac: &VirtualMac, up: bool) -> io::Result<()> {
    let index = match nix::net::if_::if_nametoindex(vmac.name.as_str()) {
        Ok(index) => index,
        Err(_) if !up => return Ok(()),
        Err(_) => {
            warn!("virtual MAC device {} vanished: made again", vmac.name);
            create(parent, vmac)?;
            nix::net::if_::if_nametoindex(vmac.name.as_str())?
        }
    };
    exchange(&link_request(RTM_NEWLINK, 0, index, Some(up), &[]))
}

/// Deletes the device, if it is still ours.
fn delete(vmac: &VirtualMac) -> io::Result<()> {
    match InterfaceInfo::lookup(&vmac.name) {
        Ok(info) if info.mac == vmac.mac => {
            exchange(&link_request(RTM_DELLINK, 0, info.index, None, &[]))
        }
        _ => Ok(()),
    }
}

/// An RTM_*LINK request: `ifinfomsg` (family, type, index, and with
/// `up` the IFF_UP flag, the only one it changes) and `attributes`.
fn link_request(
    kind: u16,
    nl_flags: u16,
    index: u32,
    up: Option<bool>,
    attributes: &[u8],
) -> Vec<u8> {
    let (flags, change) = match up {
        Some(true) => (IFF_UP, IFF_UP),
        Some(false) => (0, IFF_UP),
        None => (0, 0),
    };
    let mut body = Vec::with_capacity(16 + attributes.len());
    body.extend_from_slice(&[0, 0, 0, 0]); // family AF_UNSPEC, pad, type
    body.extend_from_slice(&index.to_ne_bytes());
    body.extend_from_slice(&flags.to_ne_bytes());
    body.extend_from_slice(&change.to_ne_bytes());
    body.extend_from_slice(attributes);
    message(kind, nl_flags, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_virtual_mac_is_iana_vrrp_range() {
        assert_eq!(virtual_mac(7).0, [0, 0, 0x5e, 0, 1, 7]);
        assert_eq!(VirtualMac::new(42, None).name, "ucarp42");
        assert_eq!(VirtualMac::new(42, Some("vip0")).name, "vip0");
    }

    #[test]
    fn device_names_follow_the_kernels_rules() {
        for good in ["ucarp7", "vip-db.1", "abcdefghijklmno"] {
            assert!(valid_name(good), "{good}");
        }
        for bad in ["", "abcdefghijklmnop", "a/b", "a:b", "a b", ".", ".."] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn an_up_request_changes_only_the_up_flag() {
        let m = link_request(RTM_NEWLINK, 0, 9, Some(true), &[]);
        assert_eq!(m.len(), 32);
        assert_eq!(u16::from_ne_bytes([m[4], m[5]]), RTM_NEWLINK);
        assert_eq!(u32::from_ne_bytes(m[20..24].try_into().unwrap()), 9);
        assert_eq!(u32::from_ne_bytes(m[24..28].try_into().unwrap()), IFF_UP);
        assert_eq!(u32::from_ne_bytes(m[28..32].try_into().unwrap()), IFF_UP);
        let down = link_request(RTM_NEWLINK, 0, 9, Some(false), &[]);
        assert_eq!(u32::from_ne_bytes(down[24..28].try_into().unwrap()), 0);
        assert_eq!(u32::from_ne_bytes(down[28..32].try_into().unwrap()), IFF_UP);
    }
}
