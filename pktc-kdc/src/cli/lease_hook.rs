//! `pktc-kdc lease-hook EVENT`: run by ISC Kea's run_script hook
//! (`libdhcp_run_script.so`) on each DHCPv4 lease event, with the lease in
//! environment variables. It keeps the Redis device map that
//! `pktc-kdc mps-responder` answers pkt-eue-7 from (hash
//! `pktc-mps:device:<mac hex>`, fields `fqdn` and `addresses`) in step with
//! what DHCP handed out: a committed or renewed lease writes the MAC's FQDN
//! and address, a released, declined or expired one removes them.
//!
//! Every variable comes from a DHCP client's packet through Kea, so it is
//! hostile input: a MAC, hostname or address in the wrong shape is refused
//! (an audit line with the reason) and never written. Kea runs the script
//! without waiting for it (run_script has no synchronous mode), so two
//! events of one device can reach Redis in either order; each write and
//! removal is one Lua script that compares the lease's client-last-
//! transaction time (CLTT) with the one stored, so an older event never
//! undoes a newer one.

use std::net::Ipv4Addr;
use std::time::Duration;

use anyhow::Context;

/// Most leases one `leases4_committed` event may carry (Kea sends one per
/// DHCPREQUEST; a bound keeps a hostile count from costing anything).
pub const MAX_LEASES_PER_EVENT: usize = 16;

/// Longest value quoted back in a refusal.
const SHOWN: usize = 64;

/// One lease the device now holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    pub mac: [u8; 6],
    /// Lower case, no trailing dot.
    pub fqdn: String,
    pub address: Ipv4Addr,
    /// Client last transaction time, Unix seconds: orders the events.
    pub cltt: u64,
    /// When the lease ends (Unix seconds); None for an infinite lease.
    pub expires_at: Option<u64>,
}

/// One lease the device no longer holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unbind {
    pub mac: [u8; 6],
    pub address: Ipv4Addr,
    pub cltt: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Bind(Bind),
    Unbind(Unbind),
}

/// Why a lease of an event is not acted on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("{0} is missing")]
    Missing(String),
    #[error("{0} is not a MAC address of six colon-separated hex octets: {1}")]
    BadMac(String, String),
    #[error("{0} is {1}, not Ethernet (1)")]
    NotEthernet(String, String),
    #[error(
        "{0} is empty: the device sent no client FQDN option (81) or hostname (12) and Kea assigned none (ddns-qualifying-suffix, ddns-replace-client-name)"
    )]
    NoHostname(String),
    #[error("{0} is not a hostname ({1}): {2}")]
    BadHostname(String, &'static str, String),
    #[error("{0} is not fully qualified: {1} (set ddns-qualifying-suffix in Kea)")]
    NotQualified(String, String),
    #[error("{0} is not an IPv4 address in use: {1}")]
    BadAddress(String, String),
    #[error("{0} is not a number: {1}")]
    BadNumber(String, String),
    #[error("{0} is {1}: more than {MAX_LEASES_PER_EVENT} leases in one event")]
    TooMany(String, String),
    #[error("{0} is {1}: the lease is not in use")]
    NotInUse(String, String),
}

/// What an event asks for.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub changes: Vec<Change>,
    pub refused: Vec<Refusal>,
    /// Why the event needs nothing, when it does not.
    pub ignored: Option<&'static str>,
}

/// A value as quoted in a refusal: at most 64 characters, escaped.
fn shown(v: &str) -> String {
    let cut: String = v.chars().take(SHOWN).collect();
    let more = if v.chars().count() > SHOWN { "…" } else { "" };
    format!("{cut:?}{more}")
}

/// Reads the lease variables `<prefix>NAME` of one lease.
struct LeaseVars<'a, E> {
    env: &'a E,
    prefix: String,
}

impl<E: Fn(&str) -> Option<String>> LeaseVars<'_, E> {
    fn get(&self, name: &str) -> Result<(String, String), Refusal> {
        let key = format!("{}{name}", self.prefix);
        match (self.env)(&key) {
            Some(v) => Ok((key, v)),
            None => Err(Refusal::Missing(key)),
        }
    }

    /// Kea writes hardware addresses as `00:10:95:00:00:01`; nothing else is taken.
    fn mac(&self) -> Result<[u8; 6], Refusal> {
        let (key, v) = self.get("HWADDR_TYPE")?;
        if v != "1" {
            return Err(Refusal::NotEthernet(key, shown(&v)));
        }
        let (key, v) = self.get("HWADDR")?;
        let well_formed = v.len() == 17
            && v.bytes().enumerate().all(|(i, b)| {
                if i % 3 == 2 {
                    b == b':'
                } else {
                    b.is_ascii_hexdigit()
                }
            });
        match certs::mac::parse_mac(&v) {
            Ok(mac) if well_formed => Ok(mac),
            _ => Err(Refusal::BadMac(key, shown(&v))),
        }
    }

    fn address(&self) -> Result<Ipv4Addr, Refusal> {
        let (key, v) = self.get("ADDRESS")?;
        match v.parse::<Ipv4Addr>() {
            Ok(a) if !a.is_unspecified() && !a.is_broadcast() => Ok(a),
            _ => Err(Refusal::BadAddress(key, shown(&v))),
        }
    }

    fn number(&self, name: &str) -> Result<u64, Refusal> {
        let (key, v) = self.get(name)?;
        // Digits only: u64::from_str would also take a leading '+'.
        match v.parse::<u64>() {
            Ok(n) if v.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
            _ => Err(Refusal::BadNumber(key, shown(&v))),
        }
    }

    /// The hostname Kea recorded: from option 81 or 12, qualified with
    /// `ddns-qualifying-suffix`, or generated by Kea.
    fn fqdn(&self) -> Result<String, Refusal> {
        let (key, v) = self.get("HOSTNAME")?;
        if v.is_empty() {
            return Err(Refusal::NoHostname(key));
        }
        let fqdn = fqdn_map::codec::check_fqdn(v.as_bytes()).map_err(|e| {
            let why = match e {
                fqdn_map::CodecError::BadFqdn(why) => why,
                _ => "not a hostname",
            };
            Refusal::BadHostname(key.clone(), why, shown(&v))
        })?;
        if !fqdn.contains('.') {
            return Err(Refusal::NotQualified(key, shown(&v)));
        }
        Ok(fqdn.to_ascii_lowercase())
    }

    fn bind(&self) -> Result<Bind, Refusal> {
        if let Ok((key, state)) = self.get("STATE")
            && state != "default"
        {
            return Err(Refusal::NotInUse(key, shown(&state)));
        }
        let cltt = self.number("CLTT")?;
        let lifetime = self.number("VALID_LIFETIME")?;
        Ok(Bind {
            mac: self.mac()?,
            fqdn: self.fqdn()?,
            address: self.address()?,
            cltt,
            // 0xffffffff is Kea's infinite lifetime.
            expires_at: (lifetime < u64::from(u32::MAX)).then(|| cltt.saturating_add(lifetime)),
        })
    }

    fn unbind(&self) -> Result<Unbind, Refusal> {
        Ok(Unbind {
            mac: self.mac()?,
            address: self.address()?,
            cltt: self.number("CLTT")?,
        })
    }
}

/// What Kea's hook point `event` with these variables asks for (Kea
/// 2.2's run_script names, ARM "Run Script Support").
pub fn plan(event: &str, env: &impl Fn(&str) -> Option<String>) -> Plan {
    let lease = |prefix: &str| LeaseVars {
        env,
        prefix: prefix.to_string(),
    };
    let mut results: Vec<Result<Change, Refusal>> = Vec::new();
    let mut ignored = None;
    match event {
        // A DHCPREQUEST (or a release) applied: the leases handed out and
        // the ones taken back.
        "leases4_committed" => {
            for (size, prefix, bind) in [
                ("LEASES4_SIZE", "LEASES4_AT", true),
                ("DELETED_LEASES4_SIZE", "DELETED_LEASES4_AT", false),
            ] {
                let Some(v) = env(size) else { continue };
                let count = match v.parse::<usize>() {
                    Ok(n) if n <= MAX_LEASES_PER_EVENT => n,
                    Ok(_) => {
                        results.push(Err(Refusal::TooMany(size.into(), shown(&v))));
                        continue;
                    }
                    Err(_) => {
                        results.push(Err(Refusal::BadNumber(size.into(), shown(&v))));
                        continue;
                    }
                };
                for i in 0..count {
                    let l = lease(&format!("{prefix}{i}_"));
                    results.push(if bind {
                        l.bind().map(Change::Bind)
                    } else {
                        l.unbind().map(Change::Unbind)
                    });
                }
            }
        }
        // Kea also calls lease4_renew while answering a DHCPDISCOVER for a
        // device that has a lease: that is only an offer.
        "lease4_renew" => match env("QUERY4_TYPE").as_deref() {
            Some("DHCPREQUEST") => results.push(lease("LEASE4_").bind().map(Change::Bind)),
            _ => ignored = Some("a renewal offered, not committed"),
        },
        "lease4_release" | "lease4_decline" | "lease4_expire" => {
            results.push(lease("LEASE4_").unbind().map(Change::Unbind))
        }
        // A declined address returns to the pool: no device holds it.
        "lease4_recover" => ignored = Some("no device holds a recovered lease"),
        _ => ignored = Some("not a DHCPv4 lease event"),
    }
    if ignored.is_none() && results.is_empty() {
        ignored = Some("no lease in the event");
    }
    let mut plan = Plan {
        ignored,
        ..Plan::default()
    };
    for r in results {
        match r {
            Ok(c) => plan.changes.push(c),
            Err(e) => plan.refused.push(e),
        }
    }
    plan
}

/// Writes a binding unless the stored one comes from a newer lease.
/// KEYS[1] hash; ARGV fqdn, addresses, cltt, expiry ('' = none).
const BIND_SCRIPT: &str = r"
local stored = tonumber(redis.call('HGET', KEYS[1], 'lease_cltt'))
if stored and stored > tonumber(ARGV[3]) then return 0 end
redis.call('HSET', KEYS[1], 'fqdn', ARGV[1], 'addresses', ARGV[2], 'lease_cltt', ARGV[3])
if ARGV[4] ~= '' then redis.call('EXPIREAT', KEYS[1], ARGV[4]) else redis.call('PERSIST', KEYS[1]) end
return 1
";

/// Removes a binding made from this lease: not one from a newer lease
/// (0), not one for another address (-1); 1 removed, 2 nothing stored.
/// On an equal CLTT it removes (fail closed: the device asks DHCP again).
/// KEYS[1] hash; ARGV address, cltt.
const UNBIND_SCRIPT: &str = r"
local stored = tonumber(redis.call('HGET', KEYS[1], 'lease_cltt'))
if stored and stored > tonumber(ARGV[2]) then return 0 end
local addresses = redis.call('HGET', KEYS[1], 'addresses')
if addresses and addresses ~= ARGV[1] then return -1 end
if redis.call('DEL', KEYS[1]) == 1 then return 1 end
return 2
";

/// What one change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Written,
    Removed,
    /// Nothing changed, with why.
    Unchanged(&'static str),
}

impl Applied {
    pub fn outcome(self) -> &'static str {
        match self {
            Applied::Written => "written",
            Applied::Removed => "removed",
            Applied::Unchanged(_) => "unchanged",
        }
    }

    pub fn reason(self) -> &'static str {
        match self {
            Applied::Unchanged(why) => why,
            _ => "",
        }
    }
}

/// Applies one change to the device map.
pub fn apply(conn: &mut redis::Connection, change: &Change) -> redis::RedisResult<Applied> {
    match change {
        Change::Bind(b) => {
            let n: i64 = redis::cmd("EVAL")
                .arg(BIND_SCRIPT)
                .arg(1)
                .arg(crate::dev::mps_responder::redis_key(b.mac))
                .arg(&b.fqdn)
                .arg(b.address.to_string())
                .arg(b.cltt)
                .arg(b.expires_at.map(|e| e.to_string()).unwrap_or_default())
                .query(conn)?;
            Ok(match n {
                1 => Applied::Written,
                _ => Applied::Unchanged("a newer lease is stored"),
            })
        }
        Change::Unbind(u) => {
            let n: i64 = redis::cmd("EVAL")
                .arg(UNBIND_SCRIPT)
                .arg(1)
                .arg(crate::dev::mps_responder::redis_key(u.mac))
                .arg(u.address.to_string())
                .arg(u.cltt)
                .query(conn)?;
            Ok(match n {
                1 => Applied::Removed,
                0 => Applied::Unchanged("a newer lease is stored"),
                -1 => Applied::Unchanged("another address is stored"),
                _ => Applied::Unchanged("nothing stored"),
            })
        }
    }
}

/// Connects with bounded waits: Kea starts one hook process per event,
/// and none may hang.
pub fn connect(url: &str) -> anyhow::Result<redis::Connection> {
    let timeout = Duration::from_secs(2);
    let client = redis::Client::open(url).with_context(|| format!("redis {url:?}"))?;
    let conn = client
        .get_connection_with_timeout(timeout)
        .with_context(|| format!("connecting to {url}"))?;
    conn.set_read_timeout(Some(timeout))?;
    conn.set_write_timeout(Some(timeout))?;
    Ok(conn)
}

/// Runs one event: an audit line per lease (target `audit`, exchange
/// `lease-hook`); an error when anything was refused or Redis failed, so
/// the exit status says so.
pub fn run(event: &str, redis_url: &str) -> anyhow::Result<()> {
    let env = |k: &str| std::env::var_os(k).map(|v| v.to_string_lossy().into_owned());
    let plan = plan(event, &env);
    for r in &plan.refused {
        tracing::warn!(target: "audit", exchange = "lease-hook", event, outcome = "refused", reason = %r);
    }
    if let Some(why) = plan.ignored {
        tracing::info!(target: "audit", exchange = "lease-hook", event, outcome = "ignored", reason = why);
    }
    let mut failed = plan.refused.len();
    if !plan.changes.is_empty() {
        let mut conn = connect(redis_url)?;
        for change in &plan.changes {
            let (mac, address, fqdn) = match change {
                Change::Bind(b) => (b.mac, b.address, b.fqdn.as_str()),
                Change::Unbind(u) => (u.mac, u.address, ""),
            };
            let mac = certs::mac::format_mac(mac);
            match apply(&mut conn, change) {
                Ok(a) => {
                    tracing::info!(target: "audit", exchange = "lease-hook", event, mac, fqdn, %address, outcome = a.outcome(), reason = a.reason())
                }
                Err(e) => {
                    failed += 1;
                    tracing::warn!(target: "audit", exchange = "lease-hook", event, mac, fqdn, %address, outcome = "failed", reason = %e);
                }
            }
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} lease(s) of {event} not applied");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Kea 2.2's variables for one committed DHCPREQUEST (as captured from
    /// a real kea-dhcp4 on loopback).
    fn committed() -> HashMap<String, String> {
        [
            ("QUERY4_TYPE", "DHCPREQUEST"),
            ("LEASES4_SIZE", "1"),
            ("DELETED_LEASES4_SIZE", "0"),
            ("LEASES4_AT0_ADDRESS", "127.0.0.1"),
            ("LEASES4_AT0_CLTT", "1796399444"),
            ("LEASES4_AT0_HOSTNAME", "mta-001095000001.pktc.test."),
            ("LEASES4_AT0_HWADDR", "00:10:95:00:00:01"),
            ("LEASES4_AT0_HWADDR_TYPE", "1"),
            ("LEASES4_AT0_STATE", "default"),
            ("LEASES4_AT0_SUBNET_ID", "1"),
            ("LEASES4_AT0_VALID_LIFETIME", "600"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    fn run_plan(event: &str, vars: &HashMap<String, String>) -> Plan {
        plan(event, &|k: &str| vars.get(k).cloned())
    }

    /// The `LEASE4_*` form of the same lease (lease4_renew, _release, ...).
    fn single(query: &str) -> HashMap<String, String> {
        let mut v: HashMap<String, String> = committed()
            .into_iter()
            .filter_map(|(k, v)| {
                k.strip_prefix("LEASES4_AT0_")
                    .map(|rest| (format!("LEASE4_{rest}"), v))
            })
            .collect();
        v.insert("QUERY4_TYPE".into(), query.into());
        v
    }

    const MAC: [u8; 6] = [0x00, 0x10, 0x95, 0x00, 0x00, 0x01];

    #[test]
    fn committed_lease_binds_mac_to_fqdn_and_address() {
        let p = run_plan("leases4_committed", &committed());
        assert_eq!(p.refused, vec![]);
        assert_eq!(
            p.changes,
            vec![Change::Bind(Bind {
                mac: MAC,
                fqdn: "mta-001095000001.pktc.test".into(),
                address: Ipv4Addr::LOCALHOST,
                cltt: 1796399444,
                expires_at: Some(1796399444 + 600),
            })]
        );
    }

    #[test]
    fn events_map_to_changes() {
        let unbind = Change::Unbind(Unbind {
            mac: MAC,
            address: Ipv4Addr::LOCALHOST,
            cltt: 1796399444,
        });
        for event in ["lease4_release", "lease4_decline", "lease4_expire"] {
            assert_eq!(
                run_plan(event, &single("DHCPRELEASE")).changes,
                vec![unbind.clone()],
                "{event}"
            );
        }
        // A release also arrives as leases4_committed with the lease deleted.
        let mut released: HashMap<String, String> = committed()
            .into_iter()
            .map(|(k, v)| (k.replacen("LEASES4_AT0_", "DELETED_LEASES4_AT0_", 1), v))
            .collect();
        released.insert("LEASES4_SIZE".into(), "0".into());
        released.insert("DELETED_LEASES4_SIZE".into(), "1".into());
        assert_eq!(
            run_plan("leases4_committed", &released).changes,
            vec![unbind]
        );
        assert!(matches!(
            run_plan("lease4_renew", &single("DHCPREQUEST")).changes.as_slice(),
            [Change::Bind(b)] if b.fqdn == "mta-001095000001.pktc.test"
        ));
        // Kea calls lease4_renew for a DISCOVER too: an offer, not a lease.
        let offer = run_plan("lease4_renew", &single("DHCPDISCOVER"));
        assert!(offer.changes.is_empty() && offer.refused.is_empty());
        assert!(offer.ignored.is_some());
        for event in [
            "lease4_recover",
            "lease6_renew",
            "leases6_committed",
            "",
            "nonsense",
        ] {
            let p = run_plan(event, &single("DHCPREQUEST"));
            assert!(
                p.changes.is_empty() && p.refused.is_empty() && p.ignored.is_some(),
                "{event}"
            );
        }
        let mut empty = committed();
        empty.insert("LEASES4_SIZE".into(), "0".into());
        assert!(run_plan("leases4_committed", &empty).ignored.is_some());
    }

    #[test]
    fn infinite_lease_has_no_expiry() {
        let mut v = committed();
        v.insert("LEASES4_AT0_VALID_LIFETIME".into(), "4294967295".into());
        assert!(matches!(
            run_plan("leases4_committed", &v).changes.as_slice(),
            [Change::Bind(b)] if b.expires_at.is_none()
        ));
    }

    #[test]
    fn hostname_without_trailing_dot_and_upper_case_are_taken() {
        let mut v = committed();
        v.insert("LEASES4_AT0_HOSTNAME".into(), "MTA-1.Example.NET".into());
        assert!(matches!(
            run_plan("leases4_committed", &v).changes.as_slice(),
            [Change::Bind(b)] if b.fqdn == "mta-1.example.net"
        ));
    }

    /// Odd input: each lease in the wrong shape is refused with the field
    /// named, and nothing of it is planned.
    #[test]
    fn odd_input_is_refused_never_planned() {
        let long_label = format!("{}.pktc.test", "a".repeat(64));
        let long_name = format!("{}pktc.test", "abcdefghi.".repeat(25));
        let cases: Vec<(&str, String, &str)> = vec![
            ("HWADDR", "00:10:95:00:00".into(), "MAC"),
            ("HWADDR", "00:10:95:00:00:01:02".into(), "MAC"),
            ("HWADDR", "0010.9500.0001".into(), "MAC"),
            ("HWADDR", "001095000001".into(), "MAC"),
            ("HWADDR", " 00:10:95:00:00:01".into(), "MAC"),
            ("HWADDR", "00:10:95:00:00:0g".into(), "MAC"),
            ("HWADDR", "00-10-95-00-00-01".into(), "MAC"),
            ("HWADDR", "".into(), "MAC"),
            ("HWADDR_TYPE", "6".into(), "Ethernet"),
            ("HOSTNAME", "".into(), "no client FQDN"),
            ("HOSTNAME", "mta-001095000001".into(), "fully qualified"),
            ("HOSTNAME", "mta 1.pktc.test".into(), "hostname"),
            ("HOSTNAME", "mta;rm -rf.pktc.test".into(), "hostname"),
            ("HOSTNAME", "mta\n1.pktc.test".into(), "hostname"),
            ("HOSTNAME", "mta..pktc.test".into(), "hostname"),
            ("HOSTNAME", "mta.pktc.test\u{0}".into(), "hostname"),
            ("HOSTNAME", "mtä.pktc.test".into(), "hostname"),
            ("HOSTNAME", ".".into(), "hostname"),
            ("HOSTNAME", long_label, "hostname"),
            ("HOSTNAME", long_name, "hostname"),
            ("ADDRESS", "0.0.0.0".into(), "IPv4"),
            ("ADDRESS", "255.255.255.255".into(), "IPv4"),
            ("ADDRESS", "127.0.0.01".into(), "IPv4"),
            ("ADDRESS", "::1".into(), "IPv4"),
            ("ADDRESS", "".into(), "IPv4"),
            ("CLTT", "-1".into(), "number"),
            ("CLTT", "+5".into(), "number"),
            ("CLTT", "99999999999999999999999".into(), "number"),
            ("VALID_LIFETIME", "abc".into(), "number"),
            ("STATE", "declined".into(), "not in use"),
        ];
        for (field, value, why) in cases {
            let mut v = committed();
            v.insert(format!("LEASES4_AT0_{field}"), value.clone());
            let p = run_plan("leases4_committed", &v);
            assert!(p.changes.is_empty(), "{field}={value:?} was planned: {p:?}");
            assert_eq!(p.refused.len(), 1, "{field}={value:?}");
            let msg = p.refused[0].to_string();
            assert!(msg.contains(&format!("LEASES4_AT0_{field}")), "{msg}");
            assert!(msg.contains(why), "{field}={value:?}: {msg}");
            assert!(!msg.contains('\n'), "{msg}");
        }
        for field in ["HWADDR", "HWADDR_TYPE", "HOSTNAME", "ADDRESS", "CLTT"] {
            let mut v = committed();
            v.remove(&format!("LEASES4_AT0_{field}"));
            let p = run_plan("leases4_committed", &v);
            assert!(p.changes.is_empty(), "{field} missing");
            assert!(
                p.refused[0].to_string().contains("missing"),
                "{:?}",
                p.refused
            );
        }
        // A hostile count costs nothing; a bad lease does not stop a good one.
        let mut v = committed();
        v.insert("LEASES4_SIZE".into(), "4000000000".into());
        let p = run_plan("leases4_committed", &v);
        assert!(p.changes.is_empty());
        assert!(matches!(p.refused.as_slice(), [Refusal::TooMany(..)]));
        let mut v = committed();
        v.insert("LEASES4_SIZE".into(), "2".into());
        let p = run_plan("leases4_committed", &v);
        assert_eq!(p.changes.len(), 1);
        assert!(matches!(p.refused.as_slice(), [Refusal::Missing(k)] if k == "LEASES4_AT1_CLTT"));
    }

    #[test]
    fn refusals_quote_values_escaped_and_bounded() {
        let mut v = committed();
        v.insert(
            "LEASES4_AT0_HOSTNAME".into(),
            format!("\u{1b}[31m{}", "x".repeat(500)),
        );
        let msg = run_plan("leases4_committed", &v).refused[0].to_string();
        assert!(!msg.contains('\u{1b}'), "{msg}");
        assert!(msg.len() < 300, "{msg}");
    }
}
