//! Where a client really connects: curl's `--resolve HOST:PORT:ADDR` (pin
//! a name to addresses, skipping DNS) and `--connect-to
//! HOST1:PORT1:HOST2:PORT2` (send connections for one host and port to
//! another). The URL, and so the `Host` header and the TLS server name,
//! stay as they are: this is how a person tests one backend behind a load
//! balancer, or a new server before DNS points at it.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

/// `--resolve HOST:PORT:ADDR[,ADDR...]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolve {
    /// Lower case, without brackets; `*` matches any host.
    pub host: String,
    pub port: u16,
    pub addrs: Vec<IpAddr>,
}

/// `--connect-to HOST1:PORT1:HOST2:PORT2`; an empty part matches any host
/// or port (first two) or keeps it (last two).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectTo {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub to_host: Option<String>,
    pub to_port: Option<u16>,
}

/// Splits on `:` outside `[...]`, so IPv6 literals can be written in
/// brackets; the brackets are kept.
fn fields(text: &str) -> Result<Vec<&str>, String> {
    let mut out = Vec::new();
    let mut depth = 0u32;
    let mut start = 0;
    for (at, c) in text.char_indices() {
        match c {
            '[' if depth == 0 => depth = 1,
            '[' => return Err("a '[' inside brackets".to_owned()),
            ']' if depth == 1 => depth = 0,
            ']' => return Err("a ']' without its '['".to_owned()),
            ':' if depth == 0 => {
                out.push(&text[start..at]);
                start = at + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err("a '[' without its ']'".to_owned());
    }
    out.push(&text[start..]);
    Ok(out)
}

fn unbracket(host: &str) -> &str {
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

fn host(text: &str) -> Result<String, String> {
    let host = unbracket(text);
    if host.is_empty() || host.contains(['[', ']', '/', ' ']) {
        return Err(format!("{text:?} is not a host name or address"));
    }
    Ok(host.to_ascii_lowercase())
}

fn port(text: &str) -> Result<u16, String> {
    text.parse::<u16>()
        .ok()
        .filter(|&p| p != 0)
        .ok_or_else(|| format!("{text:?} is not a port (1-65535)"))
}

/// Parses `--resolve`'s value (clap value parser).
pub fn parse_resolve(text: &str) -> Result<Resolve, String> {
    let usage =
        "as HOST:PORT:ADDR[,ADDR...], e.g. example.com:443:127.0.0.1 or example.com:443:[::1]";
    let parts = fields(text).map_err(|e| format!("{e} ({usage})"))?;
    let [name, number, addrs] = parts[..] else {
        return Err(format!("{text:?}: give {usage}"));
    };
    let addrs = addrs
        .split(',')
        .map(|addr| {
            unbracket(addr.trim())
                .parse::<IpAddr>()
                .map_err(|_| format!("{addr:?} is not an IP address ({usage})"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Resolve {
        host: if name == "*" {
            "*".to_owned()
        } else {
            host(name)?
        },
        port: port(number)?,
        addrs,
    })
}

/// Parses `--connect-to`'s value (clap value parser).
pub fn parse_connect_to(text: &str) -> Result<ConnectTo, String> {
    let usage = "as HOST1:PORT1:HOST2:PORT2 (an empty part is any host or port, or keeps it), e.g. example.com:443:backend-2:8443 or ::127.0.0.1:";
    let parts = fields(text).map_err(|e| format!("{e} ({usage})"))?;
    let [h1, p1, h2, p2] = parts[..] else {
        return Err(format!("{text:?}: give {usage}"));
    };
    let some = |text: &str, parse: fn(&str) -> Result<String, String>| {
        (!text.is_empty()).then(|| parse(text)).transpose()
    };
    let some_port = |text: &str| (!text.is_empty()).then(|| port(text)).transpose();
    Ok(ConnectTo {
        host: some(h1, host)?,
        port: some_port(p1)?,
        to_host: some(h2, host)?,
        to_port: some_port(p2)?,
    })
}

/// The overrides of one command line.
#[derive(Debug, Clone, Copy)]
pub struct Hosts<'a> {
    pub resolve: &'a [Resolve],
    pub connect_to: &'a [ConnectTo],
}

impl Hosts<'_> {
    /// Where a connection for `host:port` goes: the first `--connect-to`
    /// that matches, else itself.
    pub fn route(&self, host: &str, port: u16) -> (String, u16) {
        let name = unbracket(host).to_ascii_lowercase();
        for rule in self.connect_to {
            let host_matches = rule.host.as_ref().is_none_or(|h| *h == name);
            let port_matches = rule.port.is_none_or(|p| p == port);
            if host_matches && port_matches {
                return (
                    rule.to_host.clone().unwrap_or(name),
                    rule.to_port.unwrap_or(port),
                );
            }
        }
        (name, port)
    }

    /// The addresses `--resolve` pins `host:port` to, if it does.
    pub fn pinned(&self, host: &str, port: u16) -> Option<Vec<SocketAddr>> {
        let name = unbracket(host).to_ascii_lowercase();
        let exact = self
            .resolve
            .iter()
            .find(|r| r.host == name && r.port == port);
        let rule = exact.or_else(|| {
            self.resolve
                .iter()
                .find(|r| r.host == "*" && r.port == port)
        })?;
        Some(
            rule.addrs
                .iter()
                .map(|&ip| SocketAddr::new(ip, port))
                .collect(),
        )
    }

    /// The addresses to try for `host:port`, after `--connect-to`: pinned,
    /// literal, or from DNS (with the time DNS took, in microseconds).
    pub async fn addresses(
        &self,
        host: &str,
        port: u16,
    ) -> Result<(Vec<SocketAddr>, Option<u64>), String> {
        let (host, port) = self.route(host, port);
        if let Some(addrs) = self.pinned(&host, port) {
            return Ok((addrs, None));
        }
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok((vec![SocketAddr::new(ip, port)], None));
        }
        let started = Instant::now();
        let addrs: Vec<_> = tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|e| format!("cannot resolve {host}: {e} (check the host name and DNS)"))?
            .collect();
        if addrs.is_empty() {
            return Err(format!("{host} resolves to no address"));
        }
        Ok((addrs, Some(started.elapsed().as_micros() as u64)))
    }

    /// In words, for reports: what the overrides do to `host:port`.
    pub fn describe(&self, host: &str, port: u16) -> Option<String> {
        let (to_host, to_port) = self.route(host, port);
        let routed = (to_host != unbracket(host).to_ascii_lowercase() || to_port != port)
            .then(|| format!("--connect-to sends {host}:{port} to {to_host}:{to_port}"));
        let pinned = self.pinned(&to_host, to_port).map(|addrs| {
            let list: Vec<String> = addrs.iter().map(|a| a.ip().to_string()).collect();
            format!("--resolve pins {to_host}:{to_port} to {}", list.join(", "))
        });
        match (routed, pinned) {
            (None, None) => None,
            (Some(a), None) | (None, Some(a)) => Some(a),
            (Some(a), Some(b)) => Some(format!("{a}; {b}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_parses_names_ports_and_address_lists() {
        let r = parse_resolve("Example.COM:443:127.0.0.1,[::1]").unwrap();
        assert_eq!(r.host, "example.com");
        assert_eq!(r.port, 443);
        assert_eq!(
            r.addrs,
            vec![IpAddr::from([127, 0, 0, 1]), "::1".parse().unwrap()]
        );
        assert_eq!(parse_resolve("*:80:10.0.0.1").unwrap().host, "*");
        for bad in [
            "",
            "example.com:443",
            "example.com:443:not-an-ip",
            "example.com:0:127.0.0.1",
            "example.com:99999:127.0.0.1",
            "example.com:443:[::1",
            "[::1]]:443:127.0.0.1",
            "a:1:127.0.0.1:extra",
        ] {
            let err = parse_resolve(bad).unwrap_err();
            assert!(
                err.contains("HOST:PORT:ADDR") || err.contains("not"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn connect_to_parts_may_be_empty() {
        let c = parse_connect_to("example.com:443:[::1]:8443").unwrap();
        assert_eq!(c.host.as_deref(), Some("example.com"));
        assert_eq!(c.to_host.as_deref(), Some("::1"));
        assert_eq!(c.to_port, Some(8443));
        let any = parse_connect_to("::127.0.0.1:").unwrap();
        assert_eq!((any.host, any.port, any.to_port), (None, None, None));
        assert!(parse_connect_to("a:1:b").is_err());
        assert!(parse_connect_to("a:x:b:1").is_err());
    }

    #[test]
    fn the_first_matching_rule_routes_and_resolve_pins_after_it() {
        let connect_to = [
            parse_connect_to("api.example:443:backend:9443").unwrap(),
            parse_connect_to(":80::8080").unwrap(),
        ];
        let resolve = [parse_resolve("backend:9443:127.0.0.2").unwrap()];
        let hosts = Hosts {
            resolve: &resolve,
            connect_to: &connect_to,
        };
        assert_eq!(
            hosts.route("API.example", 443),
            ("backend".to_owned(), 9443)
        );
        assert_eq!(hosts.route("other", 80), ("other".to_owned(), 8080));
        assert_eq!(hosts.route("other", 443), ("other".to_owned(), 443));
        assert_eq!(
            hosts.pinned("backend", 9443),
            Some(vec!["127.0.0.2:9443".parse().unwrap()])
        );
        assert_eq!(hosts.pinned("backend", 443), None);
        let words = hosts.describe("api.example", 443).unwrap();
        assert!(
            words.contains("--connect-to sends api.example:443 to backend:9443"),
            "{words}"
        );
        assert!(
            words.contains("--resolve pins backend:9443 to 127.0.0.2"),
            "{words}"
        );
        assert_eq!(hosts.describe("elsewhere", 443), None);
    }
}
