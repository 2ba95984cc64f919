//! Who may use the UI (docs/UI.md, "Security"): the token printed with its
//! URL, exchanged on a page load for a cookie so that it leaves the
//! address bar; the single-use code `--open` hands the browser instead of
//! the token; the Host and Origin a request must name.
//!
//! Secrets are compared in constant time (`subtle`): the UI may listen
//! where others can time its answers (`--ui-allow-remote`).

use std::path::PathBuf;
use std::sync::Mutex;

use subtle::ConstantTimeEq;

/// How a request stands with the UI's secrets.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The cookie, or the token on anything but a page load (scripts).
    Allowed,
    /// The token or `--open`'s code on a page load: answer with the
    /// cookie and send the browser on to `/`, so the token leaves the URL.
    Exchange,
    Denied,
}

/// A `--ui-origin`: the one origin, besides the loopback names, whose
/// pages may use a UI that listens beyond this machine.
pub struct RemoteOrigin {
    /// As browsers send it in `Origin` (`https://ui.example:8443`).
    serialized: String,
    host: String,
    port: u16,
    secure: bool,
}

impl RemoteOrigin {
    /// `text` as [`crate::sinks::output_args::parse_ui_origin`] left it.
    pub fn new(text: &str) -> anyhow::Result<RemoteOrigin> {
        let url = url::Url::parse(text)?;
        let host = url
            .host_str()
            .ok_or_else(|| anyhow::anyhow!("--ui-origin {text} has no host"))?;
        Ok(RemoteOrigin {
            serialized: url.origin().ascii_serialization(),
            host: host.to_ascii_lowercase(),
            port: url.port_or_known_default().unwrap_or(80),
            secure: url.scheme() == "https",
        })
    }
}

/// `--open`'s code and the file that carries it to the browser.
struct OnceCode {
    code: String,
    file: Option<PathBuf>,
}

pub struct Access {
    /// In the printed URL; good for the UI's whole life.
    token: String,
    /// The cookie's value: distinct from the token, so the token is only
    /// ever in the URL the user was given.
    session: String,
    /// Cookies are not kept apart by port: the name carries it, so two
    /// UIs on one machine do not overwrite each other's.
    cookie_name: String,
    port: u16,
    origin: Option<RemoteOrigin>,
    once: Mutex<Option<OnceCode>>,
}

/// 128 random bits, URL-safe.
fn secret() -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>())
}

/// Whether two secrets are equal, in time that does not depend on where
/// they differ (only on their lengths, which are not secret).
pub fn same_secret(given: &str, expected: &str) -> bool {
    bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
}

impl Access {
    pub fn new(port: u16, origin: Option<RemoteOrigin>) -> Access {
        Access {
            token: secret(),
            session: secret(),
            cookie_name: format!("wscope_ui_{port}"),
            port,
            origin,
            once: Mutex::new(None),
        }
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    /// A new single-use code for `--open` (the previous one, if any,
    /// stops working); `file` is removed once the code is used.
    pub fn once_code(&self, file: impl FnOnce(&str) -> Option<PathBuf>) -> String {
        let code = secret();
        let file = file(&code);
        let old = self
            .once
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace(OnceCode {
                code: code.clone(),
                file,
            });
        if let Some(OnceCode {
            file: Some(path), ..
        }) = old
        {
            remove_open_file(&path);
        }
        code
    }

    /// Forgets `--open`'s code and its file (at shutdown).
    pub fn forget_once(&self) {
        let old = self.once.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(OnceCode {
            file: Some(path), ..
        }) = old
        {
            remove_open_file(&path);
        }
    }

    fn take_once(&self, given: &str) -> bool {
        let mut slot = self.once.lock().unwrap_or_else(|e| e.into_inner());
        let matches = slot
            .as_ref()
            .is_some_and(|once| same_secret(given, &once.code));
        if matches {
            // Used: good no more.
            let used = slot.take();
            if let Some(OnceCode {
                file: Some(path), ..
            }) = used
            {
                remove_open_file(&path);
            }
        }
        matches
    }

    /// What a request may do. `page`: a load of the page itself (`/`);
    /// `token`, `once`: from its query; `cookie`: its Cookie header;
    /// `fetch_site`: its Sec-Fetch-Site, which a browser sets.
    pub fn check(
        &self,
        page: bool,
        token: Option<&str>,
        once: Option<&str>,
        cookie: Option<&str>,
        fetch_site: Option<&str>,
    ) -> Verdict {
        if let Some(once) = once {
            return if page && self.take_once(once) {
                Verdict::Exchange
            } else {
                Verdict::Denied
            };
        }
        if let Some(token) = token {
            return match (same_secret(token, &self.token), page) {
                (true, true) => Verdict::Exchange,
                (true, false) => Verdict::Allowed,
                (false, _) => Verdict::Denied,
            };
        }
        // Another site's page (another port of 127.0.0.1 is the same
        // "site" to a browser) gets the cookie sent along; its requests
        // say where they came from, and are not honoured.
        let from_elsewhere = matches!(fetch_site, Some("cross-site" | "same-site"));
        if !from_elsewhere && cookie.is_some_and(|header| self.cookie_matches(header)) {
            Verdict::Allowed
        } else {
            Verdict::Denied
        }
    }

    fn cookie_matches(&self, header: &str) -> bool {
        header
            .split(';')
            .filter_map(|pair| pair.trim().split_once('='))
            .any(|(name, value)| name == self.cookie_name && same_secret(value, &self.session))
    }

    /// The `Set-Cookie` header line (with its CRLF) an exchange answers
    /// with: not readable by scripts, not sent by other sites' requests,
    /// gone when the browser closes.
    pub fn set_cookie(&self) -> String {
        let secure = if self.origin.as_ref().is_some_and(|o| o.secure) {
            "; Secure"
        } else {
            ""
        };
        format!(
            "Set-Cookie: {}={}; Path=/; HttpOnly; SameSite=Strict{secure}\r\n",
            self.cookie_name, self.session
        )
    }

    /// The names this server answers to: its loopback names with its
    /// port, and `--ui-origin`'s host (a page reached through another
    /// name is refused: DNS rebinding).
    pub fn host_is_ours(&self, host: Option<&str>) -> bool {
        let Some(host) = host.map(str::trim) else {
            return false;
        };
        self.host_is_loopback(host) || self.host_is_remote_origin(host)
    }

    fn host_is_loopback(&self, host: &str) -> bool {
        let Some((name, port)) = host.rsplit_once(':') else {
            return false;
        };
        port == self.port.to_string()
            && matches!(
                name.to_ascii_lowercase().as_str(),
                "127.0.0.1" | "localhost" | "[::1]"
            )
    }

    fn host_is_remote_origin(&self, host: &str) -> bool {
        let Some(origin) = &self.origin else {
            return false;
        };
        let (name, port) = match host.rsplit_once(':') {
            // An IPv6 literal without a port has colons too.
            Some((name, port)) if !port.contains(']') => match port.parse::<u16>() {
                Ok(port) => (name, port),
                Err(_) => return false,
            },
            _ => (host, if origin.secure { 443 } else { 80 }),
        };
        name.eq_ignore_ascii_case(&origin.host) && port == origin.port
    }

    /// A WebSocket from the UI's own page: its Origin is this server by a
    /// loopback name, or exactly `--ui-origin`. (Any client can set Host
    /// and Origin alike; a browser cannot, and the check is against
    /// browsers: another site's page using the user's cookie.)
    pub fn origin_is_ours(&self, origin: Option<&str>, host: Option<&str>) -> bool {
        let Some(origin) = origin.map(str::trim) else {
            return false;
        };
        if let Some(remote) = &self.origin
            && origin.eq_ignore_ascii_case(&remote.serialized)
        {
            return true;
        }
        match host.map(str::trim) {
            Some(host) if self.host_is_loopback(host) => {
                origin.eq_ignore_ascii_case(&format!("http://{host}"))
            }
            _ => false,
        }
    }
}

fn remove_open_file(path: &std::path::Path) {
    let _ = std::fs::remove_file(path);
    if let Some(dir) = path.parent() {
        let _ = std::fs::remove_dir(dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access() -> Access {
        Access::new(4000, None)
    }

    #[test]
    fn only_our_own_names_and_origin() {
        let a = access();
        assert!(a.host_is_ours(Some("127.0.0.1:4000")));
        assert!(a.host_is_ours(Some("localhost:4000")));
        assert!(a.host_is_ours(Some("[::1]:4000")));
        assert!(!a.host_is_ours(Some("evil.test:4000")));
        assert!(!a.host_is_ours(Some("127.0.0.1:4001")));
        assert!(!a.host_is_ours(None));
        assert!(a.origin_is_ours(Some("http://127.0.0.1:4000"), Some("127.0.0.1:4000")));
        assert!(!a.origin_is_ours(Some("http://evil.test"), Some("127.0.0.1:4000")));
        assert!(!a.origin_is_ours(Some("http://evil.test:4000"), Some("evil.test:4000")));
        assert!(!a.origin_is_ours(None, Some("127.0.0.1:4000")));
    }

    #[test]
    fn a_remote_origin_is_matched_exactly() {
        let origin = RemoteOrigin::new("https://ui.example").unwrap();
        let a = Access::new(4000, Some(origin));
        assert!(a.host_is_ours(Some("ui.example")));
        assert!(a.host_is_ours(Some("UI.example:443")));
        assert!(!a.host_is_ours(Some("ui.example:80")));
        assert!(!a.host_is_ours(Some("evil.test")));
        assert!(a.origin_is_ours(Some("https://ui.example"), Some("anything")));
        assert!(!a.origin_is_ours(Some("http://ui.example"), Some("ui.example")));
        assert!(!a.origin_is_ours(Some("https://ui.example.evil"), Some("ui.example")));
        assert!(a.set_cookie().contains("; Secure"));
    }

    #[test]
    fn secrets_are_checked_and_the_code_is_used_once() {
        let a = access();
        let token = a.token().to_owned();
        assert_eq!(
            a.check(true, Some(&token), None, None, None),
            Verdict::Exchange
        );
        assert_eq!(
            a.check(false, Some(&token), None, None, None),
            Verdict::Allowed
        );
        let wrong = "x".repeat(token.len());
        assert_eq!(
            a.check(true, Some(&wrong), None, None, None),
            Verdict::Denied
        );
        assert_eq!(a.check(true, None, None, None, None), Verdict::Denied);
        let code = a.once_code(|_| None);
        assert_eq!(
            a.check(true, None, Some(&code), None, None),
            Verdict::Exchange
        );
        assert_eq!(
            a.check(true, None, Some(&code), None, None),
            Verdict::Denied
        );
        let cookie = a.set_cookie();
        let pair = cookie
            .trim_start_matches("Set-Cookie: ")
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        let header = format!("other=1; {pair}");
        assert_eq!(
            a.check(false, None, None, Some(&header), None),
            Verdict::Allowed
        );
        assert_eq!(
            a.check(false, None, None, Some(&header), Some("same-origin")),
            Verdict::Allowed
        );
        assert_eq!(
            a.check(false, None, None, Some(&header), Some("same-site")),
            Verdict::Denied
        );
        assert_eq!(
            a.check(false, None, None, Some("wscope_ui_4000=nope"), None),
            Verdict::Denied
        );
    }
}
