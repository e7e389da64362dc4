//! Multicast (and `-M` broadcast) IPv4 adverts received through a
//! `PACKET_MMAP` ring (TPACKET_V2), one per interface, shared by every
//! IPv4 group on it. Unicast adverts (to unicast peers) still come through
//! the raw IPv4 socket and the whole IP layer.
//!
//! Why not the raw IPv4 socket: under a flood of forged adverts (valid
//! checksums, wrong digest) most of the daemon's CPU went to receiving
//! each datagram through the socket, about two thirds of it in the
//! kernel's per-message work in recvmmsg(2) (copying it out, freeing its
//! buffer, the queue lock), even 64 at a time (docs/BENCHMARKS.md, runs N
//! and P). With a ring the kernel copies each packet into memory shared
//! with us while it receives it, and the loop reads the ring in place: no
//! system call per packet or per batch. UCARP's libpcap receives the same
//! way.
//!
//! What the raw socket did that the ring does not, and how it is made up:
//! - Protocol 112 only, to an IP multicast or broadcast destination in a
//!   multicast or broadcast frame only, and only what was received by this
//!   very interface (a VLAN device on top of it hands its
//!   packets to the parent's packet sockets too): a classic BPF filter on
//!   the socket, run in the kernel before anything is copied. Our own
//!   frames never reach an `ETH_P_IP` packet socket.
//! - Only groups joined with this interface: the ring sees every group the
//!   interface accepts, so the runtime keeps what is addressed to one of
//!   its groups and counts the rest (`other_group`).
//! - Reassembly: a fragmented advert (never sent by any implementation)
//!   is refused by the codec and counted as malformed.
//! - Firewall rules: like libpcap, the ring sees adverts before netfilter,
//!   so an INPUT rule dropping protocol 112 no longer hides multicast
//!   adverts from the daemon (documented in ucarp(8)).
//! - A full buffer: the kernel counts what it could not store; the ring
//!   reads that count ([`AdvertRing::dropped`]) when a frame says so.
//! - An interface taken down: the socket reports ENETDOWN once, which the
//!   runtime reads ([`AdvertRing::take_error`]); the kernel hooks the
//!   socket in again when the interface comes back up.
//!
//! The raw IPv4 sockets stay: they join the groups (which makes the
//! interface accept their frames), send to unicast peers, and receive the
//! rest: unicast adverts, and a group's adverts arriving in a unicast frame
//! (bridges and access points with multicast-to-unicast send those); their
//! filter drops exactly what the ring reads.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

use nix::libc;
use socket2::{Domain, Socket, Type};

use crate::IoError;

/// Room for one packet: the TPACKET_V2 header, the link-layer address the
/// kernel writes after it, and an IPv4 CARP datagram with room to spare
/// (56 bytes; 96 with the most IP options). Longer packets are cut, and
/// then refused by the codec.
const FRAME_SIZE: usize = 256;
/// 1 MiB: 4096 packets, about 30 ms of a 130,000-packet-a-second flood
/// while the loop is busy with the packets before them (the raw socket's
/// 2 MiB receive buffer held about 2,700). In blocks of one page (the
/// kernel wants page-aligned blocks; pages are 4 to 64 KiB), so the ring
/// needs no contiguous memory beyond a page; frames never straddle blocks
/// because FRAME_SIZE divides every page size.
const RING_SIZE: usize = 1 << 20;
const FRAMES: usize = RING_SIZE / FRAME_SIZE;

/// Receives the IPv4 CARP datagrams arriving on one interface.
#[derive(Debug)]
pub struct AdvertRing {
    socket: Socket,
    map: NonNull<u8>,
    /// The frame the kernel fills after the last one read.
    next: usize,
    /// Packets the kernel dropped because the ring was full, not yet
    /// taken by [`AdvertRing::dropped`].
    dropped: u64,
}

// SAFETY: the mapping belongs to this value alone (nothing else holds its
// address), so moving it to another thread moves the only way to it.
#[allow(unsafe_code)]
unsafe impl Send for AdvertRing {}

impl AdvertRing {
    /// Opens the ring on interface `index` (`iface` names it in errors).
    pub fn open(iface: &str, index: u32) -> Result<AdvertRing, IoError> {
        let err = |op| move |e| IoError::socket(op, iface, e);
        // Protocol 0 until bound: such a socket receives nothing, so no
        // other interface's packets enter the ring before the bind.
        let socket = Socket::new(Domain::PACKET, Type::DGRAM, None)
            .map_err(err("opening a packet socket for IPv4 adverts"))?;
        attach_filter(&socket, &adverts_only(index)).map_err(err("filtering the packet socket"))?;
        set_int(
            &socket,
            libc::SOL_PACKET,
            libc::PACKET_VERSION,
            libc::tpacket_versions::TPACKET_V2 as libc::c_int,
        )
        .map_err(err("asking for TPACKET_V2"))?;
        request_ring(&socket).map_err(err("setting up the receive ring"))?;
        let map = map_ring(&socket).map_err(err("mapping the receive ring"))?;
        let ring = AdvertRing {
            socket,
            map,
            next: 0,
            dropped: 0,
        };
        bind(&ring.socket, index).map_err(err("binding the packet socket to the interface"))?;
        ring.socket
            .set_nonblocking(true)
            .map_err(err("making the packet socket non-blocking"))?;
        Ok(ring)
    }

    /// Hands each waiting datagram (IPv4 header first) to `each`, up to
    /// `max` of them, and gives its frame back to the kernel; returns how
    /// many there were.
    pub fn read(&mut self, max: usize, mut each: impl FnMut(&[u8])) -> usize {
        let mut count = 0;
        while count < max {
            let Some(datagram) = self.peek() else { break };
            each(datagram);
            self.release();
            count += 1;
        }
        count
    }

    /// Packets lost to a full ring since the last call.
    pub fn dropped(&mut self) -> u64 {
        std::mem::take(&mut self.dropped)
    }

    /// The socket's pending error, cleared by reading it: ENETDOWN after
    /// the interface went down (or away). Until read, poll(2) reports it
    /// on every call.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.socket.take_error()
    }

    #[allow(unsafe_code)] // reads the shared ring; see SAFETY below
    fn peek(&mut self) -> Option<&[u8]> {
        let frame = self.frame();
        let status = self.status().load(Ordering::Acquire);
        if status & libc::TP_STATUS_USER == 0 {
            return None;
        }
        if status & libc::TP_STATUS_LOSING != 0 {
            // Set on every frame after a drop until the statistics are
            // read, which also resets them.
            self.dropped += statistics(&self.socket).map_or(0, |s| u64::from(s.tp_drops));
        }
        // SAFETY: the frame is FRAME_SIZE bytes inside the mapping and
        // 16-byte aligned (FRAME_SIZE and the page-aligned mapping are);
        // with TP_STATUS_USER set (read with Acquire above) the kernel has
        // finished writing it and leaves it alone until we hand it back in
        // `release`, so reading the header and the data is race-free.
        let header = unsafe { frame.cast::<libc::tpacket2_hdr>().as_ptr().read() };
        let start = usize::from(header.tp_net);
        let len = header.tp_snaplen as usize;
        if start.checked_add(len).is_none_or(|end| end > FRAME_SIZE) {
            // Never written by a kernel; skipped rather than trusted.
            return Some(&[]);
        }
        // SAFETY: as above; start + len is within the frame (checked), and
        // the slice lives no longer than the borrow of self, which
        // `release` needs mutably before the frame can be reused.
        Some(unsafe { std::slice::from_raw_parts(frame.as_ptr().add(start), len) })
    }

    fn release(&mut self) {
        self.status()
            .store(libc::TP_STATUS_KERNEL, Ordering::Release);
        self.next = (self.next + 1) % FRAMES;
    }

    #[allow(unsafe_code)] // pointer arithmetic in the mapping
    fn frame(&self) -> NonNull<u8> {
        // SAFETY: next < FRAMES, so the offset is inside the RING_SIZE
        // bytes mapped.
        unsafe { self.map.add(self.next * FRAME_SIZE) }
    }

    /// The frame's status word, which the kernel and we hand over with.
    #[allow(unsafe_code)] // the status word shared with the kernel
    fn status(&self) -> &AtomicU32 {
        // SAFETY: tp_status is the first field of the frame: aligned, in
        // the mapping, and alive as long as self. The kernel writes it with
        // release semantics (smp_wmb then the store) and reads it after a
        // barrier, so an atomic view of it is what both sides expect.
        unsafe { AtomicU32::from_ptr(self.frame().cast::<u32>().as_ptr()) }
    }
}

impl Drop for AdvertRing {
    #[allow(unsafe_code)] // munmap(2)
    fn drop(&mut self) {
        // SAFETY: the mapping was made in `open` with this size and is
        // unmapped once; no slice into it outlives the borrow of self.
        unsafe {
            libc::munmap(self.map.as_ptr().cast(), RING_SIZE);
        }
    }
}

impl AsFd for AdvertRing {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

const fn statement(code: u32, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    }
}

const fn jump(code: u32, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    }
}

/// Whether a packet is the ring's: an IP multicast or broadcast
/// destination in a multicast or broadcast frame. Everything else (unicast
/// adverts, and a group's adverts in a unicast frame, which some bridges
/// and access points send) is the raw sockets': the two filters below
/// split the traffic with this same test, so nothing is read twice or
/// by neither.
///
/// The ring's: IPv4 protocol 112 received by interface `index` itself
/// (SOCK_DGRAM: offset 0 is the IP header).
fn adverts_only(index: u32) -> [libc::sock_filter; 11] {
    const ACCEPT: u8 = 9;
    const DROP: u8 = 10;
    [
        // 0: A = protocol
        statement(LD_B, 9),
        jump(JEQ, u32::from(carp_proto::IP_PROTOCOL_CARP), 0, DROP - 2),
        // 2: A = the receiving device (a VLAN's, when it came through one)
        statement(LD_W, ancillary(libc::SKF_AD_IFINDEX)),
        jump(JEQ, index, 0, DROP - 4),
        // 4: A = destination address: 224.0.0.0 and above
        statement(LD_W, 16),
        jump(JGE, FIRST_MULTICAST, 0, DROP - 6),
        // 6: A = packet type: HOST 0, BROADCAST 1, MULTICAST 2, OTHERHOST 3
        statement(LD_W, ancillary(libc::SKF_AD_PKTTYPE)),
        jump(JEQ, libc::PACKET_BROADCAST as u32, ACCEPT - 8, 0),
        jump(JEQ, libc::PACKET_MULTICAST as u32, ACCEPT - 9, DROP - 9),
        // 9: the whole packet (cut to the frame)
        statement(libc::BPF_RET | libc::BPF_K, u32::MAX),
        // 10:
        statement(libc::BPF_RET | libc::BPF_K, 0),
    ]
}

/// The raw IPv4 sockets': what [`adverts_only`] leaves (offset 0 is the IP
/// header there too: raw_rcv hands the whole datagram to the filter).
pub(crate) const NOT_THE_RINGS: [libc::sock_filter; 7] = {
    const ACCEPT: u8 = 5;
    const DROP: u8 = 6;
    [
        // 0: A = destination address
        statement(LD_W, 16),
        jump(JGE, FIRST_MULTICAST, 0, ACCEPT - 2),
        // 2: A = packet type
        statement(LD_W, ancillary(libc::SKF_AD_PKTTYPE)),
        jump(JEQ, libc::PACKET_BROADCAST as u32, DROP - 4, 0),
        jump(JEQ, libc::PACKET_MULTICAST as u32, DROP - 5, ACCEPT - 5),
        // 5:
        statement(libc::BPF_RET | libc::BPF_K, u32::MAX),
        // 6:
        statement(libc::BPF_RET | libc::BPF_K, 0),
    ]
};

/// 224.0.0.0: multicast, then reserved, then 255.255.255.255 above it.
const FIRST_MULTICAST: u32 = 0xe000_0000;
const LD_B: u32 = libc::BPF_LD | libc::BPF_B | libc::BPF_ABS;
const LD_W: u32 = libc::BPF_LD | libc::BPF_W | libc::BPF_ABS;
const JEQ: u32 = libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K;
const JGE: u32 = libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K;

/// The offset of an ancillary load (packet type, receiving device).
const fn ancillary(what: libc::c_int) -> u32 {
    (libc::SKF_AD_OFF + what) as u32
}

pub(crate) fn attach_filter(socket: &Socket, program: &[libc::sock_filter]) -> io::Result<()> {
    let fprog = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_ptr().cast_mut(),
    };
    // The kernel copies the program during the call.
    set_option(socket, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &fprog)
}

fn set_int(
    socket: &Socket,
    level: libc::c_int,
    option: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    set_option(socket, level, option, &value)
}

/// setsockopt(2) with `value` as the option's struct: for the options
/// neither socket2 nor nix wraps. `T` must be the C type the option reads.
#[allow(unsafe_code)] // setsockopt(2)
pub(crate) fn set_option<T>(
    socket: &impl AsRawFd,
    level: libc::c_int,
    option: libc::c_int,
    value: &T,
) -> io::Result<()> {
    // SAFETY: the descriptor is a live socket; `value` points at a T that
    // outlives the call and its exact size is passed, so the kernel reads
    // no more than the value; callers pass the C type the option expects
    // (and any pointer inside it, a filter program, outlives the call).
    let result = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            option,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    check(result)
}

fn request_ring(socket: &Socket) -> io::Result<()> {
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .and_then(|page| usize::try_from(page).ok())
        .filter(|&page| RING_SIZE % page == 0 && page % FRAME_SIZE == 0)
        .ok_or_else(|| io::Error::other("unusable page size"))?;
    let request = libc::tpacket_req {
        tp_block_size: page as libc::c_uint,
        tp_block_nr: (RING_SIZE / page) as libc::c_uint,
        tp_frame_size: FRAME_SIZE as libc::c_uint,
        tp_frame_nr: FRAMES as libc::c_uint,
    };
    set_option(socket, libc::SOL_PACKET, libc::PACKET_RX_RING, &request)
}

/// The kernel's counts since the last read (which resets them).
#[allow(unsafe_code)] // getsockopt(2)
fn statistics(socket: &Socket) -> io::Result<libc::tpacket_stats> {
    let mut stats = libc::tpacket_stats {
        tp_packets: 0,
        tp_drops: 0,
    };
    let mut len = std::mem::size_of::<libc::tpacket_stats>() as libc::socklen_t;
    // SAFETY: a live socket; the kernel writes at most `len` bytes into
    // `stats`, which outlives the call, and the new length into `len`.
    let result = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_STATISTICS,
            (&mut stats as *mut libc::tpacket_stats).cast(),
            &mut len,
        )
    };
    check(result).map(|()| stats)
}

#[allow(unsafe_code)] // mmap(2)
fn map_ring(socket: &Socket) -> io::Result<NonNull<u8>> {
    // SAFETY: maps the ring the kernel set up for this socket, shared and
    // of its exact size; the result is checked before use and unmapped by
    // AdvertRing's Drop.
    let map = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            RING_SIZE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            socket.as_raw_fd(),
            0,
        )
    };
    if map == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    NonNull::new(map.cast()).ok_or_else(|| io::Error::other("mmap returned null"))
}

#[allow(unsafe_code)] // bind(2) with a sockaddr_ll
fn bind(socket: &Socket, index: u32) -> io::Result<()> {
    // SAFETY: sockaddr_ll is plain data; all zeroes is valid.
    let mut address: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    address.sll_family = libc::AF_PACKET as u16;
    address.sll_protocol = (libc::ETH_P_IP as u16).to_be();
    address.sll_ifindex = index as i32;
    // SAFETY: a live socket; the address outlives the call and is passed
    // with its size.
    let result = unsafe {
        libc::bind(
            socket.as_raw_fd(),
            (&address as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    check(result)
}

fn check(result: libc::c_int) -> io::Result<()> {
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
