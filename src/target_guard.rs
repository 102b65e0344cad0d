//! The private-address guard on endpoint URLs (SSRF).
//!
//! A tenant must not be able to make the gateway call into the operator's own
//! network. URLs are checked when an endpoint is saved (scheme, literal
//! addresses, `localhost` names) and every resolved address is checked again
//! at delivery time, so a hostname that later resolves to a private address
//! (DNS rebinding) is refused too. Operators open holes with CIDRs.
//!
//! IPv6 addresses that carry an IPv4 address (mapped, translated, NAT64,
//! 6to4, Teredo) are judged by the IPv4 address they carry; see [`is_public`].

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
/// documentation space, in either family.
///
/// IPv6 forms that carry an IPv4 address reach (or may reach) that IPv4 host,
/// so they are judged by it:
/// - IPv4-mapped `::ffff:a.b.c.d` (`::ffff:0:0/96`);
/// - IPv4-translated (SIIT) `::ffff:0:a.b.c.d` (`::ffff:0:0:0/96`);
/// - IPv4-compatible `::a.b.c.d` (deprecated; always refused);
/// - NAT64, well-known `64:ff9b::/96` and local-use `64:ff9b:1::/48`, the
///   IPv4 address in the last 32 bits;
/// - 6to4 `2002::/16`, the IPv4 address in bits 16 to 48;
/// - Teredo `2001::/32`, which carries two: the server in bits 32 to 64 and
///   the client, inverted, in the last 32 bits. Both must be public.
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
    let v4 = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    // IPv4-translated (SIIT) ::ffff:0:a.b.c.d.
    if seg[..4] == [0; 4] && seg[4] == 0xffff && seg[5] == 0 {
        return is_public_v4(v4(seg[6], seg[7]));
    }
    // NAT64: the well-known 64:ff9b::/96 and the local-use 64:ff9b:1::/48.
    if seg[0] == 0x64 && seg[1] == 0xff9b && (seg[2..6] == [0; 4] || seg[2] == 0x0001) {
        return is_public_v4(v4(seg[6], seg[7]));
    }
    // 6to4 2002::/16.
    if seg[0] == 0x2002 {
        return is_public_v4(v4(seg[1], seg[2]));
    }
    // Teredo 2001:0::/32: server in bits 32..64, client inverted in the last 32.
    if seg[0] == 0x2001 && seg[1] == 0 {
        let server = v4(seg[2], seg[3]);
        let client = v4(!seg[6], !seg[7]);
        return is_public_v4(server) && is_public_v4(client);
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
            "https://[64:ff9b:1::7f00:1]/",
            "https://[64:ff9b:1:ab::a00:1]/",
            "https://[::ffff:0:7f00:1]/",
            "https://[::ffff:0:a00:1]/",
            "https://[::ffff:0:a9fe:a9fe]/",
            // Teredo, client 127.0.0.1 / 10.0.0.1 behind a public server.
            "https://[2001:0:5db8:d822:0:f227:80ff:fffe]/",
            "https://[2001:0:5db8:d822:0:f227:f5ff:fffe]/",
            // Teredo, public client behind a private server.
            "https://[2001:0:a00:1:0:f227:a247:27dd]/",
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

    /// The IPv6 forms that carry an IPv4 address, each with `v4` in it.
    fn embedding(v4: Ipv4Addr) -> Vec<Ipv6Addr> {
        let bits = u32::from(v4);
        let (hi, lo) = ((bits >> 16) as u16, bits as u16);
        vec![
            v4.to_ipv6_mapped(),
            Ipv6Addr::new(0, 0, 0, 0, 0xffff, 0, hi, lo),
            Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, hi, lo),
            Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, hi, lo),
            Ipv6Addr::new(0x64, 0xff9b, 1, 0x2a, 0, 0, hi, lo),
            Ipv6Addr::new(0x2002, hi, lo, 0, 0, 0, 0, 1),
            // Teredo with a public server and `v4` as the client...
            Ipv6Addr::new(0x2001, 0, 0x5db8, 0xd822, 0x8000, 0xf227, !hi, !lo),
            // ...and with `v4` as the server and a public client (93.184.216.34).
            Ipv6Addr::new(0x2001, 0, hi, lo, 0, 0xf227, !0x5db8, !0xd822),
        ]
    }

    #[test]
    fn embedded_ipv4_addresses_are_judged_as_themselves() {
        for v4 in [
            "127.0.0.1",
            "10.0.0.1",
            "192.168.7.7",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
        ] {
            let v4: Ipv4Addr = v4.parse().unwrap();
            for v6 in embedding(v4) {
                assert!(!is_public(IpAddr::V6(v6)), "{v6} (carrying {v4})");
                assert!(
                    matches!(
                        guard().check_url(&format!("https://[{v6}]/")),
                        Err(TargetError::PrivateAddress(_))
                    ),
                    "{v6}"
                );
            }
        }
        for v4 in ["93.184.216.34", "8.8.8.8", "1.1.1.1"] {
            let v4: Ipv4Addr = v4.parse().unwrap();
            for v6 in embedding(v4) {
                assert!(is_public(IpAddr::V6(v6)), "{v6} (carrying {v4})");
                assert!(
                    guard().check_url(&format!("https://[{v6}]/")).is_ok(),
                    "{v6}"
                );
            }
        }
    }

    #[test]
    fn teredo_is_refused_when_either_end_is_private() {
        let teredo = |server: [u8; 4], client: [u8; 4]| {
            let s = u32::from(Ipv4Addr::from(server));
            let c = !u32::from(Ipv4Addr::from(client));
            Ipv6Addr::new(
                0x2001,
                0,
                (s >> 16) as u16,
                s as u16,
                0,
                0xf227,
                (c >> 16) as u16,
                c as u16,
            )
        };
        let public = [93, 184, 216, 34];
        let loopback = [127, 0, 0, 1];
        let private = [10, 0, 0, 1];
        assert_eq!(
            teredo(public, loopback),
            "2001:0:5db8:d822:0:f227:80ff:fffe"
                .parse::<Ipv6Addr>()
                .unwrap()
        );
        assert_eq!(
            teredo(public, private),
            "2001:0:5db8:d822:0:f227:f5ff:fffe"
                .parse::<Ipv6Addr>()
                .unwrap()
        );
        let judge = |server, client| is_public(IpAddr::V6(teredo(server, client)));
        assert!(judge(public, [8, 8, 8, 8]));
        assert!(!judge(public, loopback));
        assert!(!judge(public, private));
        assert!(!judge(private, [8, 8, 8, 8]));
        assert!(!judge(loopback, loopback));
    }

    #[test]
    fn other_ipv6_neighbours_of_the_decoded_forms_are_not_misread() {
        // Outside the decoded prefixes, the embedded-looking bits mean nothing.
        for v6 in [
            "2001:4860::7f00:1", // not Teredo (2001:0::/32)
            "2606:4700::7f00:1", // an ordinary public address
        ] {
            assert!(is_public(v6.parse().unwrap()), "{v6}");
        }
        // Still refused: IPv4-compatible and documentation space.
        for v6 in ["::7f00:1", "::808:808", "2001:db8::1"] {
            assert!(!is_public(v6.parse().unwrap()), "{v6}");
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
