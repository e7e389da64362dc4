//! Known answers: real UCARP 1.5.2 advertisements (tests/data/*.hex, copied
//! from the project's shared captures) must parse, authenticate and re-emit
//! byte for byte; every kind of damage must fail with its own error.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use carp_proto::auth::{Password, VirtualHostAuth};
use carp_proto::datagram::{AdvertDatagram, AdvertFrame};
use carp_proto::ethernet::{self, MacAddr};
use carp_proto::{checksum, AdvertRepr, ParseError, ReceiveFilter, Rejected};

/// One capture file: its parameters (from the second comment line) and frames.
struct Vector {
    name: String,
    vhid: u8,
    password: String,
    vip: Ipv4Addr,
    srcip: Ipv4Addr,
    advbase: u8,
    advskew: u8,
    broadcast: bool,
    frames: Vec<Vec<u8>>,
}

fn decode_hex(line: &str) -> Vec<u8> {
    (0..line.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&line[i..i + 2], 16).expect("hex"))
        .collect()
}

fn load(path: &Path) -> Vector {
    let text = std::fs::read_to_string(path).unwrap();
    let params_line = text.lines().nth(1).expect("parameter line");
    let param = |key: &str| -> String {
        params_line
            .trim_start_matches('#')
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("{key} missing in {}", path.display()))
            .to_string()
    };
    Vector {
        name: path.file_name().unwrap().to_string_lossy().into_owned(),
        vhid: param("vhid").parse().unwrap(),
        password: param("password"),
        vip: param("vip").parse().unwrap(),
        srcip: param("srcip").parse().unwrap(),
        advbase: param("advbase").parse().unwrap(),
        advskew: param("advskew").parse().unwrap(),
        broadcast: param("flags").contains("-M"),
        frames: text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(|l| decode_hex(l.trim()))
            .collect(),
    }
}

fn vectors() -> Vec<Vector> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "hex"))
        .collect();
    paths.sort();
    let vectors: Vec<_> = paths.iter().map(|p| load(p)).collect();
    assert_eq!(vectors.len(), 3, "expected the three UCARP captures");
    assert!(vectors.iter().all(|v| !v.frames.is_empty()));
    vectors
}

fn filter_for(vhid: u8, password: &str, vip: Ipv4Addr) -> ReceiveFilter {
    ReceiveFilter {
        own_addrs: vec![IpAddr::V4(Ipv4Addr::new(203, 0, 113, 1))],
        groups: vec![IpAddr::V4(carp_proto::DEFAULT_GROUP)],
        peers: Vec::new(),
        auth: VirtualHostAuth::new(
            &Password::new(password.as_bytes()).unwrap(),
            vhid,
            &[IpAddr::V4(vip)],
        )
        .unwrap(),
    }
}

fn filter(v: &Vector) -> ReceiveFilter {
    filter_for(v.vhid, &v.password, v.vip)
}

const IP: usize = ethernet::HEADER_LEN;
const CARP: usize = IP + 20;

/// Recomputes both checksums after a deliberate change.
fn refill_checksums(frame: &mut [u8]) {
    frame[IP + 10..IP + 12].copy_from_slice(&[0, 0]);
    let sum = checksum::checksum(&frame[IP..IP + 20]);
    frame[IP + 10..IP + 12].copy_from_slice(&sum.to_be_bytes());
    frame[CARP + 6..CARP + 8].copy_from_slice(&[0, 0]);
    let sum = checksum::checksum(&frame[CARP..CARP + 36]);
    frame[CARP + 6..CARP + 8].copy_from_slice(&sum.to_be_bytes());
}

#[test]
fn every_frame_parses_and_authenticates() {
    for v in vectors() {
        for (i, frame) in v.frames.iter().enumerate() {
            let parsed =
                AdvertFrame::parse(frame).unwrap_or_else(|e| panic!("{} #{i}: {e}", v.name));
            let d = parsed.datagram;
            assert_eq!(d.src, v.srcip, "{} #{i}", v.name);
            assert_eq!(d.dst, carp_proto::DEFAULT_GROUP);
            assert_eq!(d.advert.vhid, v.vhid);
            assert_eq!(d.advert.advbase, v.advbase);
            assert_eq!(d.advert.advskew, v.advskew);
            assert_eq!(d.advert.demote, 0);
            assert_eq!(parsed.eth_src, MacAddr::virtual_router(v.vhid));
            let expected_dst = if v.broadcast {
                MacAddr::BROADCAST
            } else {
                MacAddr::ipv4_multicast(carp_proto::DEFAULT_GROUP)
            };
            assert_eq!(parsed.eth_dst, expected_dst);
            assert_eq!(
                filter(&v).accept_frame(frame),
                Ok(d.into()),
                "{} #{i}",
                v.name
            );
            // The same bytes through a raw IP socket's path.
            assert_eq!(filter(&v).accept_datagram(&frame[IP..]), Ok(d.into()));
        }
    }
}

#[test]
fn re_emitting_with_captured_counter_reproduces_the_capture() {
    for v in vectors() {
        let auth = filter(&v).auth;
        for frame in &v.frames {
            let captured = AdvertFrame::parse(frame).unwrap();
            let rebuilt = AdvertFrame {
                eth_src: MacAddr::virtual_router(v.vhid),
                eth_dst: captured.eth_dst,
                datagram: AdvertDatagram {
                    src: v.srcip,
                    dst: carp_proto::DEFAULT_GROUP,
                    ident: captured.datagram.ident,
                    advert: AdvertRepr {
                        vhid: v.vhid,
                        advbase: v.advbase,
                        advskew: v.advskew,
                        demote: 0,
                        counter: captured.datagram.advert.counter,
                        digest: auth.sign(captured.datagram.advert.counter),
                    },
                },
            };
            assert_eq!(
                rebuilt.to_bytes().as_slice(),
                frame.as_slice(),
                "{}",
                v.name
            );
        }
    }
}

#[test]
fn wrong_password_vhid_or_address_fail() {
    for v in vectors() {
        let frame = &v.frames[0];
        assert_eq!(
            filter_for(v.vhid, "wrong", v.vip).accept_frame(frame),
            Err(Rejected::BadDigest { vhid: v.vhid })
        );
        let other_vhid = v.vhid % 255 + 1;
        assert_eq!(
            filter_for(other_vhid, &v.password, v.vip).accept_frame(frame),
            Err(Rejected::WrongVhid {
                expected: other_vhid,
                got: v.vhid
            })
        );
        let other_vip = Ipv4Addr::from(u32::from(v.vip) ^ 1);
        assert_eq!(
            filter_for(v.vhid, &v.password, other_vip).accept_frame(frame),
            Err(Rejected::BadDigest { vhid: v.vhid })
        );
        // Forged vhid with valid checksums: claims our vhid, digest is theirs.
        let mut forged = frame.clone();
        forged[CARP + 1] = other_vhid;
        refill_checksums(&mut forged);
        assert_eq!(
            filter_for(other_vhid, &v.password, v.vip).accept_frame(&forged),
            Err(Rejected::BadDigest { vhid: other_vhid })
        );
    }
}

#[test]
fn any_changed_byte_fails() {
    for v in vectors() {
        let frame = &v.frames[0];
        // Every bit of the counter and the digest, with checksums made valid
        // again so that only the digest can catch it.
        for byte in CARP + 8..CARP + 36 {
            for bit in 0..8 {
                let mut changed = frame.clone();
                changed[byte] ^= 1 << bit;
                refill_checksums(&mut changed);
                assert_eq!(
                    filter(&v).accept_frame(&changed),
                    Err(Rejected::BadDigest { vhid: v.vhid }),
                    "{} byte {byte} bit {bit}",
                    v.name
                );
            }
        }
        // Any bit anywhere in the IP or CARP headers, checksums left alone:
        // always rejected, never panics.
        for byte in IP..frame.len() {
            for bit in 0..8 {
                let mut changed = frame.clone();
                changed[byte] ^= 1 << bit;
                assert!(
                    filter(&v).accept_frame(&changed).is_err(),
                    "{} byte {byte}",
                    v.name
                );
            }
        }
    }
}

#[test]
fn bad_checksums_fail_with_their_own_error() {
    for v in vectors() {
        let mut bad_carp = v.frames[0].clone();
        bad_carp[CARP + 6] ^= 0xff;
        assert_eq!(
            AdvertFrame::parse(&bad_carp),
            Err(ParseError::BadCarpChecksum)
        );
        let mut bad_ip = v.frames[0].clone();
        bad_ip[IP + 10] ^= 0xff;
        assert_eq!(AdvertFrame::parse(&bad_ip), Err(ParseError::BadIpChecksum));
        // A change in the CARP header without a checksum update.
        let mut changed_skew = v.frames[0].clone();
        changed_skew[CARP + 2] ^= 0x01;
        assert_eq!(
            AdvertFrame::parse(&changed_skew),
            Err(ParseError::BadCarpChecksum)
        );
    }
}

#[test]
fn ttl_other_than_255_fails() {
    for v in vectors() {
        for ttl in [0u8, 1, 64, 254] {
            let mut routed = v.frames[0].clone();
            routed[IP + 8] = ttl;
            // UCARP checks the TTL before the checksum: same error whether
            // or not the header checksum was fixed up.
            assert_eq!(AdvertFrame::parse(&routed), Err(ParseError::BadTtl(ttl)));
            refill_checksums(&mut routed);
            assert_eq!(
                filter(&v).accept_frame(&routed),
                Err(Rejected::Malformed(ParseError::BadTtl(ttl)))
            );
        }
    }
}

#[test]
fn own_packets_and_other_groups_are_rejected() {
    for v in vectors() {
        let mut own = filter(&v);
        own.own_addrs = vec![IpAddr::V4(v.srcip)];
        assert_eq!(own.accept_frame(&v.frames[0]), Err(Rejected::OwnPacket));
        let mut other_group = filter(&v);
        other_group.groups = vec![IpAddr::V4(Ipv4Addr::new(239, 1, 2, 3))];
        assert_eq!(
            other_group.accept_frame(&v.frames[0]),
            Err(Rejected::WrongDestination {
                dst: IpAddr::V4(carp_proto::DEFAULT_GROUP),
                group: IpAddr::V4(Ipv4Addr::new(239, 1, 2, 3))
            })
        );
    }
}

/// The .pcap files hold the same frames as the .hex files.
#[test]
fn pcap_captures_match_hex() {
    for v in vectors() {
        let pcap_path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data")
            .join(v.name.replace(".hex", ".pcap"));
        let Ok(pcap) = std::fs::read(&pcap_path) else {
            continue; // not every capture comes with a pcap
        };
        let little_endian = pcap[..4] == [0xd4, 0xc3, 0xb2, 0xa1];
        let read_u32 = |at: usize| {
            let b: [u8; 4] = pcap[at..at + 4].try_into().unwrap();
            if little_endian {
                u32::from_le_bytes(b)
            } else {
                u32::from_be_bytes(b)
            }
        };
        let mut frames = Vec::new();
        let mut at = 24;
        while at + 16 <= pcap.len() {
            let caplen = read_u32(at + 8) as usize;
            frames.push(pcap[at + 16..at + 16 + caplen].to_vec());
            at += 16 + caplen;
        }
        assert_eq!(frames, v.frames, "{}", v.name);
    }
}

/// Several addresses per vhid, as OpenBSD carp(4) signs them: IPv4
/// addresses ascending, 4 network-order bytes each, between the vhid and
/// the counter. The expected digests were computed apart from this code,
/// with Python's standard library:
///
/// ```text
/// import hmac, hashlib, ipaddress, struct
/// def digest(pw, vhid, addrs, counter):
///     a = sorted(ipaddress.IPv4Address(x) for x in addrs)
///     msg = bytes([2, 1, vhid]) + b''.join(x.packed for x in a) + struct.pack('>Q', counter)
///     return hmac.new(pw, msg, hashlib.sha1).hexdigest()
/// ```
#[test]
fn several_addresses_known_answers() {
    let cases: [(&str, u8, &[&str], u64, &str); 3] = [
        // One address: exactly UCARP's message.
        (
            "love",
            42,
            &["10.1.1.252"],
            0x0102_0304_0506_0708,
            "2fa27458019cf0f5b3213320729727a7c3a7aaff",
        ),
        // Given out of order: signed in ascending order.
        (
            "love",
            42,
            &["10.1.1.253", "192.168.0.1", "10.1.1.252"],
            0x0102_0304_0506_0708,
            "8bdd363fd5636943759caca63a88235787785b7d",
        ),
        (
            "s3cret",
            7,
            &["10.99.0.102", "10.99.0.100", "10.99.0.101"],
            0xfedc_ba98_7654_3210,
            "9eeb8693d6aa961ef6962d85cc3c8e283a7b6c7e",
        ),
    ];
    for (password, vhid, addresses, counter, expected) in cases {
        let addresses: Vec<IpAddr> = addresses.iter().map(|a| a.parse().unwrap()).collect();
        let auth = VirtualHostAuth::new(
            &Password::new(password.as_bytes()).unwrap(),
            vhid,
            &addresses,
        )
        .unwrap();
        let digest: String = auth
            .sign(counter)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(digest, expected, "{password} vhid {vhid} {addresses:?}");
        let mut sorted = addresses.clone();
        sorted.sort();
        assert_eq!(auth.addresses(), sorted.as_slice());
    }
}
