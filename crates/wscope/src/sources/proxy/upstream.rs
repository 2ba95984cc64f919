//! Where a proxied request goes, and getting there: TCP, then TLS for
//! wss:// and https://, each step timed.

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, bail};
use url::Url;

use crate::network::stream::NetStream;

/// An upstream server, and the path prefix requests are sent under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub secure: bool,
    pub host: String,
    pub port: u16,
    /// Prepended to each request's path (reverse mode's `/PREFIX`).
    pub prefix: String,
    /// The request target is absolute (`http://host/path`) and must be cut
    /// to its path before it goes upstream.
    pub absolute: bool,
    /// The TCP connection a CONNECT already opened to it, used instead of
    /// a new one.
    pub connected: Connected,
}

/// A TCP connection opened ahead (CONNECT is answered only once the
/// upstream is reached), taken by the first [`Target::connect`].
#[derive(Debug, Clone, Default)]
pub struct Connected(Option<Arc<std::sync::Mutex<Option<tokio::net::TcpStream>>>>);

impl Connected {
    pub fn new(tcp: tokio::net::TcpStream) -> Connected {
        Connected(Some(Arc::new(std::sync::Mutex::new(Some(tcp)))))
    }

    fn take(&self) -> Option<tokio::net::TcpStream> {
        self.0
            .as_ref()?
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }
}

impl PartialEq for Connected {
    /// Where a target leads is what compares; not how it got there.
    fn eq(&self, _: &Connected) -> bool {
        true
    }
}

impl Eq for Connected {}

impl Target {
    /// `--upstream ws[s]://HOST[:PORT][/PREFIX]`.
    pub fn from_url(text: &str) -> anyhow::Result<Target> {
        let url = Url::parse(text).map_err(|e| anyhow!("--upstream {text:?} is not a URL: {e}"))?;
        let secure = match url.scheme() {
            "ws" | "http" => false,
            "wss" | "https" => true,
            other => bail!("--upstream: unsupported scheme {other}:// (use ws:// or wss://)"),
        };
        if url.query().is_some() {
            bail!("--upstream takes no query: each request keeps its own");
        }
        Ok(Target {
            secure,
            host: url
                .host_str()
                .ok_or_else(|| anyhow!("--upstream {text:?} has no host"))?
                .to_owned(),
            port: url.port_or_known_default().unwrap_or(80),
            prefix: url.path().trim_end_matches('/').to_owned(),
            absolute: false,
            connected: Connected::default(),
        })
    }

    /// A forward proxy's absolute request target, `http://host:port/path`.
    pub fn from_absolute(target: &str) -> anyhow::Result<Target> {
        let url = Url::parse(target).map_err(|_| {
            anyhow!("{target:?} is not an absolute URI; is this a forward proxy's client?")
        })?;
        let secure = match url.scheme() {
            "http" | "ws" => false,
            "https" | "wss" => true,
            other => bail!("cannot proxy {other}:// requests"),
        };
        Ok(Target {
            secure,
            host: url
                .host_str()
                .ok_or_else(|| anyhow!("{target:?} has no host"))?
                .to_owned(),
            port: url.port_or_known_default().unwrap_or(80),
            prefix: String::new(),
            absolute: true,
            connected: Connected::default(),
        })
    }

    /// Plain HTTP inside a CONNECT tunnel.
    pub fn plain(host: &str, port: u16) -> Target {
        Target {
            secure: false,
            host: host.to_owned(),
            port,
            prefix: String::new(),
            absolute: false,
            connected: Connected::default(),
        }
    }

    /// TLS inside an intercepted CONNECT tunnel.
    pub fn secure(host: &str, port: u16) -> Target {
        Target {
            secure: true,
            ..Target::plain(host, port)
        }
    }

    /// The Host header for this server.
    pub fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let default = if self.secure { 443 } else { 80 };
        if self.port == default {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    /// What to put in the request line upstream for a client's target.
    pub fn upstream_target(&self, client_target: &str) -> String {
        let path = if self.absolute {
            match Url::parse(client_target) {
                Ok(url) => match url.query() {
                    Some(query) => format!("{}?{query}", url.path()),
                    None => url.path().to_owned(),
                },
                Err(_) => client_target.to_owned(),
            }
        } else {
            client_target.to_owned()
        };
        if self.prefix.is_empty() {
            path
        } else {
            format!("{}{path}", self.prefix)
        }
    }

    /// The URL of a request to this server, for events.
    pub fn url(&self, upstream_target: &str, websocket: bool) -> String {
        let scheme = match (websocket, self.secure) {
            (true, true) => "wss",
            (true, false) => "ws",
            (false, true) => "https",
            (false, false) => "http",
        };
        format!("{scheme}://{}{upstream_target}", self.host_header())
    }

    /// Opens the connection: TCP, then TLS when secure.
    pub async fn connect(
        &self,
        tls: &Arc<rustls::ClientConfig>,
    ) -> Result<(NetStream, Timing), String> {
        let started = Instant::now();
        let tcp = match self.connected.take() {
            Some(tcp) => Ok(tcp),
            None => tokio::net::TcpStream::connect((self.host.as_str(), self.port)).await,
        }
        .map_err(|err| {
            let hint = match err.kind() {
                std::io::ErrorKind::ConnectionRefused => ": nothing listens there",
                _ => "",
            };
            format!(
                "cannot connect to the upstream {}:{}: {err}{hint}",
                self.host, self.port
            )
        })?;
        let _ = tcp.set_nodelay(true);
        let tcp_us = started.elapsed().as_micros() as u64;
        if !self.secure {
            return Ok((
                NetStream::Plain(tcp),
                Timing {
                    tcp_us,
                    tls_us: None,
                },
            ));
        }
        let tls_started = Instant::now();
        let stream = crate::network::tls::connect(tcp, &self.host, tls.clone())
            .await
            .map_err(|err| crate::network::tls::describe(&err, &self.host))?;
        Ok((
            NetStream::TlsClient(Box::new(stream)),
            Timing {
                tcp_us,
                tls_us: Some(tls_started.elapsed().as_micros() as u64),
            },
        ))
    }
}

/// How long reaching the upstream took.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub tcp_us: u64,
    pub tls_us: Option<u64>,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.secure { "wss" } else { "ws" };
        write!(f, "{scheme}://{}{}", self.host_header(), self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverse_targets_keep_path_and_query_under_the_prefix() {
        let t = Target::from_url("wss://example.test/api/").unwrap();
        assert!(t.secure);
        assert_eq!(t.port, 443);
        assert_eq!(t.upstream_target("/chat?room=1"), "/api/chat?room=1");
        assert_eq!(t.host_header(), "example.test");
        let t = Target::from_url("ws://127.0.0.1:9001").unwrap();
        assert_eq!(t.upstream_target("/x"), "/x");
        assert_eq!(t.host_header(), "127.0.0.1:9001");
        assert!(Target::from_url("ftp://x").is_err());
        assert!(Target::from_url("ws://x/?a=1").is_err());
    }

    #[test]
    fn forward_targets_are_cut_to_origin_form() {
        let t = Target::from_absolute("http://127.0.0.1:8000/ws?x=1").unwrap();
        assert_eq!(t.port, 8000);
        assert_eq!(t.upstream_target("http://127.0.0.1:8000/ws?x=1"), "/ws?x=1");
        assert!(Target::from_absolute("/relative").is_err());
        let t = Target::plain("::1", 8080);
        assert_eq!(t.host_header(), "[::1]:8080");
    }
}
