//! Validation of a parsed config: every problem at once, one line each
//! (`pktc-kdc check` lists them; `serve` refuses to start on any).

use super::*;

impl Config {
    /// Fails with every problem [`Config::problems`] finds.
    pub fn validate(&self) -> anyhow::Result<()> {
        let problems = self.problems();
        if !problems.is_empty() {
            bail!("invalid configuration:\n  - {}", problems.join("\n  - "));
        }
        Ok(())
    }

    /// What is wrong with the values (one line each); empty when valid.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.realm.is_empty() || self.realm.contains(['/', '@', ' ']) {
            problems.push(format!("realm {:?} is not a valid realm name", self.realm));
        }
        if self.listen.udp.is_empty() && self.listen.tcp.is_empty() {
            problems.push("listen: no UDP or TCP address".to_string());
        }
        if !(1024..=65507).contains(&self.listen.max_request_bytes) {
            problems.push("listen.max_request_bytes must be 1024..=65507".to_string());
        }
        overload::validate_listen(&self.listen, &mut problems);
        self.overload.validate(&mut problems);
        if self.tickets.max_life_secs < 60 {
            problems.push("tickets.max_life_secs must be at least 60".to_string());
        }
        if self.policy.clock_skew_secs == 0 || self.policy.clock_skew_secs > 3600 {
            problems.push("policy.clock_skew_secs must be 1..=3600".to_string());
        }
        if let Err(e) = self.enctypes() {
            problems.push(e.to_string());
        }
        if self.cache.replay_max_entries < 1000 {
            problems.push("cache.replay_max_entries must be at least 1000".to_string());
        }
        if let Some(p) = &self.pkinit {
            if p.dh_min_bits < 1024 {
                problems.push("pkinit.dh_min_bits must be at least 1024".to_string());
            }
            if p.dh_key_reuse_secs > 3600 {
                problems.push("pkinit.dh_key_reuse_secs must be at most 3600".to_string());
            }
            if p.pool_queue == 0 {
                problems.push("pkinit.pool_queue must be at least 1".to_string());
            }
        }
        if let Some(m) = &self.mps {
            if !fqdn_map::codec::is_known_enterprise(m.enterprise) {
                problems.push(format!(
                    "mps.enterprise must be 1 (PacketCable, the spec's value) or 4491 (CableLabs), not {}",
                    m.enterprise
                ));
            }
            if m.servers
                .iter()
                .all(|s| !s.fqdn.eq_ignore_ascii_case(m.default.trim_end_matches('.')))
            {
                problems.push(format!(
                    "mps.default {:?} is not one of mps.servers",
                    m.default
                ));
            }
            if m.servers.iter().any(|s| s.addresses.is_empty()) {
                problems.push("mps.servers: every server needs at least one address".to_string());
            }
            if self.pkinit.is_none() {
                problems.push("[mps] needs [pkinit]: the lookup serves PKINIT devices".to_string());
            }
            if let Some(c) = m.checksum_type
                && krb::crypto::ChecksumType::from_i32(c).is_none_or(|t| !t.is_keyed())
            {
                problems.push(format!(
                    "mps.checksum_type {c} is not a supported keyed checksum type"
                ));
            }
            if m.redis.is_some() && m.redis_secret_file.is_none() {
                problems.push(
                    "mps.redis needs mps.redis_secret_file: the secret that authenticates the \
                     cached answers (docs/configuration.md)"
                        .to_string(),
                );
            }
            if m.recheck_interval_secs > 3600 {
                problems.push("mps.recheck_interval_secs must be 0..=3600".to_string());
            }
        }
        self.redis.validate(&mut problems);
        if let Some(c) = &self.certboot {
            self.validate_certboot(c, &mut problems);
        }
        if let Some(f) = &self.crl_fetch {
            f.validate(&mut problems);
            let trust_dirs: Vec<&Path> = self
                .pkinit
                .iter()
                .map(|p| p.device_trust_dir.as_path())
                .chain(
                    self.certboot
                        .iter()
                        .filter_map(|c| c.device_trust_dir.as_deref()),
                )
                .collect();
            if trust_dirs.is_empty() {
                problems.push("[crl_fetch] needs a device trust directory ([pkinit])".to_string());
            }
            if let Some(cache) = &f.cache_dir
                && trust_dirs.contains(&cache.as_path())
            {
                problems.push(
                    "crl_fetch.cache_dir must not be a trust directory (the file watch would reload its own writes)"
                        .to_string(),
                );
            }
        }
        if self.log.audit.is_empty() {
            problems.push("log.audit must be stdout, stderr, off or a file path".to_string());
        }
        if !(512..=65507).contains(&self.listen.max_udp_reply_bytes) {
            problems.push("listen.max_udp_reply_bytes must be 512..=65507".to_string());
        }
        self.rate_limit.validate(&mut problems);
        if !(self.reload.watch_interval_ms == 0 || self.reload.watch_interval_ms >= 50) {
            problems.push("reload.watch_interval_ms must be 0 (off) or at least 50".to_string());
        }
        problems
    }

    fn validate_certboot(&self, c: &Certboot, problems: &mut Vec<String>) {
        if c.listen.is_empty() && c.modern_listen.is_empty() {
            problems.push("certboot: no listen or modern_listen address".to_string());
        }
        if c.device_trust_dir.is_none() && self.pkinit.is_none() {
            problems.push("certboot.device_trust_dir is required without [pkinit]".to_string());
        }
        let settings = ::certboot::tls::TlsSettings {
            profile: ::certboot::tls::TlsProfile::Pktc,
            min_version: c.min_tls_version.version(),
            security_level: c.security_level,
        };
        if let Err(e) = settings.check() {
            problems.push(format!("certboot: {e}"));
        }
        if c.credentials_file.is_some() == c.credentials_redis.is_some() {
            problems.push(
                "certboot: set exactly one of credentials_file and credentials_redis".to_string(),
            );
        }
        if !c.path.starts_with('/') || c.path.contains(['?', '#', ' ']) {
            problems.push("certboot.path must be an absolute URL path".to_string());
        }
        if c.max_header_bytes < 8192 || c.max_header_bytes > 1 << 20 {
            problems.push("certboot.max_header_bytes must be 8192..=1048576".to_string());
        }
        if c.max_connections == 0 {
            problems.push("certboot.max_connections must be at least 1".to_string());
        }
        if !(c.failures_per_source_per_sec.is_finite() && c.failures_per_source_per_sec >= 0.0) {
            problems.push("certboot.failures_per_source_per_sec must be a number >= 0".to_string());
        }
        if !(c.failure_burst.is_finite() && c.failure_burst >= 1.0) {
            problems.push("certboot.failure_burst must be at least 1".to_string());
        }
        for (name, v) in [
            ("handshake_timeout_ms", c.handshake_timeout_ms),
            ("header_read_timeout_ms", c.header_read_timeout_ms),
            ("connection_timeout_ms", c.connection_timeout_ms),
        ] {
            if !(100..=600_000).contains(&v) {
                problems.push(format!("certboot.{name} must be 100..=600000"));
            }
        }
    }

    /// The permitted encryption types, parsed.
    pub fn enctypes(&self) -> anyhow::Result<Vec<EncType>> {
        let mut out = Vec::new();
        for name in &self.policy.enctypes {
            match EncType::from_name(name) {
                Some(e) if !out.contains(&e) => out.push(e),
                Some(_) => {}
                None => bail!("policy.enctypes: unknown encryption type {name:?}"),
            }
        }
        if out.is_empty() {
            bail!("policy.enctypes: empty");
        }
        Ok(out)
    }
}
