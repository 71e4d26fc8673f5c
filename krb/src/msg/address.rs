//! HostAddress ↔ IP address (RFC 4120 §7.5.3: type 2 IPv4, 4 octets;
//! type 24 IPv6, 16 octets). IPv4-mapped IPv6 addresses (what a dual-stack
//! socket reports for an IPv4 peer) are IPv4 on both sides.

use std::net::IpAddr;

use super::HostAddress;

/// Address type of an IPv6 HostAddress.
pub const INET6: i32 = 24;

/// The HostAddress of `ip`.
pub fn host_address(ip: IpAddr) -> HostAddress {
    match ip.to_canonical() {
        IpAddr::V4(v4) => HostAddress {
            addr_type: HostAddress::IPV4,
            address: v4.octets().to_vec().into(),
        },
        IpAddr::V6(v6) => HostAddress {
            addr_type: INET6,
            address: v6.octets().to_vec().into(),
        },
    }
}

/// The IP address a HostAddress names, if it is a well-formed IPv4 or IPv6 one.
pub fn ip_address(h: &HostAddress) -> Option<IpAddr> {
    match (h.addr_type, h.address.len()) {
        (HostAddress::IPV4, 4) => <[u8; 4]>::try_from(&h.address[..]).ok().map(IpAddr::from),
        (INET6, 16) => <[u8; 16]>::try_from(&h.address[..])
            .ok()
            .map(|a| IpAddr::from(a).to_canonical()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_mapped_addresses() {
        for ip in ["192.0.2.1", "2001:db8::1"] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(ip_address(&host_address(ip)), Some(ip));
        }
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(host_address(mapped).addr_type, HostAddress::IPV4);
        let h = HostAddress {
            addr_type: INET6,
            address: mapped.to_canonical().to_string().into_bytes().into(),
        };
        assert_eq!(ip_address(&h), None);
        let h = HostAddress {
            addr_type: INET6,
            address: match mapped {
                IpAddr::V6(v6) => v6.octets().to_vec().into(),
                IpAddr::V4(_) => unreachable!(),
            },
        };
        assert_eq!(ip_address(&h), Some("192.0.2.1".parse().unwrap()));
    }
}
