//! The private-address guard on endpoint URLs (SPEC §1, SSRF).
//!
//! A tenant must not be able to make the gateway call into the operator's own
//! network. URLs are checked when an endpoint is saved (scheme, literal
//! addresses, `localhost` names) and every resolved address is checked again
//! at delivery time, so a hostname that later resolves to a private address
//! (DNS rebinding) is refused too. Operators open holes with CIDRs.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use url::{Host, Url};

/// Longest accepted endpoint URL.
pub const MAX_URL_LEN: usize = 2048;

#[derive(Debug, Clone, Default)]
pub struct TargetGuard {
    allow: Vec<IpNet>,
    allow_http: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("is not a valid URL: {0}")]
    Malformed(String),
    #[error("is longer than {MAX_URL_LEN} characters")]
    TooLong,
    #[error("must use https")]
    NotHttps,
    #[error("must use http or https")]
    BadScheme,
    #[error("must name a host")]
    NoHost,
    #[error("must not carry a fragment")]
    Fragment,
    #[error("points to {0}, a loopback, private, link-local or otherwise non-public address")]
    PrivateAddress(IpAddr),
    #[error("names a local host ('{0}')")]
    LocalName(String),
}

impl TargetGuard {
    pub fn new(allow: Vec<IpNet>, allow_http: bool) -> Self {
        Self { allow, allow_http }
    }

    /// Checks an endpoint URL as the integrator typed it and returns it parsed.
    pub fn check_url(&self, raw: &str) -> Result<Url, TargetError> {
        if raw.len() > MAX_URL_LEN {
            return Err(TargetError::TooLong);
        }
        let url = Url::parse(raw).map_err(|e| TargetError::Malformed(e.to_string()))?;
        match url.scheme() {
            "https" => {}
            "http" if self.allow_http => {}
            "http" => return Err(TargetError::NotHttps),
            _ if self.allow_http => return Err(TargetError::BadScheme),
            _ => return Err(TargetError::NotHttps),
        }
        if url.fragment().is_some() {
            return Err(TargetError::Fragment);
        }
        match url.host() {
            None => Err(TargetError::NoHost),
            Some(Host::Ipv4(ip)) => self.check_ip(IpAddr::V4(ip)).map(|_| url),
            Some(Host::Ipv6(ip)) => self.check_ip(IpAddr::V6(ip)).map(|_| url),
            Some(Host::Domain(name)) => {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                let local = name == "localhost"
                    || name.ends_with(".localhost")
                    || name.ends_with(".local")
                    || name.ends_with(".internal")
                    || !name.contains('.');
                // A local name is only allowed when the operator opened loopback.
                if local && !self.allows(IpAddr::V4(Ipv4Addr::LOCALHOST)) {
                    return Err(TargetError::LocalName(name));
                }
                Ok(url)
            }
        }
    }

    /// Checks one address a delivery is about to connect to.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), TargetError> {
        if is_public(ip) || self.allows(ip) {
            Ok(())
        } else {
            Err(TargetError::PrivateAddress(ip))
        }
    }

    fn allows(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.allow.iter().any(|net| net.contains(&ip))
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:127.0.0.1`) reach the IPv4 host, so
/// they are judged as that host.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// Whether an address is globally routable, i.e. not loopback, private,
/// link-local, shared (CGNAT), unspecified, broadcast, multicast, reserved or
/// documentation space, in either family. IPv6 forms that embed an IPv4
/// address (mapped, NAT64, 6to4) are judged by that address.
pub fn is_public(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let non_public = ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0 // "this network"
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240; // reserved
    !non_public
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let seg = ip.segments();
    if ip.is_unspecified() || ip.is_loopback() || ip.is_multicast() {
        return false;
    }
    // NAT64 (64:ff9b::/96) and 6to4 (2002::/16) carry an IPv4 host.
    if seg[0] == 0x64 && seg[1] == 0xff9b && seg[2..6] == [0; 4] {
        let [a, b] = seg[6].to_be_bytes();
        let [c, d] = seg[7].to_be_bytes();
        return is_public_v4(Ipv4Addr::new(a, b, c, d));
    }
    if seg[0] == 0x2002 {
        let [a, b] = seg[1].to_be_bytes();
        let [c, d] = seg[2].to_be_bytes();
        return is_public_v4(Ipv4Addr::new(a, b, c, d));
    }
    let non_public = (seg[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (seg[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (seg[0] & 0xffc0) == 0xfec0 // site-local (deprecated) fec0::/10
        || (seg[0] == 0x2001 && seg[1] == 0x0db8) // documentation
        || (seg[0] == 0x0100 && seg[1..4] == [0; 3]) // discard-only 100::/64
        || seg[..6] == [0; 6]; // IPv4-compatible (deprecated) ::a.b.c.d
    !non_public
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard() -> TargetGuard {
        TargetGuard::default()
    }

    #[test]
    fn public_https_urls_pass() {
        for url in [
            "https://example.com/hook",
            "https://93.184.216.34:8443/x?y=1",
            "https://[2606:2800:220:1:248:1893:25c8:1946]/",
        ] {
            assert!(guard().check_url(url).is_ok(), "{url}");
        }
    }

    #[test]
    fn scheme_rules() {
        assert_eq!(
            guard().check_url("http://example.com/"),
            Err(TargetError::NotHttps)
        );
        assert_eq!(
            guard().check_url("ftp://example.com/"),
            Err(TargetError::NotHttps)
        );
        let lax = TargetGuard::new(vec![], true);
        assert!(lax.check_url("http://example.com/").is_ok());
        assert_eq!(
            lax.check_url("ftp://example.com/"),
            Err(TargetError::BadScheme)
        );
        assert!(matches!(
            guard().check_url("not a url"),
            Err(TargetError::Malformed(_))
        ));
        assert_eq!(
            guard().check_url("https://example.com/#frag"),
            Err(TargetError::Fragment)
        );
    }

    #[test]
    fn private_literals_are_refused_in_both_families() {
        for url in [
            "https://127.0.0.1/",
            "https://127.8.9.10/",
            "https://10.0.0.1/",
            "https://172.16.5.4/",
            "https://192.168.1.1/",
            "https://169.254.169.254/latest/meta-data",
            "https://0.0.0.0/",
            "https://100.64.0.1/",
            "https://[::1]/",
            "https://[::]/",
            "https://[fe80::1]/",
            "https://[fd00::1]/",
            "https://[::ffff:127.0.0.1]/",
            "https://[::ffff:10.0.0.1]/",
            "https://[64:ff9b::a9fe:a9fe]/",
            "https://[2002:7f00:1::]/",
            "https://2130706433/", // decimal form of 127.0.0.1
            "https://0x7f.1/",
        ] {
            assert!(
                matches!(guard().check_url(url), Err(TargetError::PrivateAddress(_))),
                "{url}: {:?}",
                guard().check_url(url)
            );
        }
    }

    #[test]
    fn local_names_are_refused() {
        for url in [
            "https://localhost/",
            "https://LOCALHOST./",
            "https://api.localhost/",
            "https://printer.local/",
            "https://intranet/",
        ] {
            assert!(
                matches!(guard().check_url(url), Err(TargetError::LocalName(_))),
                "{url}"
            );
        }
    }

    #[test]
    fn operator_allowlist_opens_holes() {
        let g = TargetGuard::new(vec!["127.0.0.0/8".parse().unwrap()], false);
        assert!(g.check_url("https://127.0.0.1:9000/").is_ok());
        assert!(g.check_url("https://localhost:9000/").is_ok());
        assert!(g.check_url("https://[::ffff:127.0.0.1]/").is_ok());
        assert!(g.check_url("https://10.0.0.1/").is_err());
        assert!(g.check_ip("::1".parse().unwrap()).is_err());
    }
}
