//! Which HTTP proxy the checks go through: `--proxy`, else the one the
//! environment names for the scheme (`https_proxy`/`HTTPS_PROXY` for
//! wss://, `http_proxy`/`HTTP_PROXY` for ws://) unless `no_proxy`/`NO_PROXY`
//! excludes the host, as curl decides. A proxy nobody remembered setting
//! is a classic reason a socket works in one shell and not another, so
//! the choice is reported either way.

use url::Url;

use super::finding::{Finding, Verdict};

/// The proxy chosen for a URL, and the finding that says why.
pub fn choose(url: &str, flag: Option<&str>) -> (Option<String>, Finding) {
    choose_with(url, flag, |name| std::env::var(name).ok())
}

fn first_set(
    env: &impl Fn(&str) -> Option<String>,
    names: &[&'static str],
) -> Option<(&'static str, String)> {
    names.iter().find_map(|name| {
        env(name)
            .filter(|v| !v.trim().is_empty())
            .map(|v| (*name, v))
    })
}

/// `choose` with the environment given, for tests.
fn choose_with(
    url: &str,
    flag: Option<&str>,
    env: impl Fn(&str) -> Option<String>,
) -> (Option<String>, Finding) {
    if let Some(proxy) = flag {
        return (
            Some(proxy.to_owned()),
            Finding::new(
                "proxy",
                Verdict::Info,
                format!("through --proxy {}", shown(proxy)),
            ),
        );
    }
    let Ok(parsed) = Url::parse(url) else {
        return (None, Finding::skipped("proxy", "not a URL"));
    };
    let secure = matches!(parsed.scheme(), "wss" | "https");
    let names: &[&'static str] = if secure {
        &["https_proxy", "HTTPS_PROXY"]
    } else {
        &["http_proxy", "HTTP_PROXY"]
    };
    let Some((name, proxy)) = first_set(&env, names) else {
        return (
            None,
            Finding::ok(
                "proxy",
                format!("direct: no --proxy, no {} in the environment", names[1]),
            ),
        );
    };
    let host = parsed
        .host_str()
        .unwrap_or("")
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    if let Some((no_name, no_proxy)) = first_set(&env, &["no_proxy", "NO_PROXY"])
        && excluded(&host, &no_proxy)
    {
        return (
            None,
            Finding::new(
                "proxy",
                Verdict::Info,
                format!(
                    "direct: {no_name}={no_proxy} excludes {host} from {name}={}",
                    shown(&proxy)
                ),
            ),
        );
    }
    (
        Some(proxy.clone()),
        Finding::new(
            "proxy",
            Verdict::Info,
            format!("through {name}={}", shown(&proxy)),
        ),
    )
}

/// Whether a `no_proxy` list names `host`: `*`, the host itself, or a
/// domain it is under (`example.com` and `.example.com` both cover
/// `ws.example.com`); ports are ignored.
fn excluded(host: &str, no_proxy: &str) -> bool {
    no_proxy.split(',').any(|entry| {
        let entry = entry.trim().to_ascii_lowercase();
        let entry = entry
            .rsplit_once(':')
            .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()) && !entry.contains('['))
            .map_or(entry.as_str(), |(name, _)| name)
            .trim_start_matches('[')
            .trim_end_matches(']');
        let domain = entry.trim_start_matches('.');
        entry == "*"
            || (!domain.is_empty() && (host == domain || host.ends_with(&format!(".{domain}"))))
    })
}

/// A proxy URL without its password.
fn shown(proxy: &str) -> String {
    match Url::parse(proxy) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("***"));
            url.to_string().trim_end_matches('/').to_owned()
        }
        _ => proxy.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn the_scheme_picks_the_variable_and_no_proxy_excludes() {
        let vars = [
            ("http_proxy", "http://plain:3128"),
            ("HTTPS_PROXY", "http://user:secret@tls:3128"),
            ("NO_PROXY", "localhost,.internal.test,10.0.0.1:8080"),
        ];
        let (proxy, finding) = choose_with("ws://example.com/", None, env(&vars));
        assert_eq!(proxy.as_deref(), Some("http://plain:3128"));
        assert!(finding.summary.contains("http_proxy="));
        let (proxy, finding) = choose_with("wss://example.com/", None, env(&vars));
        assert_eq!(proxy.as_deref(), Some("http://user:secret@tls:3128"));
        assert!(!finding.summary.contains("secret"), "{}", finding.summary);
        for url in [
            "ws://localhost:9001/",
            "ws://a.internal.test/",
            "ws://internal.test/",
            "ws://10.0.0.1/",
        ] {
            let (proxy, finding) = choose_with(url, None, env(&vars));
            assert_eq!(proxy, None, "{url}");
            assert!(finding.summary.contains("excludes"), "{url}");
        }
        let (proxy, _) = choose_with("ws://notinternal.test/", None, env(&vars));
        assert!(proxy.is_some());
        let (proxy, finding) = choose_with("ws://x/", Some("http://p:1"), env(&vars));
        assert_eq!(proxy.as_deref(), Some("http://p:1"));
        assert!(finding.summary.contains("--proxy"));
        let (proxy, finding) = choose_with("ws://x/", None, env(&[]));
        assert_eq!(proxy, None);
        assert_eq!(finding.verdict, Verdict::Ok);
        let (proxy, _) = choose_with(
            "ws://x/",
            None,
            env(&[("http_proxy", "http://p:1"), ("no_proxy", "*")]),
        );
        assert_eq!(proxy, None);
    }
}
