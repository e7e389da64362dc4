//! The sockets a node uses.
//!
//! Receiving IPv4: a raw IPv4 socket for protocol 112 per group, bound to
//! the interface, joins the group there and receives unicast adverts (to
//! unicast peers); multicast and broadcast ones in multicast and broadcast
//! frames, the usual case and the way floods come, are read from the
//! interface's ring ([`crate::ring`]), and the raw socket's filter drops
//! those. Only CARP/VRRP datagrams reach
//! either, so unrelated traffic never wakes the node.
//! IPv6: a raw IPv6 socket for protocol 112 with ff02::12 (or
//! the configured group) joined, which also makes the kernel send the MLD
//! reports switches with MLD snooping need. A raw IPv6 socket hands over
//! the payload only; the source comes with it, and the destination, hop
//! limit and any extension header come as ancillary data, which is asked
//! for so that the codec can apply the same checks as to a whole packet.
//!
//! Sending: an `AF_PACKET` socket opened with protocol 0, which receives
//! nothing at all, used to send whole Ethernet frames. Building the frame
//! ourselves is the only way to send what UCARP sends in every mode: IP TOS
//! 0x10, DF, TTL 255 and a random IP ID, and in broadcast mode (`-M`) an
//! Ethernet broadcast carrying an IP datagram still addressed to the group,
//! which a raw IP socket cannot produce. The same socket sends gratuitous
//! ARPs. (pnet_datalink's channel would do the sending too, but it always
//! opens an `ETH_P_ALL` socket that receives every frame on the interface.)
//!
//! Ethernet source: the interface's own MAC. UCARP sends from
//! 00:00:5e:00:00:<vhid>; no CARP receiver looks at it, and when two nodes
//! are briefly both master a shared source MAC makes switches flap the
//! MAC between their ports, while the real MAC tells an operator with a
//! capture which host sent each advert.

use std::io::{self, IoSliceMut, Read};
use std::mem::MaybeUninit;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use carp_proto::ethernet::MacAddr;
use nix::libc;
use socket2::{Domain, InterfaceIndexOrAddress, Protocol, SockAddr, Socket, Type};

use crate::IoError;

/// Joins a CARP group on one interface, receives unicast CARP datagrams
/// (IPv4 header included) and sends adverts to unicast peers; multicast
/// ones are read from the interface's [`crate::ring::AdvertRing`].
#[derive(Debug)]
pub struct AdvertReceiver {
    socket: Socket,
    index: u32,
    /// The socket's drop counter as last reported (SO_RXQ_OVFL).
    drops: DropCount,
}

impl AdvertReceiver {
    /// Opens the socket on `iface` and joins `group` there. In broadcast
    /// mode the group is joined too: the datagrams are still addressed to
    /// it, and the kernel only delivers multicast destinations it has joined.
    pub fn open(iface: &str, index: u32, group: Ipv4Addr) -> Result<AdvertReceiver, IoError> {
        let err = |op| move |e| IoError::socket(op, iface, e);
        let protocol = Protocol::from(i32::from(carp_proto::IP_PROTOCOL_CARP));
        let socket = Socket::new(Domain::IPV4, Type::RAW, Some(protocol))
            .map_err(err("opening a raw IPv4 socket for protocol 112"))?;
        crate::ring::attach_filter(&socket, &crate::ring::NOT_THE_RINGS)
            .map_err(err("filtering the raw socket"))?;
        socket
            .bind_device(Some(iface.as_bytes()))
            .map_err(err("binding the receive socket to the interface"))?;
        socket
            .join_multicast_v4_n(&group, &InterfaceIndexOrAddress::Index(index))
            .map_err(err("joining the CARP group"))?;
        // Only this socket's own group: by default Linux hands a socket
        // every group any socket on the host has joined, so with two
        // groups on one interface each advert would be read twice.
        socket
            .set_multicast_all_v4(false)
            .map_err(err("limiting the receive socket to its own group"))?;
        // The same socket sends to unicast peers: TTL 255 (receivers drop
        // anything else) and UCARP's TOS.
        socket
            .set_ttl_v4(u32::from(carp_proto::CARP_TTL))
            .map_err(err("setting TTL 255 for unicast adverts"))?;
        socket
            .set_tos_v4(u32::from(carp_proto::ipv4::TOS_LOWDELAY))
            .map_err(err("setting the TOS of unicast adverts"))?;
        socket
            .set_nonblocking(true)
            .map_err(err("making the receive socket non-blocking"))?;
        let drops = DropCount::ask(&socket, iface)?;
        enlarge_receive_buffer(&socket, RECEIVE_BUFFER);
        Ok(AdvertReceiver {
            socket,
            index,
            drops,
        })
    }

    /// Sends a CARP header to a unicast peer from `src` out of this
    /// socket's interface; the kernel builds the IPv4 header (TTL 255,
    /// protocol 112) and resolves the next hop. Non-blocking: a full
    /// queue is an error like any failed send.
    pub fn send_unicast(&self, carp: &[u8], src: Ipv4Addr, peer: Ipv4Addr) -> io::Result<()> {
        use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, SockaddrIn};
        let info = libc::in_pktinfo {
            ipi_ifindex: self.index as i32,
            ipi_spec_dst: libc::in_addr {
                s_addr: u32::from(src).to_be(),
            },
            ipi_addr: libc::in_addr { s_addr: 0 },
        };
        let dst = SockaddrIn::from(std::net::SocketAddrV4::new(peer, 0));
        let sent = sendmsg(
            self.socket.as_raw_fd(),
            &[io::IoSlice::new(carp)],
            &[ControlMessage::Ipv4PacketInfo(&info)],
            MsgFlags::empty(),
            Some(&dst),
        )?;
        full_send(sent, carp.len())
    }

    /// Reads as many datagrams as are waiting, up to [`RecvBatch::LEN`],
    /// in one recvmmsg(2); 0 when nothing is waiting. Under a flood this
    /// is one system call for many packets instead of one each.
    /// [`RecvBatch::dropped`] then tells how many the socket dropped
    /// since the previous call said.
    #[allow(unsafe_code)] // recvmmsg(2); see SAFETY below
    pub fn recv_batch(&self, batch: &mut RecvBatch) -> io::Result<usize> {
        batch.dropped = 0;
        let mut iovecs: Vec<libc::iovec> = batch
            .bufs
            .iter_mut()
            .map(|buf| libc::iovec {
                iov_base: buf.as_mut_ptr().cast(),
                iov_len: buf.len(),
            })
            .collect();
        let mut headers: Vec<libc::mmsghdr> = iovecs
            .iter_mut()
            .zip(batch.controls.iter_mut())
            .map(|(iovec, control)| {
                // SAFETY: msghdr is a plain C struct for which all-zero is
                // a valid value (no name, no control data, no flags).
                let mut header: libc::msghdr = unsafe { std::mem::zeroed() };
                header.msg_iov = iovec;
                header.msg_iovlen = 1;
                header.msg_control = control.0.as_mut_ptr().cast();
                header.msg_controllen = control.0.len() as _;
                libc::mmsghdr {
                    msg_hdr: header,
                    msg_len: 0,
                }
            })
            .collect();
        // SAFETY: the descriptor is a live socket we own. `headers` holds
        // `headers.len()` initialised mmsghdr, each pointing at one iovec
        // of `iovecs`, each at one buffer of `batch.bufs` with its true
        // length, and at one control buffer of `batch.controls` with its
        // true length (8-aligned, as cmsghdr needs); all of them outlive
        // the call and are not otherwise touched during it. The kernel
        // writes at most iov_len bytes into each buffer, at most
        // msg_controllen into each control buffer (setting msg_controllen
        // to what it wrote) and the received length into msg_len.
        // MSG_DONTWAIT: it never blocks; no timeout is passed.
        let received = unsafe {
            libc::recvmmsg(
                self.socket.as_raw_fd(),
                headers.as_mut_ptr(),
                headers.len() as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if received < 0 {
            let error = io::Error::last_os_error();
            return match error.kind() {
                io::ErrorKind::WouldBlock => {
                    batch.count = 0;
                    Ok(0)
                }
                _ => Err(error),
            };
        }
        let count = received as usize;
        let mut drops = None;
        for ((len, header), control) in batch
            .lens
            .iter_mut()
            .zip(&headers[..count])
            .zip(&batch.controls)
        {
            *len = header.msg_len as usize;
            // size_t on glibc, socklen_t on musl.
            #[allow(clippy::unnecessary_cast)]
            let written = (header.msg_hdr.msg_controllen as usize).min(control.0.len());
            drops = drop_count(&control.0[..written]).or(drops);
        }
        batch.dropped = drops.map_or(0, |total| self.drops.since_last(total));
        batch.count = count;
        Ok(count)
    }

    /// Reads one datagram into `buf`; `Ok(None)` when nothing is waiting.
    pub fn recv<'a>(&self, buf: &'a mut [u8]) -> io::Result<Option<&'a [u8]>> {
        match (&self.socket).read(buf) {
            Ok(len) => Ok(Some(&buf[..len])),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }
}

impl AdvertReceiver {
    /// The socket's pending error, cleared by reading it.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.socket.take_error()
    }
}

impl AsFd for AdvertReceiver {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

/// A raw socket's drop count (SO_RXQ_OVFL): how many datagrams it has
/// dropped for want of buffer space since it opened (wrapping), reported
/// with the next datagram it does store.
#[derive(Debug)]
struct DropCount(std::sync::atomic::AtomicU32);

impl DropCount {
    /// Asks `socket` to report its drop count.
    fn ask(socket: &Socket, iface: &str) -> Result<DropCount, IoError> {
        nix::sys::socket::setsockopt(socket, nix::sys::socket::sockopt::RxqOvfl, &1)
            .map_err(|e| IoError::socket("asking for the socket's drop count", iface, e.into()))?;
        Ok(DropCount(std::sync::atomic::AtomicU32::new(0)))
    }

    /// The drops since the last report, given a reported `total`.
    fn since_last(&self, total: u32) -> u64 {
        let last = self.0.swap(total, std::sync::atomic::Ordering::Relaxed);
        u64::from(total.wrapping_sub(last))
    }
}

/// Buffers for [`AdvertReceiver::recv_batch`].
#[derive(Debug)]
pub struct RecvBatch {
    bufs: Vec<[u8; 2048]>,
    lens: Vec<usize>,
    controls: Vec<Control>,
    count: usize,
    dropped: u64,
}

/// Room for one datagram's ancillary data: the SO_RXQ_OVFL drop count
/// (a cmsghdr and a u32, 20 bytes), 8-aligned as cmsghdr needs.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(8))]
struct Control([u8; 32]);

/// The drop count (SO_RXQ_OVFL) among one datagram's control messages:
/// the kernel adds it once the socket has dropped anything.
fn drop_count(control: &[u8]) -> Option<u32> {
    // struct cmsghdr on Linux/glibc: size_t cmsg_len, int cmsg_level,
    // int cmsg_type, then the data, each message aligned to size_t.
    const WORD: usize = std::mem::size_of::<usize>();
    const HEADER: usize = std::mem::size_of::<libc::cmsghdr>();
    let int =
        |bytes: &[u8], at: usize| -> Option<[u8; 4]> { bytes.get(at..at + 4)?.try_into().ok() };
    let mut rest = control;
    while rest.len() >= HEADER {
        let len = usize::from_ne_bytes(rest.get(..WORD)?.try_into().ok()?);
        let level = i32::from_ne_bytes(int(rest, WORD)?);
        let kind = i32::from_ne_bytes(int(rest, WORD + 4)?);
        if len < HEADER || len > rest.len() {
            return None;
        }
        if level == libc::SOL_SOCKET && kind == libc::SO_RXQ_OVFL && len >= HEADER + 4 {
            return Some(u32::from_ne_bytes(int(rest, HEADER)?));
        }
        rest = rest.get(len.next_multiple_of(WORD)..)?;
    }
    None
}

impl RecvBatch {
    /// Datagrams read at most per call.
    pub const LEN: usize = 64;

    /// Empty buffers for [`RecvBatch::LEN`] datagrams.
    pub fn new() -> RecvBatch {
        RecvBatch {
            bufs: vec![[0; 2048]; Self::LEN],
            lens: vec![0; Self::LEN],
            controls: vec![Control([0; 32]); Self::LEN],
            count: 0,
            dropped: 0,
        }
    }

    /// Datagrams the socket dropped for want of buffer space, as the last
    /// call learnt (the kernel tells with the next datagram it does store).
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The datagrams the last call read.
    pub fn datagrams(&self) -> impl Iterator<Item = &[u8]> {
        self.bufs
            .iter()
            .zip(&self.lens)
            .take(self.count)
            .map(|(buf, len)| &buf[..*len])
    }
}

impl Default for RecvBatch {
    fn default() -> RecvBatch {
        RecvBatch::new()
    }
}

/// Asks for a receive buffer of `bytes`: beyond the system's limit
/// (SO_RCVBUFFORCE, which needs CAP_NET_ADMIN) or else up to it. A flood
/// that fills the buffer would drop genuine adverts with the forged ones;
/// 2 MiB hold about 20 ms of 100,000 packets a second while the loop is
/// busy with the packets before them.
pub fn enlarge_receive_buffer(socket: &impl AsFd, bytes: usize) {
    use nix::sys::socket::{setsockopt, sockopt};
    if setsockopt(socket, sockopt::RcvBufForce, &bytes).is_err() {
        let _ = setsockopt(socket, sockopt::RcvBuf, &bytes);
    }
}

/// The receive buffer asked for ([`enlarge_receive_buffer`]).
pub const RECEIVE_BUFFER: usize = 2 << 20;

/// What a raw IPv6 socket tells about one received CARP packet.
#[derive(Debug)]
pub struct Received6<'a> {
    /// The sender.
    pub src: Ipv6Addr,
    /// Where it was sent (`None` if the kernel did not say).
    pub dst: Option<Ipv6Addr>,
    /// Its hop limit (`None` if the kernel did not say).
    pub hop_limit: Option<u8>,
    /// The first extension header it carried, if any (hop-by-hop 0,
    /// routing 43, fragment 44, destination options 60).
    pub extension_header: Option<u8>,
    /// The CARP bytes after the IPv6 header (and any extension header).
    pub payload: &'a [u8],
    /// Packets the socket dropped for want of buffer space since the
    /// previous packet said (SO_RXQ_OVFL).
    pub dropped: u64,
}

/// Receives CARP packets over IPv6 from one interface, and sends adverts
/// to unicast peers.
#[derive(Debug)]
pub struct AdvertReceiver6 {
    socket: Socket,
    index: u32,
    /// The socket's drop counter as last reported (SO_RXQ_OVFL).
    drops: DropCount,
}

impl AdvertReceiver6 {
    /// Opens the socket on `iface`, joins `group` there and asks for the
    /// ancillary data [`Received6`] carries.
    pub fn open(iface: &str, index: u32, group: Ipv6Addr) -> Result<AdvertReceiver6, IoError> {
        let err = |op| move |e| IoError::socket(op, iface, e);
        let protocol = Protocol::from(i32::from(carp_proto::IP_PROTOCOL_CARP));
        let socket = Socket::new(Domain::IPV6, Type::RAW, Some(protocol))
            .map_err(err("opening a raw IPv6 socket for protocol 112"))?;
        socket
            .bind_device(Some(iface.as_bytes()))
            .map_err(err("binding the IPv6 receive socket to the interface"))?;
        socket
            .join_multicast_v6(&group, index)
            .map_err(err("joining the IPv6 CARP group"))?;
        socket
            .set_multicast_all_v6(false)
            .map_err(err("limiting the IPv6 receive socket to its own group"))?;
        for (option, what) in [
            (
                libc::IPV6_RECVPKTINFO,
                "asking for the destination of IPv6 adverts",
            ),
            (
                libc::IPV6_RECVHOPLIMIT,
                "asking for the hop limit of IPv6 adverts",
            ),
            (libc::IPV6_RECVHOPOPTS, "asking for hop-by-hop options"),
            (libc::IPV6_RECVDSTOPTS, "asking for destination options"),
            (libc::IPV6_RECVRTHDR, "asking for routing headers"),
            (
                libc::IPV6_RECVFRAGSIZE,
                "asking to hear of reassembled fragments",
            ),
        ] {
            set_ipv6_flag(&socket, option).map_err(err(what))?;
        }
        socket
            .set_unicast_hops_v6(u32::from(carp_proto::CARP_TTL))
            .map_err(err("setting hop limit 255 for unicast adverts"))?;
        socket
            .set_nonblocking(true)
            .map_err(err("making the IPv6 receive socket non-blocking"))?;
        let drops = DropCount::ask(&socket, iface)?;
        enlarge_receive_buffer(&socket, RECEIVE_BUFFER);
        Ok(AdvertReceiver6 {
            socket,
            index,
            drops,
        })
    }

    /// Sends a CARP header to a unicast peer from `src` out of this
    /// socket's interface (hop limit 255, next header 112); a link-local
    /// peer is reached on this interface.
    pub fn send_unicast(&self, carp: &[u8], src: Ipv6Addr, peer: Ipv6Addr) -> io::Result<()> {
        use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, SockaddrIn6};
        let info = libc::in6_pktinfo {
            ipi6_addr: libc::in6_addr {
                s6_addr: src.octets(),
            },
            ipi6_ifindex: self.index,
        };
        let scope = if carp_proto::ipv6::is_link_local(&peer) {
            self.index
        } else {
            0
        };
        let dst = SockaddrIn6::from(std::net::SocketAddrV6::new(peer, 0, 0, scope));
        let sent = sendmsg(
            self.socket.as_raw_fd(),
            &[io::IoSlice::new(carp)],
            &[ControlMessage::Ipv6PacketInfo(&info)],
            MsgFlags::empty(),
            Some(&dst),
        )?;
        full_send(sent, carp.len())
    }

    /// Reads one packet into `buf`; `Ok(None)` when nothing is waiting.
    pub fn recv<'a>(&self, buf: &'a mut [u8]) -> io::Result<Option<Received6<'a>>> {
        use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, SockaddrIn6};
        // Room for the destination, the hop limit, the drop count and a few
        // hundred bytes of extension headers; anything longer is cut
        // (MSG_CTRUNC), which only extension headers can cause, and counts
        // as one.
        let mut space = nix::cmsg_space!(libc::in6_pktinfo, libc::c_int, u32, [u8; 512]);
        let mut drops = None;
        let (len, src, dst, hop_limit, extension_header) = {
            let mut iov = [IoSliceMut::new(buf)];
            let message = match recvmsg::<SockaddrIn6>(
                self.socket.as_raw_fd(),
                &mut iov,
                Some(&mut space),
                MsgFlags::empty(),
            ) {
                Ok(message) => message,
                Err(nix::errno::Errno::EAGAIN) => return Ok(None),
                Err(e) => return Err(e.into()),
            };
            let (mut dst, mut hop_limit, mut extension_header) = (None, None, None);
            for cmsg in message.cmsgs().into_iter().flatten() {
                match cmsg {
                    ControlMessageOwned::Ipv6PacketInfo(info) => {
                        dst = Some(Ipv6Addr::from(info.ipi6_addr.s6_addr))
                    }
                    ControlMessageOwned::Ipv6HopLimit(limit) => {
                        hop_limit = Some(u8::try_from(limit).unwrap_or(0))
                    }
                    ControlMessageOwned::RxqOvfl(total) => drops = Some(total),
                    ControlMessageOwned::Unknown(unknown) => {
                        let header = match unknown.cmsg_header.cmsg_type {
                            libc::IPV6_HOPOPTS => 0,
                            libc::IPV6_RTHDR => 43,
                            libc::IPV6_RECVFRAGSIZE => 44,
                            libc::IPV6_DSTOPTS => 60,
                            _ => continue,
                        };
                        extension_header.get_or_insert(header);
                    }
                    _ => {}
                }
            }
            if message.flags.contains(MsgFlags::MSG_CTRUNC) {
                extension_header.get_or_insert(0);
            }
            let src = message.address.map(|a| a.ip());
            (message.bytes, src, dst, hop_limit, extension_header)
        };
        let Some(src) = src else {
            return Err(io::Error::other("raw IPv6 socket gave no source address"));
        };
        let dropped = drops.map_or(0, |total| self.drops.since_last(total));
        Ok(Some(Received6 {
            src,
            dst,
            hop_limit,
            extension_header,
            payload: &buf[..len],
            dropped,
        }))
    }
}

impl AdvertReceiver6 {
    /// The socket's pending error, cleared by reading it.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.socket.take_error()
    }
}

impl AsFd for AdvertReceiver6 {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

fn full_send(sent: usize, len: usize) -> io::Result<()> {
    if sent == len {
        Ok(())
    } else {
        Err(io::Error::new(io::ErrorKind::WriteZero, "short send"))
    }
}

/// Turns on an `IPPROTO_IPV6` boolean option that neither socket2 nor nix
/// wraps (the `IPV6_RECV*` ancillary data requests).
fn set_ipv6_flag(socket: &Socket, option: libc::c_int) -> io::Result<()> {
    crate::ring::set_option(socket, libc::IPPROTO_IPV6, option, &1 as &libc::c_int)
}

/// Sends whole Ethernet frames out of one interface.
#[derive(Debug)]
pub struct FrameSender {
    socket: Socket,
    index: u32,
}

impl FrameSender {
    /// Opens a packet socket that receives nothing (protocol 0). It is
    /// non-blocking: a stalled transmit queue (a slow qdisc, a wedged
    /// driver) must never put the protocol thread to sleep in `sendto`,
    /// where it would miss its timers and ignore every command.
    pub fn open(iface: &str, index: u32) -> Result<FrameSender, IoError> {
        let err = |op| move |e| IoError::socket(op, iface, e);
        let socket = Socket::new(Domain::PACKET, Type::RAW, Some(Protocol::from(0)))
            .map_err(err("opening a packet socket"))?;
        socket
            .set_nonblocking(true)
            .map_err(err("making the packet socket non-blocking"))?;
        Ok(FrameSender { socket, index })
    }

    /// Sends a whole Ethernet frame (destination MAC first); a frame shorter
    /// than the Ethernet header is refused. A full transmit queue is an
    /// error (`WouldBlock`, or `ENOBUFS`) like any failed send: the caller
    /// counts it and tries again at the next advert.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        let Some(header) = frame.get(..14) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "frame shorter than an Ethernet header",
            ));
        };
        let mut dst = [0u8; 6];
        dst.copy_from_slice(&header[..6]);
        let dst = MacAddr(dst);
        let ethertype = u16::from_be_bytes([header[12], header[13]]);
        let address = link_address(self.index, dst, ethertype)?;
        let sent = self.socket.send_to(frame, &address)?;
        if sent == frame.len() {
            Ok(())
        } else {
            Err(io::Error::new(io::ErrorKind::WriteZero, "short send"))
        }
    }
}

/// A `sockaddr_ll` for sending to `dst` on interface `index`.
#[allow(unsafe_code)] // see SAFETY below
fn link_address(index: u32, dst: MacAddr, ethertype: u16) -> io::Result<SockAddr> {
    // SAFETY: `try_init` hands us zeroed storage at least as large as any
    // socket address (sockaddr_storage, 128 bytes). We write a complete
    // `sockaddr_ll` (20 bytes) at its start, unaligned-safe via
    // `write_unaligned`, and report exactly that length, with the family
    // set to AF_PACKET to match the type written.
    let ((), address) = unsafe {
        SockAddr::try_init(|storage, len| {
            let mut ll: libc::sockaddr_ll = MaybeUninit::zeroed().assume_init();
            ll.sll_family = libc::AF_PACKET as u16;
            ll.sll_protocol = ethertype.to_be();
            ll.sll_ifindex = index as i32;
            ll.sll_halen = 6;
            ll.sll_addr[..6].copy_from_slice(&dst.0);
            std::ptr::write_unaligned(storage.cast::<libc::sockaddr_ll>(), ll);
            *len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            Ok(())
        })
    }?;
    Ok(address)
}

#[cfg(test)]
mod tests {
    use super::{drop_count, libc};

    /// One control message as the kernel lays it out: length, level, type,
    /// data, padded to a word.
    fn cmsg(level: i32, kind: i32, data: &[u8]) -> Vec<u8> {
        let header = std::mem::size_of::<libc::cmsghdr>();
        let mut bytes = (header + data.len()).to_ne_bytes().to_vec();
        bytes.extend(level.to_ne_bytes());
        bytes.extend(kind.to_ne_bytes());
        bytes.extend(data);
        while bytes.len() % std::mem::size_of::<usize>() != 0 {
            bytes.push(0);
        }
        bytes
    }

    #[test]
    fn the_drop_count_is_found_among_control_messages() {
        let count = cmsg(libc::SOL_SOCKET, libc::SO_RXQ_OVFL, &7u32.to_ne_bytes());
        assert_eq!(drop_count(&count), Some(7));
        let mut two = cmsg(libc::IPPROTO_IP, libc::IP_TTL, &255i32.to_ne_bytes());
        two.extend(&count);
        assert_eq!(drop_count(&two), Some(7));
        assert_eq!(drop_count(&[]), None);
        // Cut short, or a length past the end: nothing, no panic.
        assert_eq!(drop_count(&count[..count.len() - 8]), None);
        let mut lying = count.clone();
        lying[0] = 200;
        assert_eq!(drop_count(&lying), None);
    }
}
