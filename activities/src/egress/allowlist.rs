//! The allowlist: which hosts an execution may reach (`allowedDomains`), and which addresses
//! count as public. Pure functions; no I/O.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Most domains one execution may list.
pub const MAX_DOMAINS: usize = 64;

/// One entry of `allowedDomains`: an exact host, or `*.suffix` for every name below `suffix`
/// (not `suffix` itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainRule {
    /// `example.com`
    Exact(String),
    /// `*.example.com`, stored as `.example.com`.
    Below(String),
}

impl DomainRule {
    /// Parses one allowlist entry; the error says why it is not a domain.
    pub fn parse(entry: &str) -> Result<Self, String> {
        let e = entry.trim().trim_end_matches('.').to_ascii_lowercase();
        let (wild, name) = match e.strip_prefix("*.") {
            Some(rest) => (true, rest.to_string()),
            None => (false, e.clone()),
        };
        if !is_hostname(&name) || name.parse::<IpAddr>().is_ok() {
            return Err(format!(
                "{entry:?} is not a domain name (exact, or *.example.com)"
            ));
        }
        if wild && !name.contains('.') {
            return Err(format!(
                "{entry:?} is too broad: wildcard over a top-level domain"
            ));
        }
        Ok(if wild {
            DomainRule::Below(format!(".{name}"))
        } else {
            DomainRule::Exact(name)
        })
    }

    /// Whether `host` (already lower-cased, no trailing dot) is allowed by this rule.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            DomainRule::Exact(n) => host == n,
            DomainRule::Below(suffix) => host.len() > suffix.len() && host.ends_with(suffix),
        }
    }
}

/// Parses an `allowedDomains` list: at most [`MAX_DOMAINS`] valid entries.
pub fn parse_domains(list: &[String]) -> Result<Vec<DomainRule>, String> {
    if list.len() > MAX_DOMAINS {
        return Err(format!(
            "allowedDomains lists {} entries; at most {MAX_DOMAINS}",
            list.len()
        ));
    }
    list.iter().map(|d| DomainRule::parse(d)).collect()
}

pub(super) fn is_hostname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// True for addresses on the public internet; false for private, loopback, link-local,
/// shared (CGNAT), documentation, benchmarking, multicast, broadcast and reserved ranges.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let s = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link-local
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || (s[0] == 0x0064 && s[1] == 0xff9b) // NAT64: would reach any IPv4
                || v6 == Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0))
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_rules_match_exact_names_and_subdomains_only() {
        let exact = DomainRule::parse("Registry.npmjs.org.").unwrap();
        assert!(exact.matches("registry.npmjs.org"));
        assert!(!exact.matches("evil-registry.npmjs.org"));
        assert!(!exact.matches("registry.npmjs.org.evil.com"));
        let wild = DomainRule::parse("*.example.com").unwrap();
        assert!(wild.matches("a.example.com"));
        assert!(wild.matches("a.b.example.com"));
        assert!(!wild.matches("example.com"));
        assert!(!wild.matches("badexample.com"));
        for bad in [
            "",
            "*",
            "*.com",
            "1.2.3.4",
            "a b.com",
            "exa$mple.com",
            "-a.com",
            "a..com",
        ] {
            assert!(DomainRule::parse(bad).is_err(), "{bad:?}");
        }
        assert!(parse_domains(&vec!["a.com".to_string(); MAX_DOMAINS + 1]).is_err());
    }

    #[test]
    fn only_public_addresses_are_public() {
        for private in [
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "127.0.0.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "192.0.2.2",
            "198.18.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in [
            "1.1.1.1",
            "151.101.1.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }
}
