//! Floods a segment for fault tests and benchmarks, as fast as one core
//! sends frames through a packet socket.
//!
//! ```text
//! flood iface=eth0 src=10.0.0.66 kind=forged|unrelated|replay seconds=5 \
//!       [vhid=7] [pps=0] [replay=<hex frame>,<hex frame>…]
//! ```
//!
//! - `forged`: CARP adverts for `vhid` with valid checksums and a wrong
//!   digest, claiming to be a leave advert (advbase 255, advskew 255), the
//!   most dangerous thing to accept;
//! - `unrelated`: UDP broadcast datagrams (port 9), traffic a CARP node has
//!   no business waking up for;
//! - `replay`: the given captured frames, resent in turn.
//!
//! `pps=0` sends as fast as possible. Prints `sent=<n> seconds=<s> pps=<r>`.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use carp_io::iface::InterfaceInfo;
use carp_io::socket::FrameSender;
use carp_proto::datagram::{AdvertDatagram, AdvertFrame};
use carp_proto::ethernet::{EthernetRepr, MacAddr, ETHERTYPE_IPV4};
use carp_proto::ipv4::Ipv4Repr;
use carp_proto::AdvertRepr;

fn forged(mac: MacAddr, src: Ipv4Addr, vhid: u8, counter: u64) -> Vec<u8> {
    AdvertFrame {
        eth_src: mac,
        eth_dst: MacAddr::ipv4_multicast(carp_proto::DEFAULT_GROUP),
        datagram: AdvertDatagram {
            src,
            dst: carp_proto::DEFAULT_GROUP,
            ident: counter as u16,
            advert: AdvertRepr {
                vhid,
                advbase: 255,
                advskew: 255,
                demote: 0,
                counter,
                digest: [0x5a; 20],
            },
        },
    }
    .to_bytes()
    .to_vec()
}

fn unrelated(mac: MacAddr, src: Ipv4Addr) -> Vec<u8> {
    let payload = [0u8; 64];
    let udp_len = 8 + payload.len();
    let mut frame = vec![0u8; 14 + 20 + udp_len];
    EthernetRepr {
        dst: MacAddr::BROADCAST,
        src: mac,
        ethertype: ETHERTYPE_IPV4,
    }
    .emit(&mut frame);
    Ipv4Repr {
        src,
        dst: Ipv4Addr::BROADCAST,
        protocol: 17,
        ttl: 64,
        tos: 0,
        ident: 1,
        dont_frag: true,
        payload_len: udp_len,
    }
    .emit(&mut frame[14..]);
    let udp = &mut frame[34..];
    udp[0..2].copy_from_slice(&9u16.to_be_bytes());
    udp[2..4].copy_from_slice(&9u16.to_be_bytes());
    udp[4..6].copy_from_slice(&(udp_len as u16).to_be_bytes());
    frame
}

fn decode_hex(text: &str) -> Vec<u8> {
    (0..text.len() / 2)
        .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).expect("hex frame"))
        .collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: HashMap<String, String> = std::env::args()
        .skip(1)
        .filter_map(|a| {
            a.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect();
    let get = |key: &str| args.get(key).ok_or_else(|| format!("missing {key}="));
    let iface = InterfaceInfo::lookup(get("iface")?)?;
    let src: Ipv4Addr = get("src")?.parse()?;
    let seconds: f64 = get("seconds")?.parse()?;
    let vhid: u8 = args.get("vhid").map_or(Ok(7), |v| v.parse())?;
    let pps: u64 = args.get("pps").map_or(Ok(0), |v| v.parse())?;
    let sender = FrameSender::open(&iface.name, iface.index)?;
    let replay: Vec<Vec<u8>> = args
        .get("replay")
        .map(|frames| frames.split(',').map(decode_hex).collect())
        .unwrap_or_default();

    let kind = get("kind")?.clone();
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(seconds);
    let mut sent: u64 = 0;
    let fixed_unrelated = unrelated(iface.mac, src);
    // Unpaced, check the clock every 64 frames; paced, after every frame.
    let batch = if pps > 0 { 1 } else { 64 };
    while Instant::now() < deadline {
        for _ in 0..batch {
            let frame = match kind.as_str() {
                "forged" => forged(iface.mac, src, vhid, sent),
                "unrelated" => fixed_unrelated.clone(),
                "replay" if !replay.is_empty() => replay[sent as usize % replay.len()].clone(),
                other => return Err(format!("unknown kind {other:?} (or replay= missing)").into()),
            };
            if sender.send(&frame).is_ok() {
                sent += 1;
            }
        }
        if pps > 0 {
            let due = started + Duration::from_secs_f64(sent as f64 / pps as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "sent={sent} seconds={elapsed:.3} pps={:.0}",
        sent as f64 / elapsed
    );
    Ok(())
}
