//! Wire captures for decoder tests: a classic libpcap file of Ethernet +
//! IPv4 + UDP frames around our messages, and running `tshark` on it.

use std::process::Command;

use crate::require_tool;

pub const CLIENT: [u8; 4] = [192, 0, 2, 10];
pub const SERVER: [u8; 4] = [192, 0, 2, 88];

fn ipv4_checksum(header: &[u8]) -> u16 {
    let mut sum: u32 = header
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An Ethernet frame with IPv4 and UDP (checksum 0: none) around `payload`.
pub fn udp_frame(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let udp_len = 8 + payload.len();
    let ip_len = 20 + udp_len;
    assert!(ip_len <= 0xffff, "message too large for one IPv4 datagram");
    let mut f = Vec::with_capacity(14 + ip_len);
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, dst[3]]); // destination MAC
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, src[3]]); // source MAC
    f.extend_from_slice(&[0x08, 0x00]);
    let mut ip = vec![0x45, 0x00];
    ip.extend_from_slice(&(ip_len as u16).to_be_bytes());
    ip.extend_from_slice(&[0x12, 0x34, 0x40, 0x00, 64, 17, 0, 0]); // DF, TTL 64, UDP
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    let ck = ipv4_checksum(&ip);
    ip[10..12].copy_from_slice(&ck.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&(udp_len as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    f
}

/// A pcap file (LINKTYPE_ETHERNET) of `frames`, one second apart.
pub fn pcap(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes()); // thiszone
    out.extend_from_slice(&0u32.to_le_bytes()); // sigfigs
    out.extend_from_slice(&0x0004_0000u32.to_le_bytes()); // snaplen 262144
    out.extend_from_slice(&1u32.to_le_bytes()); // LINKTYPE_ETHERNET
    for (i, f) in frames.iter().enumerate() {
        out.extend_from_slice(&(1_700_000_000u32 + i as u32).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(f);
    }
    out
}

/// Runs tshark with `args`; panics (with the install hint) if it is missing or fails.
pub fn tshark(args: &[&str]) -> String {
    let out = Command::new(require_tool("tshark", "tshark"))
        .args(args)
        .env("HOME", std::env::temp_dir())
        .output()
        .expect("running tshark");
    assert!(
        out.status.success(),
        "tshark {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `tshark -V` output split per frame (index 0 = frame 1).
pub fn per_frame(verbose: &str) -> Vec<String> {
    let mut frames: Vec<String> = Vec::new();
    for line in verbose.lines() {
        if line.starts_with("Frame ") && line.contains(" bytes on wire") {
            frames.push(String::new());
        }
        if let Some(f) = frames.last_mut() {
            f.push_str(line);
            f.push('\n');
        }
    }
    frames
}

/// Malformed-packet markers and warning/error expert infos in `tshark -V` text.
pub fn problems(verbose: &str) -> Vec<&str> {
    verbose
        .lines()
        .filter(|l| {
            l.contains("Malformed")
                || l.contains("[Expert Info (Warning")
                || l.contains("[Expert Info (Error")
        })
        .collect()
}
