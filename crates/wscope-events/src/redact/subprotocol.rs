//! `Sec-WebSocket-Protocol` values that are credentials.
//!
//! A browser's WebSocket API cannot set an `Authorization` header, so
//! services take the token as a subprotocol instead: a bare JWT, or
//! Kubernetes' `base64url.bearer.authorization.k8s.io.<token>`. Real
//! protocol names (`graphql-transport-ws`, `v12.stomp`, `mqtt`) stay
//! readable: only values shaped like those credentials are redacted.

use std::borrow::Cow;

/// Kubernetes' bearer-token subprotocol: the prefix stays, the token goes.
const K8S_BEARER: &str = "base64url.bearer.authorization.k8s.io.";

/// What the record header lists for this rule.
pub(crate) const DESCRIPTION: [&str; 2] = ["jwt", "base64url.bearer.authorization.k8s.io.*"];

/// Whether `part` is made of base64url characters only.
fn is_base64url(part: &str) -> bool {
    part.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'=')
}

/// A JWT in its compact form: three base64url parts joined by dots, the
/// header a JSON object (`{"` encodes as `eyJ`); the signature may be
/// empty (an unsigned token is still a credential to someone).
fn is_jwt(value: &str) -> bool {
    let mut parts = value.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    header.starts_with("eyJ")
        && !payload.is_empty()
        && [header, payload, signature].iter().all(|p| is_base64url(p))
}

/// One offered or chosen subprotocol, its credential part replaced.
fn redact_one<'a>(name: &'a str, marker: &dyn Fn(&str) -> String) -> Cow<'a, str> {
    if is_jwt(name) {
        return Cow::Owned(marker(name));
    }
    if name.len() > K8S_BEARER.len()
        && name.is_char_boundary(K8S_BEARER.len())
        && name[..K8S_BEARER.len()].eq_ignore_ascii_case(K8S_BEARER)
        && !super::is_redacted(&name[K8S_BEARER.len()..])
    {
        let (prefix, token) = name.split_at(K8S_BEARER.len());
        return Cow::Owned(format!("{prefix}{}", marker(token)));
    }
    Cow::Borrowed(name)
}

/// A `Sec-WebSocket-Protocol` value (a comma-separated list) or a chosen
/// subprotocol with its credentials replaced; borrowed when there were
/// none. The list keeps its order and separators.
pub(crate) fn redact_subprotocols<'a>(
    value: &'a str,
    marker: &dyn Fn(&str) -> String,
) -> Cow<'a, str> {
    if !value.contains('.') {
        // Both shapes have dots; most lists have none.
        return Cow::Borrowed(value);
    }
    let mut changed = false;
    let parts: Vec<String> = value
        .split(',')
        .map(|item| {
            let name = item.trim();
            match redact_one(name, marker) {
                Cow::Borrowed(_) => item.to_owned(),
                Cow::Owned(new) => {
                    changed = true;
                    let lead = &item[..item.len() - item.trim_start().len()];
                    let trail = &item[item.trim_end().len()..];
                    format!("{lead}{new}{trail}")
                }
            }
        })
        .collect();
    if changed {
        Cow::Owned(parts.join(","))
    } else {
        Cow::Borrowed(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(value: &str) -> String {
        format!("<redacted:{}>", value.len())
    }

    const JWT: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl";

    #[test]
    fn jwt_and_k8s_bearer_are_credentials() {
        let list = format!("graphql-transport-ws, {JWT}");
        assert_eq!(
            redact_subprotocols(&list, &mark),
            "graphql-transport-ws, <redacted:49>"
        );
        assert_eq!(
            redact_subprotocols(
                "base64.channel.k8s.io, base64url.bearer.authorization.k8s.io.dG9rZW4",
                &mark
            ),
            "base64.channel.k8s.io, base64url.bearer.authorization.k8s.io.<redacted:7>"
        );
    }

    #[test]
    fn ordinary_names_stay_readable() {
        for value in [
            "graphql-transport-ws",
            "graphql-ws, v12.stomp, mqtt",
            "wamp.2.json",
            "eyJ.notajwt",
            "eyJa.b.c.d",
            "base64url.bearer.authorization.k8s.io.",
            "com.example.v1",
        ] {
            assert!(
                matches!(redact_subprotocols(value, &mark), Cow::Borrowed(_)),
                "{value}"
            );
        }
    }

    #[test]
    fn a_redacted_token_is_not_redacted_again() {
        let once = redact_subprotocols("base64url.bearer.authorization.k8s.io.dG9rZW4", &mark);
        assert!(matches!(
            redact_subprotocols(&once, &mark),
            Cow::Borrowed(_)
        ));
    }
}
