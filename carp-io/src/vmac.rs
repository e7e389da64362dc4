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

use crate::addrs::{attribute, exchange, message, query, NLM_F_CREATE, NLM_F_EXCL};

const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_GETLINK: u16 = 18;
const IFLA_IFALIAS: u16 = 20;
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
    /// The vhid the MAC was made from.
    pub fn vhid(&self) -> u8 {
        self.mac.0[5]
    }

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

/// The virtual hosts of this process using each device, by name: which
/// one (interface, vhid) and how many holds (a reload that restarts a
/// virtual host creates its new hooks before the old ones finish, and the
/// device must outlive both).
type Users = HashMap<String, (String, u8, usize)>;
static USERS: Mutex<Option<Users>> = Mutex::new(None);

/// One virtual host's hold on its device; the last one released deletes
/// it.
#[derive(Debug)]
pub struct Lease {
    parent: String,
    vmac: VirtualMac,
    released: bool,
}

impl Lease {
    /// Makes sure the device exists on `parent`, down and without
    /// addresses if this process did not have it yet (a device of this
    /// virtual host left by an earlier run is deleted and made again),
    /// and sets the ARP behaviour described above. `ipv6`: whether IPv6
    /// addresses will live on it (otherwise IPv6 is off there). Refused:
    /// a device of that name that is not ours, or one this process already
    /// uses for another virtual host.
    pub fn acquire(parent: &str, vmac: &VirtualMac, ipv6: bool) -> io::Result<Lease> {
        let mut users = USERS.lock().unwrap_or_else(|e| e.into_inner());
        let users = users.get_or_insert_with(HashMap::new);
        let vhid = vmac.vhid();
        match users.get_mut(&vmac.name) {
            Some((user_parent, user_vhid, count)) => {
                if (user_parent.as_str(), *user_vhid) != (parent, vhid) {
                    return Err(io::Error::other(format!(
                        "virtual MAC device {} is already used by vhid {user_vhid} on \
                         {user_parent}; give each virtual host its own vmac-name",
                        vmac.name
                    )));
                }
                *count += 1;
            }
            None => {
                create(parent, vmac, ipv6)?;
                users.insert(vmac.name.clone(), (parent.to_string(), vhid, 1));
            }
        }
        Ok(Lease {
            parent: parent.to_string(),
            vmac: vmac.clone(),
            released: false,
        })
    }

    /// Lets go of the device now, deleting it if no one else holds it
    /// (for a caller that may wait: the kernel takes its time).
    pub fn release(mut self) {
        self.released = true;
        if self.last_out() {
            delete_logged(&self.parent, &self.vmac);
        }
    }

    /// Counts this hold out; whether it was the last.
    fn last_out(&self) -> bool {
        let mut users = USERS.lock().unwrap_or_else(|e| e.into_inner());
        let Some(users) = users.as_mut() else {
            return false;
        };
        let Some((_, _, count)) = users.get_mut(&self.vmac.name) else {
            return false;
        };
        *count -= 1;
        if *count > 0 {
            return false;
        }
        users.remove(&self.vmac.name);
        true
    }
}

impl Drop for Lease {
    /// Dropped without [`Lease::release`] (maybe on the protocol thread):
    /// the deletion, if due, happens on a thread of its own.
    fn drop(&mut self) {
        if self.released || !self.last_out() {
            return;
        }
        let (parent, vmac) = (self.parent.clone(), self.vmac.clone());
        let spawned = std::thread::Builder::new()
            .name("ucarp-vmac".into())
            .spawn(move || delete_logged(&parent, &vmac));
        if let Err(e) = spawned {
            warn!("cannot delete virtual MAC device {}: {e}", self.vmac.name);
        }
    }
}

fn delete_logged(parent: &str, vmac: &VirtualMac) {
    match delete(parent, vmac) {
        Ok(true) => info!("deleted virtual MAC device {}", vmac.name),
        Ok(false) => {}
        Err(e) => warn!("cannot delete virtual MAC device {}: {e}", vmac.name),
    }
}

/// What the kernel says of a device.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Device {
    index: u32,
    /// The interface it sits on (IFLA_LINK).
    parent: Option<u32>,
    /// Its alias: our ownership tag on ours.
    alias: Option<String>,
    /// Its kind (`macvlan`), if it has one.
    kind: Option<String>,
}

/// The alias that marks a device as this virtual host's: a leftover is
/// recognised by it, and nothing without it is ever touched.
fn tag(parent: &str, vmac: &VirtualMac) -> String {
    format!("ucarp-rs vhid {} on {parent}", vmac.vhid())
}

impl Device {
    fn describe(&self) -> String {
        format!(
            "a {} device{}",
            self.kind.as_deref().unwrap_or("plain"),
            self.alias
                .as_deref()
                .map(|a| format!(" with alias {a:?}"))
                .unwrap_or_default()
        )
    }

    fn is_ours(&self, parent: &str, vmac: &VirtualMac) -> bool {
        self.kind.as_deref() == Some("macvlan")
            && self.alias.as_deref() == Some(tag(parent, vmac).as_str())
    }
}

/// Looks a device up by name: `None` if there is none.
fn device(name: &str) -> io::Result<Option<Device>> {
    let mut body = Vec::new();
    let mut name_z = name.as_bytes().to_vec();
    name_z.push(0);
    attribute(&mut body, IFLA_IFNAME, &name_z);
    match query(&link_request(RTM_GETLINK, 0, 0, None, &body)) {
        Ok(answer) => Ok(Some(parse_device(&answer))),
        Err(e) if e.raw_os_error() == Some(nix::libc::ENODEV) => Ok(None),
        Err(e) => Err(e),
    }
}

/// An RTM_NEWLINK message's index, parent, alias and kind.
fn parse_device(message: &[u8]) -> Device {
    let mut device = Device::default();
    if message.len() < 32 {
        return device;
    }
    device.index = u32::from_ne_bytes(message[20..24].try_into().expect("4 bytes"));
    for (kind, data) in attributes(&message[32..]) {
        match kind {
            IFLA_LINK if data.len() >= 4 => {
                device.parent = Some(u32::from_ne_bytes(data[..4].try_into().expect("4 bytes")));
            }
            IFLA_IFALIAS => device.alias = Some(c_string(data)),
            IFLA_LINKINFO => {
                for (info, value) in attributes(data) {
                    if info == IFLA_INFO_KIND {
                        device.kind = Some(c_string(value));
                    }
                }
            }
            _ => {}
        }
    }
    device
}

/// The attributes in `data`: (type without its flag bits, payload).
fn attributes(mut data: &[u8]) -> Vec<(u16, &[u8])> {
    let mut found = Vec::new();
    while data.len() >= 4 {
        let len = usize::from(u16::from_ne_bytes([data[0], data[1]]));
        let kind = u16::from_ne_bytes([data[2], data[3]]) & 0x3fff;
        if len < 4 || len > data.len() {
            break;
        }
        found.push((kind, &data[4..len]));
        data = data.get((len + 3) & !3..).unwrap_or_default();
    }
    found
}

fn c_string(data: &[u8]) -> String {
    let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    String::from_utf8_lossy(&data[..end]).into_owned()
}

/// Adds what was being done to an error about the device.
fn context(vmac: &VirtualMac, what: &str) -> impl FnOnce(io::Error) -> io::Error {
    let message = format!("virtual MAC device {}: {what}", vmac.name);
    move |e| io::Error::new(e.kind(), format!("{message}: {e}"))
}

/// Creates the device, first deleting this virtual host's leftover of the
/// same name.
fn create(parent: &str, vmac: &VirtualMac, ipv6: bool) -> io::Result<()> {
    let parent_index = nix::net::if_::if_nametoindex(parent)
        .map_err(|e| io::Error::other(format!("interface {parent}: {e}")))?;
    match device(&vmac.name).map_err(context(vmac, "looking it up"))? {
        Some(existing) if existing.is_ours(parent, vmac) => {
            info!(
                "virtual MAC device {} left by an earlier run: made again",
                vmac.name
            );
            exchange(&link_request(RTM_DELLINK, 0, existing.index, None, &[]))
                .map_err(context(vmac, "deleting the leftover"))?;
        }
        Some(existing) => {
            return Err(io::Error::other(format!(
                "a device named {} exists and is not vhid {}'s virtual MAC device on {parent} \
                 (it is {}); give ours another name (vmac-name, --vmac-name)",
                vmac.name,
                vmac.vhid(),
                existing.describe()
            )))
        }
        None => {}
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
    let create = link_request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, 0, None, &body);
    exchange(&create).map_err(context(
        vmac,
        &format!("creating it as a macvlan on {parent}"),
    ))?;
    let index = nix::net::if_::if_nametoindex(vmac.name.as_str())
        .map_err(|e| context(vmac, "looking it up after creating it")(e.into()))?;
    let mut alias = Vec::new();
    attribute(&mut alias, IFLA_IFALIAS, tag(parent, vmac).as_bytes());
    if let Err(e) = exchange(&link_request(RTM_NEWLINK, 0, index, None, &alias)) {
        let _ = exchange(&link_request(RTM_DELLINK, 0, index, None, &[]));
        return Err(context(vmac, "marking it as ours (alias)")(e));
    }
    no_link_local(index, &vmac.name);
    for (key, value) in [("arp_ignore", 1), ("arp_announce", 2), ("rp_filter", 2)] {
        raise_sysctl(&vmac.name, key, value);
    }
    for (key, value) in [("arp_ignore", 1), ("arp_announce", 2)] {
        raise_sysctl(parent, key, value);
    }
    ipv6_quiet(&vmac.name, ipv6);
    info!(
        "virtual MAC device {} ({}) created on {parent}",
        vmac.name, vmac.mac
    );
    Ok(())
}

/// Keeps the device from configuring IPv6 of its own: no router
/// advertisements taken, no addresses made from them; IPv6 off entirely
/// if no IPv6 address will live there.
fn ipv6_quiet(name: &str, ipv6: bool) {
    let settings: &[(&str, u32)] = if ipv6 {
        &[("accept_ra", 0), ("autoconf", 0)]
    } else {
        &[("disable_ipv6", 1)]
    };
    for (key, value) in settings {
        let path = format!("/proc/sys/net/ipv6/conf/{name}/{key}");
        if !std::path::Path::new(&path).exists() {
            return; // no IPv6 in this kernel
        }
        if let Err(e) = std::fs::write(&path, format!("{value}\n")) {
            warn!("cannot set net.ipv6.conf.{name}.{key} = {value}: {e}");
        }
    }
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
/// they are removed). A device deleted under us is made again first; one
/// that is no longer ours is not touched.
pub fn set_up(parent: &str, vmac: &VirtualMac, up: bool, ipv6: bool) -> io::Result<()> {
    let index = match device(&vmac.name).map_err(context(vmac, "looking it up"))? {
        Some(device) if device.is_ours(parent, vmac) => device.index,
        Some(device) => {
            return Err(io::Error::other(format!(
                "virtual MAC device {} is no longer ours (it is {}): not touched",
                vmac.name,
                device.describe()
            )))
        }
        None if !up => return Ok(()),
        None => {
            warn!("virtual MAC device {} vanished: made again", vmac.name);
            create(parent, vmac, ipv6)?;
            nix::net::if_::if_nametoindex(vmac.name.as_str())?
        }
    };
    exchange(&link_request(RTM_NEWLINK, 0, index, Some(up), &[])).map_err(context(
        vmac,
        if up {
            "bringing it up"
        } else {
            "taking it down"
        },
    ))
}

/// Deletes the device if it is ours; whether it did.
fn delete(parent: &str, vmac: &VirtualMac) -> io::Result<bool> {
    match device(&vmac.name)? {
        Some(device) if device.is_ours(parent, vmac) => {
            exchange(&link_request(RTM_DELLINK, 0, device.index, None, &[]))?;
            Ok(true)
        }
        _ => Ok(false),
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
    fn a_link_message_gives_parent_alias_and_kind() {
        let vmac = VirtualMac::new(7, None);
        let mut attrs = Vec::new();
        attribute(&mut attrs, IFLA_LINK, &3u32.to_ne_bytes());
        attribute(&mut attrs, IFLA_IFALIAS, tag("eth0", &vmac).as_bytes());
        let mut info = Vec::new();
        attribute(&mut info, IFLA_INFO_KIND, b"macvlan\0");
        attribute(&mut attrs, IFLA_LINKINFO, &info);
        let device = parse_device(&link_request(RTM_NEWLINK, 0, 12, None, &attrs));
        assert_eq!(device.index, 12);
        assert_eq!(device.parent, Some(3));
        assert!(device.is_ours("eth0", &vmac));
        assert!(!device.is_ours("eth1", &vmac));
        assert!(!device.is_ours("eth0", &VirtualMac::new(8, None)));
        let plain = parse_device(&link_request(RTM_NEWLINK, 0, 4, None, &[]));
        assert!(!plain.is_ours("eth0", &vmac));
        assert_eq!(plain.describe(), "a plain device");
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
