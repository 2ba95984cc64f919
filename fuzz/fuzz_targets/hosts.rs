//! Arbitrary `--resolve` and `--connect-to` values: parsing returns a
//! rule or an error, never panics; a rule routes any host.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wscope::network::hosts::{Hosts, parse_connect_to, parse_resolve};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let resolve: Vec<_> = parse_resolve(text).into_iter().collect();
    let connect_to: Vec<_> = parse_connect_to(text).into_iter().collect();
    for rule in &resolve {
        assert!(!rule.addrs.is_empty());
        assert_ne!(rule.port, 0);
    }
    let hosts = Hosts {
        resolve: &resolve,
        connect_to: &connect_to,
    };
    let (host, port) = hosts.route("example.test", 443);
    let _ = hosts.pinned(&host, port);
    let _ = hosts.describe("example.test", 443);
});
